/**
 * Augmentation primitives over grey frames (`GrayImage`: one byte per pixel, 0 = black ink,
 * 255 = white paper), for making camera-like training frames out of scanned digits:
 * shift, rotate/scale/shear, stroke thickness, blur, noise, specks, and uneven, gray paper.
 *
 * Each function returns a new image and never changes its input. They run over typed arrays
 * with precomputed kernels and no per-pixel allocation: about 10-60 us each on a 28x28 to
 * 64x64 frame, so augmentation costs less than preparation itself.
 */
import type { GrayImage } from '../functions/lib/decode';
import { Rng } from './rng';

export { Rng };

function check(img: GrayImage): void {
  if (!(img.width > 0 && img.height > 0 && img.data.length >= img.width * img.height)) {
    throw new RangeError(`augment: bad ${img.width}x${img.height} image with ${img.data.length} bytes`);
  }
}

function clampByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
}

/** A 2-D affine transform about the image centre, applied before a shift. */
export interface Affine {
  /** Rotation in degrees, clockwise on screen. */
  angle?: number;
  /** Uniform scale (1 = unchanged). */
  scale?: number;
  /** Extra horizontal / vertical scale (aspect changes). */
  scaleX?: number;
  scaleY?: number;
  /** Horizontal shear: x += shear * y (italic slant for positive values). */
  shear?: number;
  /** Shift in output pixels. */
  dx?: number;
  dy?: number;
}

/**
 * Resamples `img` through an affine transform (bilinear), into an output of the given size
 * (default: the input's), the transform's centre mapped to the output's centre. Pixels that
 * come from outside the input get `fill` (paper by default).
 */
export function warp(img: GrayImage, t: Affine, size?: { width: number; height: number }, fill = 255): GrayImage {
  check(img);
  const ow = size?.width ?? img.width;
  const oh = size?.height ?? img.height;
  const a = ((t.angle ?? 0) * Math.PI) / 180;
  const sx = (t.scale ?? 1) * (t.scaleX ?? 1);
  const sy = (t.scale ?? 1) * (t.scaleY ?? 1);
  const shear = t.shear ?? 0;
  // Forward: p_out = R * Sh * S * (p_in - c_in) + c_out + d. Inverse per output pixel below.
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  // M = R * Sh * S = [[cos, -sin], [sin, cos]] * [[1, shear], [0, 1]] * [[sx, 0], [0, sy]]
  const m00 = cos * sx;
  const m01 = (cos * shear - sin) * sy;
  const m10 = sin * sx;
  const m11 = (sin * shear + cos) * sy;
  const det = m00 * m11 - m01 * m10;
  if (Math.abs(det) < 1e-9) throw new RangeError('warp: degenerate transform');
  const i00 = m11 / det;
  const i01 = -m01 / det;
  const i10 = -m10 / det;
  const i11 = m00 / det;
  const cxIn = img.width / 2;
  const cyIn = img.height / 2;
  const cxOut = ow / 2 + (t.dx ?? 0);
  const cyOut = oh / 2 + (t.dy ?? 0);
  const out = new Uint8Array(ow * oh);
  const { data, width: w, height: h } = img;
  for (let y = 0; y < oh; y++) {
    const qy = y + 0.5 - cyOut;
    for (let x = 0; x < ow; x++) {
      const qx = x + 0.5 - cxOut;
      const px = i00 * qx + i01 * qy + cxIn - 0.5;
      const py = i10 * qx + i11 * qy + cyIn - 0.5;
      const x0 = Math.floor(px);
      const y0 = Math.floor(py);
      const fx = px - x0;
      const fy = py - y0;
      let v: number;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
        const p = y0 * w + x0;
        const a0 = data[p] as number;
        const b0 = data[p + 1] as number;
        const c0 = data[p + w] as number;
        const d0 = data[p + w + 1] as number;
        v = (a0 + (b0 - a0) * fx) * (1 - fy) + (c0 + (d0 - c0) * fx) * fy;
      } else if (x0 < -1 || y0 < -1 || x0 >= w || y0 >= h) {
        v = fill;
      } else {
        const at = (xx: number, yy: number): number =>
          xx < 0 || yy < 0 || xx >= w || yy >= h ? fill : (data[yy * w + xx] as number);
        v = (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy;
      }
      out[y * ow + x] = clampByte(v);
    }
  }
  return { data: out, width: ow, height: oh };
}

/** Shifts by (dx, dy) pixels (fractions allowed), paper coming in at the edges. */
export function shift(img: GrayImage, dx: number, dy: number, fill = 255): GrayImage {
  return warp(img, { dx, dy }, undefined, fill);
}

/** Rotates about the centre by `degrees` (clockwise on screen), keeping the size. */
export function rotate(img: GrayImage, degrees: number, fill = 255): GrayImage {
  return warp(img, { angle: degrees }, undefined, fill);
}

/** Separable 3x3 minimum (darkest neighbour: dark ink grows) or maximum (ink shrinks). */
function extreme3(src: Uint8Array, w: number, h: number, darkest: boolean): Uint8Array {
  const tmp = new Uint8Array(w * h);
  const out = new Uint8Array(w * h);
  const pick = darkest ? Math.min : Math.max;
  for (let y = 0; y < h; y++) {
    const r = y * w;
    for (let x = 0; x < w; x++) {
      const l = src[r + (x > 0 ? x - 1 : 0)] as number;
      const c = src[r + x] as number;
      const rr = src[r + (x < w - 1 ? x + 1 : x)] as number;
      tmp[r + x] = pick(l, c, rr);
    }
  }
  for (let y = 0; y < h; y++) {
    const up = (y > 0 ? y - 1 : 0) * w;
    const r = y * w;
    const dn = (y < h - 1 ? y + 1 : y) * w;
    for (let x = 0; x < w; x++) out[r + x] = pick(tmp[up + x] as number, tmp[r + x] as number, tmp[dn + x] as number);
  }
  return out;
}

/**
 * Makes strokes thicker (amount > 0) or thinner (amount < 0) by about |amount| pixels per
 * side: whole pixels by 3x3 grey erosion/dilation, the fraction by blending with one more step.
 */
export function strokeWidth(img: GrayImage, amount: number): GrayImage {
  check(img);
  const { width: w, height: h } = img;
  const steps = Math.floor(Math.abs(amount));
  const frac = Math.abs(amount) - steps;
  const darkest = amount > 0;
  let cur: Uint8Array = img.data.slice(0, w * h);
  for (let i = 0; i < steps; i++) cur = extreme3(cur, w, h, darkest);
  if (frac > 0) {
    const next = extreme3(cur, w, h, darkest);
    for (let i = 0; i < w * h; i++) cur[i] = clampByte((cur[i] as number) * (1 - frac) + (next[i] as number) * frac);
  }
  return { data: cur, width: w, height: h };
}

function gaussianKernel(sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(sigma * 3));
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + radius] = v;
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i] = (k[i] as number) / sum;
  return k;
}

/** Separable convolution of a float plane with edge replication, in place (uses `tmp`). */
export function blurPlane(plane: Float32Array, tmp: Float32Array, w: number, h: number, sigma: number): void {
  if (sigma <= 0.05) return;
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) {
        const xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
        acc += (plane[row + xx] as number) * (k[i + r] as number);
      }
      tmp[row + x] = acc;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let i = -r; i <= r; i++) {
        const yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
        acc += (tmp[yy * w + x] as number) * (k[i + r] as number);
      }
      plane[y * w + x] = acc;
    }
  }
}

/** Gaussian blur (defocus, motion-free) with standard deviation `sigma` pixels. */
export function gaussianBlur(img: GrayImage, sigma: number): GrayImage {
  check(img);
  const { width: w, height: h } = img;
  const plane = Float32Array.from(img.data.subarray(0, w * h));
  blurPlane(plane, new Float32Array(w * h), w, h, sigma);
  const out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) out[i] = clampByte(plane[i] as number);
  return { data: out, width: w, height: h };
}

/** Adds Gaussian sensor noise of standard deviation `sigma` grey levels. */
export function addNoise(img: GrayImage, sigma: number, rng: Rng): GrayImage {
  check(img);
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = clampByte((img.data[i] as number) + sigma * rng.normal());
  return { data: out, width: img.width, height: img.height };
}

/** Sets a share of pixels to random dark or light specks (dust, sensor defects). */
export function addSpecks(img: GrayImage, share: number, rng: Rng): GrayImage {
  check(img);
  const n = img.width * img.height;
  const out = img.data.slice(0, n);
  const count = Math.round(n * share);
  for (let i = 0; i < count; i++) out[rng.int(n)] = rng.next() < 0.5 ? rng.int(80) : 175 + rng.int(81);
  return { data: out, width: img.width, height: img.height };
}

/** How the page is lit and what it is made of. */
export interface Paper {
  /** Paper brightness where fully lit (white 255, gray paper lower). */
  paper: number;
  /** Ink brightness on that paper (black pen ~20-60, pencil ~paper - 60..110). */
  ink: number;
  /** Light falling off linearly across the frame: share of brightness lost at the far edge (0-0.5). */
  gradient?: number;
  /** Direction of the fall-off in degrees (0 = darker to the right, 90 = darker downwards). */
  gradientAngle?: number;
  /** Darkening of the corners relative to the centre (0-0.5). */
  vignette?: number;
}

/**
 * Re-renders a white-paper frame on gray, unevenly lit paper: 255 maps to `paper`, 0 to
 * `ink` (linearly between, so anti-aliasing survives), then everything is multiplied by a
 * smooth illumination field (linear fall-off plus vignetting).
 */
export function unevenBackground(img: GrayImage, p: Paper): GrayImage {
  check(img);
  const { width: w, height: h } = img;
  const out = new Uint8Array(w * h);
  const g = p.gradient ?? 0;
  const ang = ((p.gradientAngle ?? 0) * Math.PI) / 180;
  const gx = Math.cos(ang);
  const gy = Math.sin(ang);
  const vig = p.vignette ?? 0;
  const cx = w / 2;
  const cy = h / 2;
  const r2max = cx * cx + cy * cy;
  const span = Math.abs(gx) * w + Math.abs(gy) * h || 1;
  // Projection of (x, y) onto the gradient direction, 0 at the lit corner, 1 at the dark one.
  const base = Math.min(0, gx * w) + Math.min(0, gy * h);
  const scale = (p.paper - p.ink) / 255;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = (gx * (x + 0.5) + gy * (y + 0.5) - base) / span;
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const light = (1 - g * t) * (1 - (vig * (dx * dx + dy * dy)) / r2max);
      const i = y * w + x;
      out[i] = clampByte((p.ink + (img.data[i] as number) * scale) * light);
    }
  }
  return { data: out, width: w, height: h };
}

/** Places `img` with its top-left corner at (x, y) on a `fill` canvas of the given size. */
export function placeOnCanvas(img: GrayImage, width: number, height: number, x: number, y: number, fill = 255): GrayImage {
  check(img);
  const out = new Uint8Array(width * height).fill(fill);
  for (let sy = 0; sy < img.height; sy++) {
    const ty = y + sy;
    if (ty < 0 || ty >= height) continue;
    for (let sx = 0; sx < img.width; sx++) {
      const tx = x + sx;
      if (tx < 0 || tx >= width) continue;
      out[ty * width + tx] = img.data[sy * img.width + sx] as number;
    }
  }
  return { data: out, width, height };
}

/** A raw MNIST digit (ink high) as a white-paper frame (0 = black), as the original camera rendered it. */
export function fromMnist(raw784: Uint8Array): GrayImage {
  if (raw784.length !== 784) throw new RangeError(`expected 784 bytes, got ${raw784.length}`);
  const data = new Uint8Array(784);
  for (let i = 0; i < 784; i++) data[i] = 255 - (raw784[i] as number);
  return { data, width: 28, height: 28 };
}

/** Ranges for {@link cameraAugment}; every field has a default. */
export interface CameraAugmentOptions {
  /** Largest rotation either way, degrees (default 12). */
  maxAngle?: number;
  /** Largest shear either way (default 0.2). */
  maxShear?: number;
  /** Scale range of the digit inside its frame (default [0.8, 1.15]). */
  scale?: [number, number];
  /** Frame side range in pixels; the digit lands anywhere inside (default [28, 56]). */
  frameSide?: [number, number];
  /** Stroke thickness change range, pixels (default [-0.6, 1.2]). */
  thickness?: [number, number];
  /** Probability of each degradation: gray/uneven paper, blur, noise, specks (defaults 0.7, 0.4, 0.6, 0.15). */
  pPaper?: number;
  pBlur?: number;
  pNoise?: number;
  pSpecks?: number;
}

/**
 * One random camera-like frame from a white-paper digit frame: thickness, rotation, scale,
 * shear and placement in a larger frame, then gray/unevenly lit paper, blur, noise and specks.
 * Deterministic for a given Rng state. The result is meant for `prepareGray`.
 */
export function cameraAugment(digit: GrayImage, rng: Rng, o: CameraAugmentOptions = {}): GrayImage {
  const maxAngle = o.maxAngle ?? 12;
  const maxShear = o.maxShear ?? 0.2;
  const [s0, s1] = o.scale ?? [0.8, 1.15];
  const [f0, f1] = o.frameSide ?? [28, 56];
  const [t0, t1] = o.thickness ?? [-0.6, 1.2];
  let img = digit;
  const thick = rng.uniform(t0, t1);
  if (Math.abs(thick) > 0.15) img = strokeWidth(img, thick);
  const side = Math.round(rng.uniform(f0, f1));
  const scale = rng.uniform(s0, s1) * (side / Math.max(digit.width, digit.height));
  // Keep the digit (about 20/28 of its frame) inside the new frame.
  const slack = Math.max(0, (side - scale * 20) / 2 - 1);
  img = warp(
    img,
    {
      angle: rng.uniform(-maxAngle, maxAngle),
      scale,
      scaleX: rng.uniform(0.9, 1.1),
      shear: rng.uniform(-maxShear, maxShear),
      dx: rng.uniform(-slack, slack),
      dy: rng.uniform(-slack, slack),
    },
    { width: side, height: side },
  );
  if (rng.next() < (o.pPaper ?? 0.7)) {
    const paper = rng.uniform(140, 250);
    img = unevenBackground(img, {
      paper,
      ink: rng.uniform(0, Math.max(0, paper - 70)),
      gradient: rng.uniform(0, 0.35),
      gradientAngle: rng.uniform(0, 360),
      vignette: rng.uniform(0, 0.3),
    });
  }
  if (rng.next() < (o.pBlur ?? 0.4)) img = gaussianBlur(img, rng.uniform(0.3, 1.1));
  if (rng.next() < (o.pNoise ?? 0.6)) img = addNoise(img, rng.uniform(1, 10), rng);
  if (rng.next() < (o.pSpecks ?? 0.15)) img = addSpecks(img, rng.uniform(0.0005, 0.004), rng);
  return img;
}
