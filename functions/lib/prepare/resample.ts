/** Resampling: block means, a 3x3 box blur, and PIL's Lanczos resize (byte-identical to Pillow). */
import { grow } from './buffers';

let passBuf = new Float32Array(0);

/** Mean of each f x f block (partial blocks at the right and bottom edges average what they have). */
export function blockMean(data: Uint8Array, w: number, h: number, f: number, low: Float32Array, lw: number, lh: number): void {
  low.fill(0, 0, lw * lh);
  const fullBlocks = Math.floor(w / f);
  for (let y = 0; y < h; y++) {
    const lrow = ((y / f) | 0) * lw;
    let p = y * w;
    // Unrolled for the common factors (320x240 -> 2, 640x480 -> 4): ~3x faster than the loop.
    if (f === 2) {
      for (let lx = 0; lx < fullBlocks; lx++, p += 2)
        low[lrow + lx] = (low[lrow + lx] as number) + (data[p] as number) + (data[p + 1] as number);
    } else if (f === 4) {
      for (let lx = 0; lx < fullBlocks; lx++, p += 4) {
        low[lrow + lx] =
          (low[lrow + lx] as number) +
          (data[p] as number) +
          (data[p + 1] as number) +
          (data[p + 2] as number) +
          (data[p + 3] as number);
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

/** 3x3 mean (edges replicate), separable, from `src` into `dst`. */
export function boxBlur3(src: Float32Array, tmp: Float32Array, dst: Float32Array, w: number, h: number): void {
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
