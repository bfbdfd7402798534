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
import type { GrayImage } from '../decode';
import { findDigit } from './blobs';
import { grow } from './buffers';
import { backgroundAxes, bgAt, estimatePaper } from './paper';
import { blockMean, boxBlur3, resizeLanczos } from './resample';
import {
  DARK_BIAS,
  darkBin,
  diffSigma,
  diffSigmaBytes,
  histQuantile,
  type PaperStats,
  paperStats,
  roundHalfEven,
  sampleStep,
} from './statistics';

/** A prepared frame: 784 bytes, 28x28 row-major, ink 255, paper 0. */
export interface PreparedImage {
  pixels: Uint8Array;
  blank: boolean;
}

// ---------------------------------------------------------------------------------------
// Tuning constants (why each value: see the module comment and the tests).

/** The detection copy's long side is at most this many pixels. */
const DETECT_MAX_SIDE = 160;
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
let regionBuf = new Float32Array(0);
let cropBuf = new Float32Array(0);
const hist = new Uint32Array(256);

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

  // --- 2. paper: a grid of nodes on the cell corners (borders included) ---
  const { grid, nx, ny } = estimatePaper(low, lw, lh);
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

  // --- 3. noise: darkness below the paper on the detection copy, its spread, the paper level ---
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
        const bg =
          bgFull === undefined
            ? gridMax
            : bgAt(
                grid,
                nx,
                ny,
                bgFull.xi[x] as number,
                bgFull.xf[x] as number,
                bgFull.yi[y] as number,
                bgFull.yf[y] as number,
                gridMax,
              );
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

  // --- 4. the digit: connected blobs above the detection threshold ---
  const digit = findDigit(detectImage, lw, lh, detect, Math.max(MIN_STEP_CONTRAST, STEP_SIGMAS * lowStats.sigma));
  if (digit === undefined) return blankImage();

  // --- 5. the ink inside the digit's region (a margin of detection blocks) ---
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
          region[out + x] =
            bgAt(grid, nx, ny, bgFull.xi[gx] as number, bgFull.xf[gx] as number, yi, yf, gridMax) - (data[gy * w + gx] as number);
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
          const bg =
            bgFull === undefined
              ? gridMax
              : bgAt(
                  grid,
                  nx,
                  ny,
                  bgFull.xi[gx] as number,
                  bgFull.xf[gx] as number,
                  bgFull.yi[gy] as number,
                  bgFull.yf[gy] as number,
                  gridMax,
                );
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

  // --- 6. the original's square crop, 20x20 Lanczos, centre of mass at 14 ---
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
