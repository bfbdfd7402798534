/**
 * Frame preparation: PNG bytes -> the 28x28 MNIST-style image the model scores. Decoding is
 * `../decode.ts`; the steps after it are `prepare-gray.ts`, over the paper model (`paper.ts`),
 * the digit's blobs (`blobs.ts`), resampling (`resample.ts`) and histogram statistics
 * (`statistics.ts`).
 */
import { DEFAULT_DECODE_LIMITS, type DecodeLimits, decodePng } from '../decode';
import { type PreparedImage, prepareGray } from './prepare-gray';

export { type PreparedImage, prepareGray } from './prepare-gray';
export { resizeLanczos } from './resample';

/**
 * Decodes and prepares one frame.
 * @throws FrameRejectedError as {@link decodePng} does.
 */
export async function preparePng(png: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Promise<PreparedImage> {
  return prepareGray(await decodePng(png, limits));
}
