/**
 * Decoding a frame: PNG bytes -> 8-bit grey, with every bound checked before pixel memory
 * exists. Small frames go through our own decoder (`png.ts`) on the calling thread, large ones
 * through sharp (libvips) off the main thread; both give the same grey. Every problem becomes
 * a {@link FrameRejectedError} whose message says what to do.
 */
import sharp from 'sharp';
import { FrameRejectedError, rejectMessage } from './errors';
import { KINESIS_LIMITS } from './kinesis-records';
import { decodePngChunks, PngFormatError, type PngChunks, readPngChunks } from './png';

/** Bounds checked before any pixel memory is allocated. */
export interface DecodeLimits {
  /** Largest width x height accepted, read from the PNG header before decoding. */
  maxPixels: number;
  /** Largest PNG accepted, in bytes. */
  maxBytes: number;
}

/**
 * 16,777,216 pixels (4096 x 4096; a 640x480 frame is 307,200) and 1 MiB (Kinesis' record cap:
 * no larger PNG can arrive on the stream). A grey 4096x4096 frame decodes to 16 MiB; the
 * worst colour type (16-bit RGBA) needs 128 MiB of inflated data transiently.
 */
export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({
  maxPixels: 4096 * 4096,
  maxBytes: KINESIS_LIMITS.maxRecordBytes,
});

/** One byte per pixel, row-major, 0 = black, 255 = white. */
export interface GrayImage {
  data: Uint8Array;
  width: number;
  height: number;
}
/**
 * Decodes a PNG to 8-bit grey, transparency composited onto white paper.
 *
 * Accepts every standard PNG: grey, RGB, palette, grey+alpha, RGBA; 1-16 bits; interlaced;
 * bytes after IEND are ignored. Checks run in order of cost: byte cap, signature, every
 * chunk's bounds and CRC, the declared pixel count against `limits.maxPixels` (before any
 * pixel memory exists, so a tiny file declaring a huge image costs nothing), then inflate
 * with an output bound.
 *
 * @throws FrameRejectedError with reason `image_empty`, `not_png`, `corrupt_png` or
 *   `image_too_large`; the message is a sentence a person can act on.
 */
export async function decodePng(png: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Promise<GrayImage> {
  const chunks = checkedChunks(png, limits);
  const { width, height } = chunks.header;
  if (chunks.idatBytes < SHARP_DECODE_BYTES && width * height < SHARP_DECODE_PIXELS) return decodeChecked(chunks);
  return decodeWithSharp(png, chunks, limits);
}

/**
 * Compressed image data from this size up is decoded by sharp, on libvips/libuv threads.
 * Measured on this 2-core machine (bench/decode-compare.ts; CPU time per frame over all
 * threads, the steadier figure while other work shares the machine):
 * - 28x28 MNIST frame (~400 bytes): pure decoder 0.03-0.05 ms, sharp 0.8-1.7 ms (its
 *   per-call cost dominates), so small frames never go to sharp;
 * - 640x480 noisy camera frame (~470 kB): pure 6-7 ms, sharp raw 8-bit + our luma 6.7 ms
 *   (sharp's zlib-ng inflates faster; its recomb/flatten/grayscale variants cost 7.2-8.8 ms).
 *   The CPU is a wash, but sharp runs entirely off the main thread, so concurrent frames
 *   decode on both cores while the main thread prepares others (in batches of 50: 4-8 ms
 *   wall per frame against 12-16 ms on the main thread).
 * Our chunk walk (signature, CRCs, pixel bound) still runs first on every frame.
 */
const SHARP_DECODE_BYTES = 64 * 1024;

// libvips' operation cache (50 MB by default) only pays off when the same image is processed
// twice; every camera frame is new, so it would hold memory for nothing. Measured on 640x480
// frames, cache off + sequential read: ~4.6-6 ms CPU per decode against ~6-8 ms with both on.
sharp.cache(false);
/**
 * Frames of this many pixels or more go to sharp too, however well they compress: a clean
 * 4096x4096 page is ~16 kB of PNG but 16 MB to inflate, which must not block the main thread.
 */
const SHARP_DECODE_PIXELS = 256 * 1024;

async function decodeWithSharp(png: Buffer, chunks: PngChunks, limits: DecodeLimits): Promise<GrayImage> {
  const { width, height } = chunks.header;
  let data: Buffer;
  let channels: number;
  try {
    // Raw 8-bit samples only: grey conversion and alpha below are the pure decoder's own
    // integer arithmetic, so both paths give the same grey (libvips' recomb/flatten work in
    // float and cost ~2 ms more per 640x480 frame).
    const out = await sharp(png, { limitInputPixels: limits.maxPixels, failOn: 'error', sequentialRead: true })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    data = out.data;
    channels = out.info.channels;
    if (out.info.width !== width || out.info.height !== height || data.length !== width * height * channels) {
      throw new PngFormatError(
        'corrupt_png',
        `the PNG decoded to ${out.info.width}x${out.info.height}, not the ${width}x${height} its header declares`,
      );
    }
  } catch (error: unknown) {
    if (error instanceof PngFormatError) throw asRejection(error);
    const detail = error instanceof Error ? error.message : String(error);
    throw asRejection(new PngFormatError('corrupt_png', `the PNG image data cannot be decoded (${detail})`));
  }
  return { data: samplesToGrey(data, width * height, channels), width, height };
}

/** Grey (ITU-R 601-2 luma, alpha composited onto white) from 1-4 interleaved 8-bit channels. */
function samplesToGrey(data: Buffer, n: number, channels: number): Uint8Array {
  if (channels === 1) return new Uint8Array(data.buffer, data.byteOffset, n);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = i * channels;
    const v =
      channels <= 2
        ? (data[p] as number)
        : ((data[p] as number) * 19595 + (data[p + 1] as number) * 38470 + (data[p + 2] as number) * 7471 + 0x8000) >>> 16;
    const a = channels === 2 ? (data[p + 1] as number) : channels === 4 ? (data[p + 3] as number) : 255;
    out[i] = a === 255 ? v : ((v * a + 255 * (255 - a) + 127) / 255) | 0;
  }
  return out;
}

/**
 * Synchronous {@link decodePng} (everything on the calling thread, pure decoder for every
 * size), for callers that batch their own work, such as training.
 */
export function decodePngSync(png: Uint8Array, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): GrayImage {
  return decodeChecked(checkedChunks(png, limits));
}

function decodeChecked(chunks: PngChunks): GrayImage {
  try {
    return decodePngChunks(chunks);
  } catch (error: unknown) {
    throw asRejection(error);
  }
}

function asRejection(error: unknown): unknown {
  if (error instanceof PngFormatError) {
    return new FrameRejectedError(error.kind, rejectMessage(error.kind, error.message));
  }
  return error;
}

/** Byte cap, signature, chunk CRCs and the pixel bound: everything checked before inflating. */
function checkedChunks(png: Uint8Array, limits: DecodeLimits): PngChunks {
  if (png.length === 0) {
    throw new FrameRejectedError('image_empty', 'the image is empty: send the camera frame as a base64-encoded PNG');
  }
  if (png.length > limits.maxBytes) {
    throw new FrameRejectedError(
      'image_too_large',
      `the PNG is ${png.length} bytes, over the limit of ${limits.maxBytes} bytes: send smaller frames (a 640x480 camera PNG is typically 100-500 kB)`,
    );
  }
  let chunks: PngChunks;
  try {
    chunks = readPngChunks(png);
  } catch (error: unknown) {
    throw asRejection(error);
  }
  const { width, height } = chunks.header;
  if (width * height > limits.maxPixels) {
    throw new FrameRejectedError(
      'image_too_large',
      `the PNG declares ${width}x${height} = ${width * height} pixels, over the limit of ${limits.maxPixels}: scale frames down (e.g. to 640x480) before sending`,
    );
  }
  return chunks;
}
