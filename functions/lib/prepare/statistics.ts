/** Histogram statistics of preparation: quantiles, robust noise, the darkness scale, rounding. */

const DIFF_BINS = 4;
const hist2 = new Uint32Array(256);

/** Python 3's round(): halves go to the even neighbour (the original ran on Python). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Value at quantile q of a 256-bin histogram holding `count` samples. */
export function histQuantile(h: Uint32Array, count: number, q: number): number {
  const target = Math.max(1, Math.ceil(count * q));
  let acc = 0;
  for (let v = 0; v < 256; v++) {
    acc += h[v] as number;
    if (acc >= target) return v;
  }
  return 255;
}

/** Where the paper sits on the darkness scale, and how noisy it is. */
export interface PaperStats {
  offset: number;
  sigma: number;
}
/**
 * Noise sigma from the median absolute difference of horizontal neighbours (every `step`
 * rows and columns): smooth lighting cancels out, and ink edges are a minority of pairs, so
 * neither a large digit nor a lighting residual inflates it (the median of the values
 * themselves fails once ink covers a quarter of the frame).
 */
export function diffSigma(img: Float32Array, w: number, h: number, step: number): number {
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
export function diffSigmaBytes(img: Uint8Array, w: number, h: number, step: number): number {
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
export function paperStats(h: Uint32Array, count: number, sigma: number): PaperStats {
  return { offset: histQuantile(h, count, 0.1) - DARK_BIAS + 1.28 * sigma, sigma };
}

/**
 * Darkness histograms are shifted by DARK_BIAS so that paper, which scatters around zero,
 * keeps its negative half (clamping it at zero would halve the measured noise).
 */
export const DARK_BIAS = 64;

export function darkBin(d: number): number {
  const b = (d + DARK_BIAS + 0.5) | 0;
  return b < 0 ? 0 : b > 255 ? 255 : b;
}
/** Grid step that leaves about 4,096 samples of n pixels for noise estimates. */
export function sampleStep(n: number): number {
  return Math.max(1, Math.floor(Math.sqrt(n / 4096)));
}
