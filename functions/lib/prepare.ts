/**
 * Frame preparation: PNG bytes -> the 28x28 MNIST-style image the model scores.
 *
 * The original edge application's ImagePrep assumed a clean white page: invert, crop to the
 * box around every non-zero pixel, widen it to a square, Lanczos-resize to 20x20, and paste
 * into 28x28 with the centre of mass at the centre. A camera sees gray or unevenly lit paper,
 * noise, pencil or blue ink and a small digit anywhere in a 640x480 frame, where "every
 * non-zero pixel" is the whole frame. So before that crop we separate ink from paper:
 *
 * 1. detection copy: block means, at most 160 pixels on the long side (640x480 -> 160x120);
 * 2. paper: nodes on the corners of a grid of up to 6x6 cells (frame borders included); each
 *    node is a plane fitted to the window around it, refitted without the pixels well below
 *    it (ink), evaluated at the node; nodes still far below a smooth quadratic (or plane)
 *    surface through the others (a cell covered by a thick stroke) take the surface's value.
 *    Bilinear between nodes, this follows gray paper, gradients and vignetting;
 * 3. noise: robust sigma of neighbour differences (ink edges and lighting cancel out), paper
 *    level from the 10th percentile of darkness;
 * 4. the digit: darkness below the paper on the detection copy (3x3-smoothed when noisy),
 *    thresholded at 4 sigmas (at least {@link MIN_DETECT_CONTRAST}), 8-connected blobs; a blob
 *    counts only if it is a step darker than the paper right around it (a dim corner is not);
 *    the heaviest blob and sizeable blobs near it are the digit; none means a blank page;
 * 5. ink inside that region (block means for big digits, 3x3 mean when noisy): darkness minus
 *    a noise floor, stretched so the ink's own level reaches 255 (pencil and blue pen look
 *    like MNIST ink), graded, not binary. On a clean white MNIST frame the floor is 0 and
 *    the stretch 1: the ink is exactly the original's inverted image;
 * 6. the original's crop: the ink's bounding box widened to a square centred on it, 20x20
 *    with PIL's Lanczos (byte-identical to Pillow), pasted into 28x28 at
 *    round(14 - centre of mass), Python's rounding.
 *
 * Everything runs over reused typed arrays (no per-pixel allocation) and is synchronous.
 */
import sharp from 'sharp';
import { FrameRejectedError, REJECT_ADVICE } from './errors';
import { decodePngChunks, PngFormatError, type PngChunks, readPngChunks } from './png';

/** A prepared frame: 784 bytes, 28x28 row-major, ink 255, paper 0. */
export interface PreparedImage {
  pixels: Uint8Array;
  blank: boolean;
}

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
export const DEFAULT_DECODE_LIMITS: DecodeLimits = Object.freeze({ maxPixels: 4096 * 4096, maxBytes: 1024 * 1024 });

/** One byte per pixel, row-major, 0 = black, 255 = white. */
export interface GrayImage {
  data: Uint8Array;
  width: number;
  height: number;
}

const ACTIONS = { not_png: REJECT_ADVICE.not_png, corrupt_png: REJECT_ADVICE.corrupt_png } as const;

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
 * - 28x28 MNIST frame (~400 bytes): pure decoder 0.03-0.05 ms, sharp 0.8-1.5 ms (its
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
      throw new PngFormatError('corrupt_png', `the PNG decoded to ${out.info.width}x${out.info.height}, not the ${width}x${height} its header declares`);
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
    const v = channels <= 2 ? (data[p] as number) : ((data[p] as number) * 19595 + (data[p + 1] as number) * 38470 + (data[p + 2] as number) * 7471 + 0x8000) >>> 16;
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
    const action = error.kind === 'image_too_large' ? 'send smaller frames' : ACTIONS[error.kind];
    return new FrameRejectedError(error.kind, `${error.message}: ${action}`);
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

/**
 * Decodes and prepares one frame.
 * @throws FrameRejectedError as {@link decodePng} does.
 */
export async function preparePng(png: Buffer, limits: DecodeLimits = DEFAULT_DECODE_LIMITS): Promise<PreparedImage> {
  return prepareGray(await decodePng(png, limits));
}

// ---------------------------------------------------------------------------------------
// Tuning constants (why each value: see the module comment and the tests).

/** The detection copy's long side is at most this many pixels. */
const DETECT_MAX_SIDE = 160;
/**
 * Background grid: cells of about this many detection pixels (at least BG_MIN_CELL), at most
 * 6 per axis. A 28x28 frame gets 3x3 cells of 9 pixels, a 640x480 one 6x6 cells of ~100.
 */
const BG_CELL = 12;
const BG_MIN_CELL = 8;
const BG_MAX_CELLS = 6;
/** A node's starting paper level is this brightness percentile of its window (ink < 90%). */
const BG_PERCENTILE = 0.9;
/** A cell this much darker than the smooth lighting surface through the others is ink. */
const BG_OUTLIER = 16;
/** Darkness (0-255) below which nothing counts as ink, however clean the frame. */
const MIN_DETECT_CONTRAST = 12;
/** Noise sigmas above the paper level: detection, the ink floor, the ink's bounding box. */
const DETECT_SIGMAS = 4;
const FLOOR_SIGMAS = 3.5;
const BBOX_SIGMAS = 5;
/** Blur the detection copy of unreduced frames from this much noise (robust sigma) up. */
const BLUR_MIN_SIGMA = 1.5;
/** A blob must be this much darker than the paper around it (and STEP_SIGMAS noise sigmas). */
const MIN_STEP_CONTRAST = 10;
const STEP_SIGMAS = 3;
/** Smallest blob (detection pixels) that can be ink rather than a speck. */
const MIN_BLOB_AREA = 3;
/** A further blob joins the digit when it weighs this share of the heaviest blob... */
const JOIN_MASS_SHARE = 0.08;
/** ...and lies within this share of the digit's size from it. */
const JOIN_DISTANCE_SHARE = 0.35;
/** The ink level (to stretch to 255) is this percentile of the clearly-ink pixels. */
const INK_PERCENTILE = 0.9;
/** Never stretch by more than 255 / this. */
const MIN_INK_RANGE = 24;
/** Ink at least this dark (0-255 darkness) is not stretched. */
const NEAR_BLACK_INK = 239;
const OUT = 28;
const BOX = 20;
/** Larger regions and crops are read as block means of at most this many times the box. */
const PRE_REDUCE = 3;

// Scratch buffers reused across calls (prepareGray is synchronous, so they are never shared).
let lowBuf = new Float32Array(0);
let tmpBuf = new Float32Array(0);
let blurBuf = new Float32Array(0);
let darkBuf = new Float32Array(0);
let labelBuf = new Int32Array(0);
let stackBuf = new Int32Array(0);
let regionBuf = new Float32Array(0);
let cropBuf = new Float32Array(0);
let passBuf = new Float32Array(0);
const hist = new Uint32Array(256);
const DIFF_BINS = 4;
const hist2 = new Uint32Array(256);

function grow<T extends Float32Array | Int32Array>(buf: T, n: number, make: (n: number) => T): T {
  return buf.length >= n ? buf : make(Math.max(n, buf.length * 2));
}

/** Python 3's round(): halves go to the even neighbour (the original ran on Python). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Value at quantile q of a 256-bin histogram holding `count` samples. */
function histQuantile(h: Uint32Array, count: number, q: number): number {
  const target = Math.max(1, Math.ceil(count * q));
  let acc = 0;
  for (let v = 0; v < 256; v++) {
    acc += h[v] as number;
    if (acc >= target) return v;
  }
  return 255;
}

/** Where the paper sits on the darkness scale, and how noisy it is. */
interface PaperStats {
  offset: number;
  sigma: number;
}

/**
 * Noise sigma from the median absolute difference of horizontal neighbours (every `step`
 * rows and columns): smooth lighting cancels out, and ink edges are a minority of pairs, so
 * neither a large digit nor a lighting residual inflates it (the median of the values
 * themselves fails once ink covers a quarter of the frame).
 */
function diffSigma(img: Float32Array, w: number, h: number, step: number): number {
  hist2.fill(0);
  let count = 0;
  for (let y = step >> 1; y < h; y += step) {
    const row = y * w;
    for (let x = step >> 1; x + 1 < w; x += step) {
      const d = (img[row + x + 1] as number) - (img[row + x] as number);
      // Quarter-level bins: a blurred detection copy differs by fractions of a level.
      const a = (d < 0 ? -d : d) * DIFF_BINS;
      const b = a > 255 ? 255 : (a + 0.5) | 0;
      hist2[b] = (hist2[b] as number) + 1;
      count++;
    }
  }
  if (count === 0) return 0;
  return (1.4826 * histQuantile(hist2, count, 0.5)) / DIFF_BINS / Math.SQRT2;
}

/** {@link diffSigma} over bytes (a separate copy keeps each loop monomorphic: ~10x faster). */
function diffSigmaBytes(img: Uint8Array, w: number, h: number, step: number): number {
  hist2.fill(0);
  let count = 0;
  for (let y = step >> 1; y < h; y += step) {
    const row = y * w;
    for (let x = step >> 1; x + 1 < w; x += step) {
      const d = (img[row + x + 1] as number) - (img[row + x] as number);
      // Quarter-level bins: a blurred detection copy differs by fractions of a level.
      const a = (d < 0 ? -d : d) * DIFF_BINS;
      const b = a > 255 ? 255 : (a + 0.5) | 0;
      hist2[b] = (hist2[b] as number) + 1;
      count++;
    }
  }
  if (count === 0) return 0;
  return (1.4826 * histQuantile(hist2, count, 0.5)) / DIFF_BINS / Math.SQRT2;
}

/**
 * The paper's darkness level from a darkness histogram: the background estimate is a high
 * percentile of paper brightness, so paper reads about 1.28 sigma dark; the 10th percentile
 * (still paper while paper covers more than a tenth of the frame) anchors it.
 */
function paperStats(h: Uint32Array, count: number, sigma: number): PaperStats {
  return { offset: histQuantile(h, count, 0.1) - DARK_BIAS + 1.28 * sigma, sigma };
}

/**
 * Darkness histograms are shifted by DARK_BIAS so that paper, which scatters around zero,
 * keeps its negative half (clamping it at zero would halve the measured noise).
 */
const DARK_BIAS = 64;

function darkBin(d: number): number {
  const b = (d + DARK_BIAS + 0.5) | 0;
  return b < 0 ? 0 : b > 255 ? 255 : b;
}

/**
 * Bilinear weights from pixel positions on one axis to the background nodes, which sit on
 * the cell corners (the frame's borders included, so nothing is extrapolated).
 */
function axisWeights(n: number, factor: number, cells: number, lowLen: number): { i0: Int32Array; frac: Float32Array } {
  const i0 = new Int32Array(n);
  const frac = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = Math.min(cells, (((i + 0.5) / factor) * cells) / lowLen);
    const k = Math.min(cells - 1, Math.floor(t));
    i0[i] = k;
    frac[i] = t - k;
  }
  return { i0, frac };
}

function bgAt(grid: Float32Array, nx: number, _ny: number, xi: number, xf: number, yi: number, yf: number, cap: number): number {
  const a = grid[yi * nx + xi] as number;
  const b = grid[yi * nx + xi + 1] as number;
  const c = grid[(yi + 1) * nx + xi] as number;
  const d = grid[(yi + 1) * nx + xi + 1] as number;
  const v = (a + (b - a) * xf) * (1 - yf) + (c + (d - c) * xf) * yf;
  return v > cap ? cap : v;
}

/**
 * A cell almost covered by ink (a thick stroke filling a 9x9 cell of a 28x28 frame) reads
 * dark, and would make its ink look like paper. Lighting is smooth, so such a cell stands out
 * below a smooth surface through the others: fit a plane (fewer than 4x4 cells) or a quadratic
 * (more) by least squares, drop cells more than BG_OUTLIER below it, refit, and give the
 * dropped cells the fitted value. Gradients and vignetting fit the surface and are kept.
 */
function repairInkCells(grid: Float32Array, nx: number, ny: number): void {
  const n = nx * ny;
  if (n < 4) return;
  const terms = nx >= 4 && ny >= 4 ? 6 : 3;
  const basis = (c: number, out: Float64Array): void => {
    const x = nx > 1 ? ((c % nx) / (nx - 1)) * 2 - 1 : 0;
    const y = ny > 1 ? (Math.floor(c / nx) / (ny - 1)) * 2 - 1 : 0;
    out[0] = 1;
    out[1] = x;
    out[2] = y;
    if (terms === 6) {
      out[3] = x * x;
      out[4] = y * y;
      out[5] = x * y;
    }
  };
  const inlier = new Uint8Array(n).fill(1);
  const b = new Float64Array(6);
  const fit = new Float64Array(n);
  for (let round = 0; round < 4; round++) {
    const coef = leastSquares(grid, inlier, n, terms, basis);
    if (coef === undefined) return;
    let changed = false;
    for (let c = 0; c < n; c++) {
      basis(c, b);
      let f = 0;
      for (let t = 0; t < terms; t++) f += (coef[t] as number) * (b[t] as number);
      fit[c] = f;
      const isIn = (grid[c] as number) >= f - BG_OUTLIER ? 1 : 0;
      if (isIn !== inlier[c]) {
        inlier[c] = isIn;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (let c = 0; c < n; c++) if (!inlier[c]) grid[c] = Math.min(255, fit[c] as number);
}

/** Weighted least squares by normal equations and Gaussian elimination (at most 6 terms). */
function leastSquares(
  values: Float32Array,
  use: Uint8Array,
  n: number,
  terms: number,
  basis: (c: number, out: Float64Array) => void,
): Float64Array | undefined {
  let count = 0;
  for (let c = 0; c < n; c++) count += use[c] as number;
  if (count < terms + 1) return undefined;
  const m = new Float64Array(terms * (terms + 1));
  const b = new Float64Array(6);
  for (let c = 0; c < n; c++) {
    if (!use[c]) continue;
    basis(c, b);
    for (let i = 0; i < terms; i++) {
      for (let j = 0; j < terms; j++) {
        const at = i * (terms + 1) + j;
        m[at] = (m[at] as number) + (b[i] as number) * (b[j] as number);
      }
      const rhs = i * (terms + 1) + terms;
      m[rhs] = (m[rhs] as number) + (b[i] as number) * (values[c] as number);
    }
  }
  const w = terms + 1;
  for (let col = 0; col < terms; col++) {
    let pivot = col;
    for (let r = col + 1; r < terms; r++) if (Math.abs(m[r * w + col] as number) > Math.abs(m[pivot * w + col] as number)) pivot = r;
    if (Math.abs(m[pivot * w + col] as number) < 1e-9) return undefined;
    if (pivot !== col) {
      for (let k = 0; k < w; k++) {
        const t = m[col * w + k] as number;
        m[col * w + k] = m[pivot * w + k] as number;
        m[pivot * w + k] = t;
      }
    }
    for (let r = 0; r < terms; r++) {
      if (r === col) continue;
      const factor = (m[r * w + col] as number) / (m[col * w + col] as number);
      if (factor === 0) continue;
      for (let k = col; k < w; k++) m[r * w + k] = (m[r * w + k] as number) - factor * (m[col * w + k] as number);
    }
  }
  const coef = new Float64Array(terms);
  for (let i = 0; i < terms; i++) coef[i] = (m[i * w + terms] as number) / (m[i * w + i] as number);
  return coef;
}

interface Blob {
  id: number;
  area: number;
  mass: number;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * Prepares a grey frame as the model expects it (see the module comment for the steps).
 * Pure and synchronous; never throws for a well-formed GrayImage. A frame with no ink gives
 * `blank: true` and 784 zeros.
 */
export function prepareGray(image: GrayImage): PreparedImage {
  const { data, width: w, height: h } = image;
  if (!(w > 0 && h > 0 && data.length >= w * h)) {
    throw new RangeError(`prepareGray: ${w}x${h} image with ${data.length} bytes`);
  }

  // --- 1. detection copy: block means, at most DETECT_MAX_SIDE on the long side ---
  const f = Math.max(1, Math.ceil(Math.max(w, h) / DETECT_MAX_SIDE));
  const lw = Math.ceil(w / f);
  const lh = Math.ceil(h / f);
  const ln = lw * lh;
  lowBuf = grow(lowBuf, ln, (n) => new Float32Array(n));
  const low = lowBuf;
  if (f === 1) {
    for (let i = 0; i < ln; i++) low[i] = data[i] as number;
  } else {
    blockMean(data, w, h, f, low, lw, lh);
  }

  // --- 2. paper: a grid of nodes on the cell corners (borders included), each the bright
  // percentile of the cell-sized window around it ---
  const cellsX = cellsFor(lw);
  const cellsY = cellsFor(lh);
  const nx = cellsX + 1;
  const ny = cellsY + 1;
  const grid = new Float32Array(nx * ny);
  for (let cy = 0; cy < ny; cy++) {
    const [ya, yb] = nodeWindow(cy, cellsY, lh);
    for (let cx = 0; cx < nx; cx++) {
      const [xa, xb] = nodeWindow(cx, cellsX, lw);
      hist.fill(0);
      for (let y = ya; y < yb; y++) {
        const row = y * lw;
        for (let x = xa; x < xb; x++) {
          const v = ((low[row + x] as number) + 0.5) | 0;
          hist[v] = (hist[v] as number) + 1;
        }
      }
      grid[cy * nx + cx] = histQuantile(hist, (yb - ya) * (xb - xa), BG_PERCENTILE);
    }
  }
  let uneven = false;
  for (let i = 1; i < grid.length; i++) if (grid[i] !== grid[0]) uneven = true;
  if (uneven) refineNodes(low, lw, lh, cellsX, cellsY, grid, diffSigma(low, lw, lh, sampleStep(ln)));
  repairInkCells(grid, nx, ny);
  // Paper is never brighter than the brightest cell: caps the linear extrapolation at the
  // frame's border (otherwise clean white paper would read as faintly inked there).
  let gridMax = 0;
  let gridMin = 255;
  for (let i = 0; i < grid.length; i++) {
    gridMax = Math.max(gridMax, grid[i] as number);
    gridMin = Math.min(gridMin, grid[i] as number);
  }
  const flat = gridMax === gridMin;
  const bgLow = flat ? undefined : backgroundAxes(lw, lh, 1, nx, ny, lw, lh);

  // --- darkness below the paper on the detection copy ---
  darkBuf = grow(darkBuf, ln, (n) => new Float32Array(n));
  const dark = darkBuf;
  hist.fill(0);
  for (let y = 0; y < lh; y++) {
    const row = y * lw;
    if (bgLow === undefined) {
      for (let x = 0; x < lw; x++) {
        const d = gridMax - (low[row + x] as number);
        dark[row + x] = d;
        const b = darkBin(d);
        hist[b] = (hist[b] as number) + 1;
      }
    } else {
      const yi = bgLow.yi[y] as number;
      const yf = bgLow.yf[y] as number;
      for (let x = 0; x < lw; x++) {
        const d = bgAt(grid, nx, ny, bgLow.xi[x] as number, bgLow.xf[x] as number, yi, yf, gridMax) - (low[row + x] as number);
        dark[row + x] = d;
        const b = darkBin(d);
        hist[b] = (hist[b] as number) + 1;
      }
    }
  }
  const darkQ10 = histQuantile(hist, ln, 0.1) - DARK_BIAS;

  // Full-resolution noise: from the darkness itself when there is no reduction, else from
  // a strided sample of the frame.
  const bgFull = flat ? undefined : f === 1 ? bgLow : backgroundAxes(w, h, f, nx, ny, lw, lh);
  let full: PaperStats;
  if (f === 1) {
    const sigma = diffSigma(dark, lw, lh, sampleStep(ln));
    full = { offset: darkQ10 + 1.28 * sigma, sigma };
  } else {
    const step = Math.max(1, Math.floor(Math.sqrt((w * h) / 8192)));
    hist.fill(0);
    let sampled = 0;
    for (let y = step >> 1; y < h; y += step) {
      for (let x = step >> 1; x < w; x += step) {
        const bg = bgFull === undefined ? gridMax : bgAt(grid, nx, ny, bgFull.xi[x] as number, bgFull.xf[x] as number, bgFull.yi[y] as number, bgFull.yf[y] as number, gridMax);
        const d = bg - (data[y * w + x] as number);
        const b = darkBin(d);
        hist[b] = (hist[b] as number) + 1;
        sampled++;
      }
    }
    full = paperStats(hist, sampled, diffSigmaBytes(data, w, h, step));
  }

  // A 3x3 blur lowers the noise for detection when the blocks are small and the frame noisy.
  let detectImage = dark;
  let lowStats = full;
  if (f <= 2 && lw >= 3 && lh >= 3 && (f === 2 || full.sigma >= BLUR_MIN_SIGMA)) {
    tmpBuf = grow(tmpBuf, ln, (n) => new Float32Array(n));
    blurBuf = grow(blurBuf, ln, (n) => new Float32Array(n));
    boxBlur3(dark, tmpBuf, blurBuf, lw, lh);
    detectImage = blurBuf;
    hist.fill(0);
    for (let i = 0; i < ln; i++) {
      const b = darkBin(detectImage[i] as number);
      hist[b] = (hist[b] as number) + 1;
    }
    // Neighbour differences of a 3x3 mean of white noise have sqrt(1/3) of its spread.
    lowStats = paperStats(hist, ln, Math.sqrt(3) * diffSigma(detectImage, lw, lh, sampleStep(ln)));
  } else if (f > 1) {
    const sigma = diffSigma(dark, lw, lh, sampleStep(ln));
    lowStats = { offset: darkQ10 + 1.28 * sigma, sigma };
  }
  const detect = lowStats.offset + Math.max(DETECT_SIGMAS * lowStats.sigma, MIN_DETECT_CONTRAST);

  // --- 3. the digit: connected blobs above the detection threshold ---
  const digit = findDigit(detectImage, lw, lh, detect, Math.max(MIN_STEP_CONTRAST, STEP_SIGMAS * lowStats.sigma));
  if (digit === undefined) return blankImage();

  // --- 4. the ink inside the digit's region (a margin of detection blocks) ---
  const margin = f === 1 ? 2 : 1;
  const rx0 = Math.max(0, (digit.x0 - margin) * f);
  const ry0 = Math.max(0, (digit.y0 - margin) * f);
  const rx1 = Math.min(w, (digit.x1 + 1 + margin) * f);
  const ry1 = Math.min(h, (digit.y1 + 1 + margin) * f);
  const fullW = rx1 - rx0;
  const fullH = ry1 - ry0;
  // A big digit is measured on r x r block means: the 20x20 box cannot use finer detail than
  // a third of its pixel, and this bounds the work at ~(3 x 20)^2 region pixels.
  const r = Math.max(1, Math.floor(Math.max(fullW, fullH) / (PRE_REDUCE * BOX)));
  const rw = Math.ceil(fullW / r);
  const rh = Math.ceil(fullH / r);
  regionBuf = grow(regionBuf, rw * rh, (n) => new Float32Array(n));
  const region = regionBuf;
  if (r === 1) {
    for (let y = 0; y < rh; y++) {
      const gy = ry0 + y;
      const out = y * rw;
      if (f === 1) {
        // No reduction: the darkness is already computed.
        const src = gy * w + rx0;
        for (let x = 0; x < rw; x++) region[out + x] = dark[src + x] as number;
      } else if (bgFull === undefined) {
        const src = gy * w + rx0;
        for (let x = 0; x < rw; x++) region[out + x] = gridMax - (data[src + x] as number);
      } else {
        const yi = bgFull.yi[gy] as number;
        const yf = bgFull.yf[gy] as number;
        for (let x = 0; x < rw; x++) {
          const gx = rx0 + x;
          region[out + x] = bgAt(grid, nx, ny, bgFull.xi[gx] as number, bgFull.xf[gx] as number, yi, yf, gridMax) - (data[gy * w + gx] as number);
        }
      }
    }
  } else {
    region.fill(0, 0, rw * rh);
    const source: Float32Array | Uint8Array = f === 1 ? dark : data;
    for (let y = 0; y < fullH; y++) {
      const row = ((y / r) | 0) * rw;
      const src = (ry0 + y) * w + rx0;
      for (let x = 0; x < fullW; x++) {
        const at = row + ((x / r) | 0);
        region[at] = (region[at] as number) + (source[src + x] as number);
      }
    }
    for (let by = 0; by < rh; by++) {
      const bh = Math.min(r, fullH - by * r);
      const gy = Math.min(h - 1, ry0 + by * r + (bh >> 1));
      for (let bx = 0; bx < rw; bx++) {
        const bw = Math.min(r, fullW - bx * r);
        const i = by * rw + bx;
        const mean = (region[i] as number) / (bw * bh);
        if (f === 1) {
          region[i] = mean;
        } else {
          const gx = Math.min(w - 1, rx0 + bx * r + (bw >> 1));
          const bg = bgFull === undefined ? gridMax : bgAt(grid, nx, ny, bgFull.xi[gx] as number, bgFull.xf[gx] as number, bgFull.yi[gy] as number, bgFull.yf[gy] as number, gridMax);
          region[i] = bg - mean;
        }
      }
    }
  }
  // A noisy frame's ink is measured on a 3x3 mean (noise / 3): per-pixel thresholds several
  // sigmas above the noise would erase faint pencil strokes. Clean frames stay untouched.
  let sigma = full.sigma / r;
  if (sigma >= BLUR_MIN_SIGMA && rw >= 3 && rh >= 3) {
    tmpBuf = grow(tmpBuf, rw * rh, (n) => new Float32Array(n));
    cropBuf = grow(cropBuf, rw * rh, (n) => new Float32Array(n));
    boxBlur3(region, tmpBuf, cropBuf, rw, rh);
    region.set(cropBuf.subarray(0, rw * rh));
    sigma /= 3;
  }
  const floor = full.offset + FLOOR_SIGMAS * sigma;
  const bboxLevel = full.offset + BBOX_SIGMAS * sigma;
  const clearInk = full.offset + Math.max(DETECT_SIGMAS * sigma, MIN_DETECT_CONTRAST);
  hist.fill(0);
  let inkCount = 0;
  let darkest = 0;
  for (let i = 0; i < rw * rh; i++) {
    const d = region[i] as number;
    if (d > darkest) darkest = d;
    if (d > clearInk) {
      const b = d > 255 ? 255 : (d + 0.5) | 0;
      hist[b] = (hist[b] as number) + 1;
      inkCount++;
    }
  }
  if (darkest <= bboxLevel) return blankImage();
  const inkLevel = inkCount > 0 ? histQuantile(hist, inkCount, INK_PERCENTILE) : darkest;
  // Ink that already reaches near-black keeps its levels (a clean MNIST frame is then
  // exactly the original's inverted image); fainter ink is stretched to reach 255.
  const range = inkLevel >= NEAR_BLACK_INK ? 255 - floor : Math.max(inkLevel - floor, MIN_INK_RANGE);
  const gain = 255 / range;

  // Stretch to 0-255 and find the ink's bounding box.
  let bx0 = rw;
  let by0 = rh;
  let bx1 = -1;
  let by1 = -1;
  for (let y = 0; y < rh; y++) {
    const row = y * rw;
    for (let x = 0; x < rw; x++) {
      const d = region[row + x] as number;
      if (d <= floor) {
        region[row + x] = 0;
        continue;
      }
      const v = (d - floor) * gain;
      region[row + x] = v >= 255 ? 255 : Math.round(v);
      if (d > bboxLevel && v >= 0.5) {
        if (x < bx0) bx0 = x;
        if (x > bx1) bx1 = x;
        if (y < by0) by0 = y;
        if (y > by1) by1 = y;
      }
    }
  }
  if (bx1 < 0) return blankImage();

  // --- 5. the original's square crop, 20x20 Lanczos, centre of mass at 14 ---
  const bw = bx1 - bx0 + 1;
  const bh = by1 - by0 + 1;
  const side = Math.max(bw, bh);
  const sx0 = bx0 - ((side - bw) >> 1);
  const sy0 = by0 - ((side - bh) >> 1);
  // Box-reduce big crops by an integer factor first; copy the square (zero outside the region).
  const k = Math.max(1, Math.floor(side / (PRE_REDUCE * BOX)));
  const cs = Math.ceil(side / k);
  cropBuf = grow(cropBuf, cs * cs, (n) => new Float32Array(n));
  const crop = cropBuf;
  crop.fill(0, 0, cs * cs);
  const ya = Math.max(0, -sy0);
  const yb = Math.min(side, rh - sy0);
  const xa = Math.max(0, -sx0);
  const xb = Math.min(side, rw - sx0);
  if (k === 1) {
    for (let y = ya; y < yb; y++) {
      const src = (sy0 + y) * rw + sx0;
      const dst = y * cs;
      for (let x = xa; x < xb; x++) crop[dst + x] = region[src + x] as number;
    }
  } else {
    for (let y = ya; y < yb; y++) {
      const src = (sy0 + y) * rw + sx0;
      const dst = ((y / k) | 0) * cs;
      for (let x = xa; x < xb; x++) {
        const at = dst + ((x / k) | 0);
        crop[at] = (crop[at] as number) + (region[src + x] as number);
      }
    }
    // Mean over the full k x k block (blocks past the square's edge count their missing
    // pixels as paper, as the zero-filled square would).
    const inv = 1 / (k * k);
    for (let i = 0; i < cs * cs; i++) crop[i] = Math.round((crop[i] as number) * inv);
  }
  const box = resizeLanczos(crop, cs, BOX);

  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < BOX; y++) {
    for (let x = 0; x < BOX; x++) {
      const v = box[y * BOX + x] as number;
      mass += v;
      mx += x * v;
      my += y * v;
    }
  }
  if (mass === 0) return blankImage();
  const ox = roundHalfEven(OUT / 2 - mx / mass);
  const oy = roundHalfEven(OUT / 2 - my / mass);
  const pixels = new Uint8Array(OUT * OUT);
  for (let y = 0; y < BOX; y++) {
    const ty = y + oy;
    if (ty < 0 || ty >= OUT) continue;
    for (let x = 0; x < BOX; x++) {
      const tx = x + ox;
      if (tx < 0 || tx >= OUT) continue;
      pixels[ty * OUT + tx] = box[y * BOX + x] as number;
    }
  }
  return { pixels, blank: false };
}

function blankImage(): PreparedImage {
  return { pixels: new Uint8Array(OUT * OUT), blank: true };
}

/**
 * Replaces each node's bright percentile by the paper level at the node itself: a plane fitted
 * to the window's pixels, refitted twice without the pixels well below it (ink), evaluated at
 * the node. A percentile alone is biased towards the bright side of a window, which at the
 * frame's border (one-sided windows) under vignetting reads as ink in the corners.
 */
function refineNodes(low: Float32Array, lw: number, lh: number, cellsX: number, cellsY: number, grid: Float32Array, sigma: number): void {
  const nx = cellsX + 1;
  const cut = Math.max(2.5 * sigma, 6);
  for (let cy = 0; cy <= cellsY; cy++) {
    const [ya, yb] = nodeWindow(cy, cellsY, lh);
    const py = (cy * lh) / cellsY;
    for (let cx = 0; cx <= cellsX; cx++) {
      const [xa, xb] = nodeWindow(cx, cellsX, lw);
      const px = (cx * lw) / cellsX;
      // Start from the percentile as a flat plane: pixels far below it are ink.
      let a = grid[cy * nx + cx] as number;
      let b = 0;
      let c = 0;
      let ok = false;
      for (let round = 0; round < 3; round++) {
        let n = 0;
        let sx = 0;
        let sy = 0;
        let sxx = 0;
        let sxy = 0;
        let syy = 0;
        let sv = 0;
        let svx = 0;
        let svy = 0;
        for (let y = ya; y < yb; y++) {
          const dy = y + 0.5 - py;
          const row = y * lw;
          for (let x = xa; x < xb; x++) {
            const dx = x + 0.5 - px;
            const v = low[row + x] as number;
            if (v < a + b * dx + c * dy - cut) continue;
            n++;
            sx += dx;
            sy += dy;
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
            sv += v;
            svx += v * dx;
            svy += v * dy;
          }
        }
        if (n < 6) break;
        // Solve the 3x3 normal equations [n sx sy; sx sxx sxy; sy sxy syy] [a b c] = [sv svx svy].
        const det = n * (sxx * syy - sxy * sxy) - sx * (sx * syy - sxy * sy) + sy * (sx * sxy - sxx * sy);
        if (Math.abs(det) < 1e-6 * n * n * n) break;
        a = (sv * (sxx * syy - sxy * sxy) - sx * (svx * syy - sxy * svy) + sy * (svx * sxy - sxx * svy)) / det;
        b = (n * (svx * syy - sxy * svy) - sv * (sx * syy - sxy * sy) + sy * (sx * svy - svx * sy)) / det;
        c = (n * (sxx * svy - svx * sxy) - sx * (sx * svy - svx * sy) + sv * (sx * sxy - sxx * sy)) / det;
        ok = true;
      }
      if (ok) grid[cy * nx + cx] = Math.max(0, Math.min(255, a));
    }
  }
}

/** Pixel range [a, b) of the window around node i of `cells` cells over `len` pixels. */
function nodeWindow(i: number, cells: number, len: number): [number, number] {
  const cell = len / cells;
  const centre = i * cell;
  const a = Math.min(len - 1, Math.max(0, Math.floor(centre - cell / 2)));
  const b = Math.max(a + 1, Math.min(len, Math.ceil(centre + cell / 2)));
  return [a, b];
}

/** Grid step that leaves about 4,096 samples of n pixels for noise estimates. */
function sampleStep(n: number): number {
  return Math.max(1, Math.floor(Math.sqrt(n / 4096)));
}

function cellsFor(n: number): number {
  return Math.max(1, Math.min(BG_MAX_CELLS, Math.ceil(n / BG_CELL), Math.floor(n / BG_MIN_CELL)));
}

/** Mean of each f x f block (partial blocks at the right and bottom edges average what they have). */
function blockMean(data: Uint8Array, w: number, h: number, f: number, low: Float32Array, lw: number, lh: number): void {
  low.fill(0, 0, lw * lh);
  const fullBlocks = Math.floor(w / f);
  for (let y = 0; y < h; y++) {
    const lrow = ((y / f) | 0) * lw;
    let p = y * w;
    // Unrolled for the common factors (320x240 -> 2, 640x480 -> 4): ~3x faster than the loop.
    if (f === 2) {
      for (let lx = 0; lx < fullBlocks; lx++, p += 2) low[lrow + lx] = (low[lrow + lx] as number) + (data[p] as number) + (data[p + 1] as number);
    } else if (f === 4) {
      for (let lx = 0; lx < fullBlocks; lx++, p += 4) {
        low[lrow + lx] = (low[lrow + lx] as number) + (data[p] as number) + (data[p + 1] as number) + (data[p + 2] as number) + (data[p + 3] as number);
      }
    } else {
      for (let lx = 0; lx < fullBlocks; lx++) {
        let s = 0;
        for (let i = 0; i < f; i++) s += data[p + i] as number;
        low[lrow + lx] = (low[lrow + lx] as number) + s;
        p += f;
      }
    }
    if (fullBlocks < lw) {
      let s = 0;
      for (let x = fullBlocks * f; x < w; x++) s += data[y * w + x] as number;
      low[lrow + fullBlocks] = (low[lrow + fullBlocks] as number) + s;
    }
  }
  for (let ly = 0; ly < lh; ly++) {
    const bh = Math.min(f, h - ly * f);
    for (let lx = 0; lx < lw; lx++) {
      const bw = Math.min(f, w - lx * f);
      low[ly * lw + lx] = (low[ly * lw + lx] as number) / (bw * bh);
    }
  }
}

interface Axes {
  xi: Int32Array;
  xf: Float32Array;
  yi: Int32Array;
  yf: Float32Array;
}

const axesCache = new Map<string, Axes>();

/** Bilinear weights from every pixel of a w x h image (reduced by f) to the grid's cell centres. */
function backgroundAxes(w: number, h: number, f: number, nx: number, ny: number, lw: number, lh: number): Axes {
  const key = `${w}x${h}/${f}/${nx}x${ny}`;
  const hit = axesCache.get(key);
  if (hit) return hit;
  const x = axisWeights(w, f, nx - 1, lw);
  const y = axisWeights(h, f, ny - 1, lh);
  const axes = { xi: x.i0, xf: x.frac, yi: y.i0, yf: y.frac };
  if (axesCache.size > 64) axesCache.clear();
  axesCache.set(key, axes);
  return axes;
}

interface Region {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * Labels 8-connected blobs above `threshold` and returns the digit's box in detection
 * pixels: the heaviest blob plus sizeable blobs near it, or undefined for a blank page.
 */
function findDigit(dark: Float32Array, lw: number, lh: number, threshold: number, minStep: number): Region | undefined {
  const ln = lw * lh;
  labelBuf = grow(labelBuf, ln, (n) => new Int32Array(n));
  stackBuf = grow(stackBuf, ln, (n) => new Int32Array(n));
  const labels = labelBuf;
  const stack = stackBuf;
  labels.fill(0, 0, ln);
  const blobs: Blob[] = [];
  for (let start = 0; start < ln; start++) {
    if (labels[start] !== 0 || (dark[start] as number) <= threshold) continue;
    const id = blobs.length + 1;
    const blob: Blob = { id, area: 0, mass: 0, x0: lw, y0: lh, x1: -1, y1: -1 };
    let top = 0;
    stack[top++] = start;
    labels[start] = id;
    while (top > 0) {
      const p = stack[--top] as number;
      const py = (p / lw) | 0;
      const px = p - py * lw;
      blob.area++;
      blob.mass += (dark[p] as number) - threshold;
      if (px < blob.x0) blob.x0 = px;
      if (px > blob.x1) blob.x1 = px;
      if (py < blob.y0) blob.y0 = py;
      if (py > blob.y1) blob.y1 = py;
      const ya = py > 0 ? py - 1 : 0;
      const yb = py < lh - 1 ? py + 1 : py;
      const xa = px > 0 ? px - 1 : 0;
      const xb = px < lw - 1 ? px + 1 : px;
      for (let qy = ya; qy <= yb; qy++) {
        for (let qx = xa; qx <= xb; qx++) {
          const q = qy * lw + qx;
          if (labels[q] === 0 && (dark[q] as number) > threshold) {
            labels[q] = id;
            stack[top++] = q;
          }
        }
      }
    }
    blobs.push(blob);
  }
  blobs.sort((a, b) => b.mass - a.mass);
  // Ink is a step down from the paper right around it; a lighting residual (a dim corner)
  // crosses the threshold gradually and is hardly darker than its surroundings.
  const real = blobs.slice(0, 64).filter((b) => b.area >= MIN_BLOB_AREA && stepContrast(dark, labels, lw, lh, b, threshold) >= minStep);
  const main = real[0];
  if (main === undefined) return undefined;

  // The digit: the heaviest blob, plus sizeable blobs close to it (a "5" whose bar is detached).
  const u: Region = { x0: main.x0, y0: main.y0, x1: main.x1, y1: main.y1 };
  const candidates = real.slice(1).filter((b) => b.mass >= JOIN_MASS_SHARE * main.mass);
  let joined = true;
  while (joined && candidates.length > 0) {
    joined = false;
    const reach = JOIN_DISTANCE_SHARE * Math.max(u.x1 - u.x0 + 1, u.y1 - u.y0 + 1) + 1;
    for (let i = 0; i < candidates.length; i++) {
      const b = candidates[i] as Blob;
      const gapX = Math.max(0, b.x0 - u.x1, u.x0 - b.x1);
      const gapY = Math.max(0, b.y0 - u.y1, u.y0 - b.y1);
      if (Math.max(gapX, gapY) <= reach) {
        u.x0 = Math.min(u.x0, b.x0);
        u.y0 = Math.min(u.y0, b.y0);
        u.x1 = Math.max(u.x1, b.x1);
        u.y1 = Math.max(u.y1, b.y1);
        candidates.splice(i, 1);
        joined = true;
        break;
      }
    }
  }
  return u;
}

/**
 * Mean darkness of a blob minus the mean darkness of the unlabelled pixels in a ring around
 * its box (a fifth of its size, at least 2 pixels). A blob with no paper around it (it fills
 * the frame) counts as standing out by its own mean.
 */
function stepContrast(dark: Float32Array, labels: Int32Array, lw: number, lh: number, b: Blob, threshold: number): number {
  const r = Math.max(2, Math.round(0.2 * Math.max(b.x1 - b.x0 + 1, b.y1 - b.y0 + 1)));
  const x0 = Math.max(0, b.x0 - r);
  const y0 = Math.max(0, b.y0 - r);
  const x1 = Math.min(lw - 1, b.x1 + r);
  const y1 = Math.min(lh - 1, b.y1 + r);
  let sum = 0;
  let n = 0;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * lw + x;
      if (labels[i] === 0) {
        sum += dark[i] as number;
        n++;
      }
    }
  }
  const inside = b.mass / b.area + threshold;
  return n === 0 ? inside : inside - sum / n;
}

/** 3x3 mean (edges replicate), separable, from `src` into `dst`. */
function boxBlur3(src: Float32Array, tmp: Float32Array, dst: Float32Array, w: number, h: number): void {
  for (let y = 0; y < h; y++) {
    const r = y * w;
    for (let x = 0; x < w; x++) {
      const l = src[r + (x > 0 ? x - 1 : 0)] as number;
      const c = src[r + x] as number;
      const rr = src[r + (x < w - 1 ? x + 1 : x)] as number;
      tmp[r + x] = (l + c + rr) / 3;
    }
  }
  for (let y = 0; y < h; y++) {
    const up = (y > 0 ? y - 1 : 0) * w;
    const r = y * w;
    const dn = (y < h - 1 ? y + 1 : y) * w;
    for (let x = 0; x < w; x++) dst[r + x] = ((tmp[up + x] as number) + (tmp[r + x] as number) + (tmp[dn + x] as number)) / 3;
  }
}

function lanczos3(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

interface Kernel {
  start: Int32Array;
  size: Int32Array;
  taps: number;
  weights: Float32Array;
}

const kernelCache = new Map<number, Kernel>();

/** PIL's resampling coefficients for Lanczos (support 3, widened by the scale when reducing). */
function lanczosKernel(inSize: number, outSize: number): Kernel {
  const key = inSize * 4096 + outSize;
  const cached = kernelCache.get(key);
  if (cached) return cached;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 3 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const size = new Int32Array(outSize);
  const weights = new Float32Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    let total = 0;
    for (let i = lo; i < hi; i++) {
      const wgt = lanczos3((i - centre + 0.5) / filterScale);
      weights[o * taps + i - lo] = wgt;
      total += wgt;
    }
    if (total !== 0) for (let i = 0; i < hi - lo; i++) weights[o * taps + i] = (weights[o * taps + i] as number) / total;
    start[o] = lo;
    size[o] = hi - lo;
  }
  const kernel = { start, size, taps, weights };
  if (kernelCache.size < 1024) kernelCache.set(key, kernel);
  return kernel;
}

/**
 * Resizes a square n x n float image (values 0-255) to out x out like PIL's
 * `resize(..., LANCZOS)`: horizontal pass then vertical, each rounded and clamped to 8 bits.
 */
export function resizeLanczos(src: Float32Array, n: number, out: number): Uint8Array {
  const kern = lanczosKernel(n, out);
  passBuf = grow(passBuf, n * out, (m) => new Float32Array(m));
  const pass = passBuf;
  for (let y = 0; y < n; y++) {
    const row = y * n;
    for (let o = 0; o < out; o++) {
      const s = kern.start[o] as number;
      const len = kern.size[o] as number;
      const wo = o * kern.taps;
      let acc = 0;
      for (let i = 0; i < len; i++) acc += (src[row + s + i] as number) * (kern.weights[wo + i] as number);
      pass[y * out + o] = acc <= 0 ? 0 : acc >= 255 ? 255 : Math.round(acc);
    }
  }
  const result = new Uint8Array(out * out);
  for (let o = 0; o < out; o++) {
    const s = kern.start[o] as number;
    const len = kern.size[o] as number;
    const wo = o * kern.taps;
    for (let x = 0; x < out; x++) {
      let acc = 0;
      for (let i = 0; i < len; i++) acc += (pass[(s + i) * out + x] as number) * (kern.weights[wo + i] as number);
      result[o * out + x] = acc <= 0 ? 0 : acc >= 255 ? 255 : Math.round(acc);
    }
  }
  return result;
}
