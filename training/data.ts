import type { GrayImage } from '../functions/lib/decode';
import { prepareGray } from '../functions/lib/prepare';
import { PIXELS } from './network';
import { Rng } from './rng';

/** Prepared images (n x 784 bytes, ink 255) with their labels; label -1 = blank, uniform target. */
export interface PreparedSet {
  images: Uint8Array;
  labels: Int16Array;
  count: number;
}

export const BLANK_LABEL = -1;

/** A raw MNIST digit (ink high) -> the grey frame the original camera showed (0 = black ink). */
export function rawToGray(raw: Uint8Array): GrayImage {
  const data = new Uint8Array(PIXELS);
  for (let k = 0; k < PIXELS; k++) data[k] = 255 - raw[k]!;
  return { data, width: 28, height: 28 };
}

/** Turns a raw digit into a camera-like grey frame, drawing its randomness from `rng`. */
export type Augmenter = (raw: Uint8Array, rng: Rng) => GrayImage;

export interface BuildOptions {
  /** Raw MNIST images (n x 784, ink high) and labels. */
  images: Uint8Array;
  labels: Uint8Array;
  /** Which of them to use, in this order. */
  indices: readonly number[];
  /** Share of the images replaced by an augmented rendering (0 = all clean). */
  augmentShare: number;
  augment?: Augmenter;
  /** prepareGray of every clean image, indexed like `images` (it never changes between epochs). */
  clean?: Uint8Array;
  /** Blank (all-zero) inputs added, as a share of `indices.length`, with a uniform target. */
  blankShare: number;
  /**
   * Further frames to prepare and append: other digit styles (label 0-9), and blank paper
   * (label null, uniform target, whatever noise the preparation takes for ink).
   */
  extra?: Iterable<{ image: GrayImage; label: number | null }>;
  rng: Rng;
}

/**
 * Sends each selected digit through the production preparation (prepareGray), optionally
 * after augmentation, then the extra frames, and appends all-zero blank inputs. When preparation finds no ink in an
 * augmented frame (the augmentation washed it out), the clean rendering is used instead,
 * so no digit is trained as blank and no blank as a digit.
 */
export function buildPreparedSet(options: BuildOptions): PreparedSet {
  const { images, labels, indices, augmentShare, augment, blankShare, rng } = options;
  const extraPixels: Uint8Array[] = [];
  const extraLabels: number[] = [];
  for (const frame of options.extra ?? []) {
    const prepared = prepareGray(frame.image);
    if (frame.label !== null && prepared.blank) continue; // a digit the preparation lost: not a blank example
    extraPixels.push(prepared.pixels);
    extraLabels.push(frame.label ?? BLANK_LABEL);
  }
  const blanks = Math.round(indices.length * blankShare);
  const count = indices.length + extraPixels.length + blanks;
  const out: PreparedSet = { images: new Uint8Array(count * PIXELS), labels: new Int16Array(count), count };
  indices.forEach((index, k) => {
    const raw = images.subarray(index * PIXELS, (index + 1) * PIXELS);
    let prepared = augment !== undefined && rng.next() < augmentShare ? prepareGray(augment(raw, rng)) : undefined;
    if (prepared === undefined || prepared.blank) {
      prepared =
        options.clean !== undefined
          ? { pixels: options.clean.subarray(index * PIXELS, (index + 1) * PIXELS), blank: false }
          : prepareGray(rawToGray(raw));
    }
    out.images.set(prepared.pixels, k * PIXELS);
    out.labels[k] = labels[index]!;
  });
  extraPixels.forEach((pixels, k) => {
    out.images.set(pixels, (indices.length + k) * PIXELS);
    out.labels[indices.length + k] = extraLabels[k]!;
  });
  for (let k = indices.length + extraPixels.length; k < count; k++) out.labels[k] = BLANK_LABEL; // images stay zero
  return out;
}

/** prepareGray of every raw image, concatenated (n x 784). */
export function prepareAll(images: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count * PIXELS);
  for (let k = 0; k < count; k++)
    out.set(prepareGray(rawToGray(images.subarray(k * PIXELS, (k + 1) * PIXELS))).pixels, k * PIXELS);
  return out;
}

/** Soft targets: one-hot for digits, uniform 0.1 for blanks. */
export function targetsOf(labels: Int16Array, from: number, to: number, classes = 10): Float32Array {
  const y = new Float32Array((to - from) * classes);
  for (let k = from; k < to; k++) {
    const label = labels[k]!;
    if (label === BLANK_LABEL) y.fill(1 / classes, (k - from) * classes, (k - from + 1) * classes);
    else y[(k - from) * classes + label] = 1;
  }
  return y;
}

/** A fixed split of 0..n-1 into training and held-out indices. */
export function splitIndices(n: number, heldOut: number, seed: number): { train: number[]; heldOut: number[] } {
  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, k) => k));
  return { heldOut: order.slice(0, heldOut).sort((a, b) => a - b), train: order.slice(heldOut).sort((a, b) => a - b) };
}
