/**
 * A deterministic generator of camera-like frames, for evaluation, tests and benchmarks:
 * a digit (MNIST handwriting, or printed / pen-drawn strokes from a small vector font)
 * placed anywhere on frames from 28x28 to 640x480, on gray or unevenly lit paper, in black
 * pen, blue pen or pencil, thicker or thinner, blurred, with sensor noise; and blank paper
 * frames (label null). Frame i of a seed is the same on every run and every machine, and
 * can be made on its own ({@link cameraFrameAt}) without making frames 0..i-1.
 *
 *   npx tsx training/camera-frames.ts --count 20 --out out/camera-frames [--seed 1]
 * writes PNGs named <index>-<label>.png for a look.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadMnist, type MnistSet, mnistImage } from '../functions/lib/mnist';
import { encodePng } from '../functions/lib/png';
import type { GrayImage } from '../functions/lib/decode';
import { blurPlane, Rng } from './augment';

export type DigitStyle = 'mnist' | 'printed' | 'pen';
export type InkKind = 'black' | 'blue' | 'pencil';

/** One generated frame. */
export interface CameraFrame {
  png: Buffer;
  /** The digit drawn, or null for blank paper. */
  label: number | null;
}

/** How a frame was made (for reports and debugging). */
export interface FrameRecipe {
  index: number;
  width: number;
  height: number;
  style: DigitStyle | 'blank';
  ink: InkKind;
  /** Digit height in pixels (0 for blank). */
  digitHeight: number;
  /** MNIST index when style is 'mnist', else -1. */
  mnistIndex: number;
  paper: number;
  noise: number;
  blur: number;
  colour: boolean;
}

export interface CameraFrameOptions {
  /** Seed of the whole set (default 1). */
  seed?: number;
  /** MNIST set the handwritten digits come from (default 't10k': frames for evaluation). */
  mnistSet?: MnistSet;
  /** Only these MNIST indexes (e.g. a held-out slice of 'train'); default the whole set. */
  mnistIndexes?: readonly number[];
  /** Frame sizes to draw from, uniformly (default 28x28 ... 640x480, see FRAME_SIZES). */
  sizes?: ReadonlyArray<readonly [number, number]>;
  /** Digit styles to draw from, uniformly (default all three). */
  styles?: readonly DigitStyle[];
  /** Share of blank paper frames (default 0.08). */
  blankShare?: number;
  /** Scales the noise, blur and lighting ranges (0 = clean paper, 1 = default, up to ~1.5). */
  difficulty?: number;
}

/** Default frame sizes: the original's 28x28 up to a VGA camera. */
export const FRAME_SIZES: ReadonlyArray<readonly [number, number]> = [
  [28, 28],
  [32, 32],
  [48, 48],
  [64, 64],
  [96, 72],
  [160, 120],
  [320, 240],
  [640, 480],
];

// ---- a small vector font: strokes in a unit box (x right, y down) -------------------

type Stroke = ReadonlyArray<readonly [number, number]>;

function ellipse(cx: number, cy: number, rx: number, ry: number, from = 0, to = 360, n = 24): Stroke {
  const pts: Array<[number, number]> = [];
  for (let i = 0; i <= n; i++) {
    const a = ((from + ((to - from) * i) / n) * Math.PI) / 180;
    pts.push([cx + rx * Math.cos(a), cy + ry * Math.sin(a)]);
  }
  return pts;
}

/** Strokes of 0-9, each digit a list of polylines in [0, 1] x [0, 1]. */
const FONT: ReadonlyArray<readonly Stroke[]> = [
  [ellipse(0.5, 0.5, 0.42, 0.49)],
  [
    [
      [0.22, 0.22],
      [0.56, 0.0],
      [0.56, 1.0],
    ],
  ],
  [
    [
      [0.12, 0.22],
      [0.25, 0.06],
      [0.5, 0.0],
      [0.75, 0.06],
      [0.87, 0.24],
      [0.82, 0.42],
      [0.6, 0.62],
      [0.1, 1.0],
      [0.92, 1.0],
    ],
  ],
  [
    [
      [0.12, 0.1],
      [0.35, 0.0],
      [0.65, 0.0],
      [0.84, 0.12],
      [0.85, 0.3],
      [0.7, 0.44],
      [0.42, 0.48],
      [0.7, 0.52],
      [0.88, 0.66],
      [0.88, 0.84],
      [0.7, 0.97],
      [0.42, 1.0],
      [0.1, 0.9],
    ],
  ],
  [
    [
      [0.72, 1.0],
      [0.72, 0.0],
      [0.08, 0.68],
      [0.95, 0.68],
    ],
  ],
  [
    [
      [0.85, 0.0],
      [0.22, 0.0],
      [0.16, 0.45],
      [0.4, 0.38],
      [0.65, 0.42],
      [0.85, 0.6],
      [0.85, 0.82],
      [0.68, 0.97],
      [0.4, 1.0],
      [0.12, 0.9],
    ],
  ],
  [
    [
      [0.78, 0.06],
      [0.55, 0.0],
      [0.3, 0.08],
      [0.15, 0.35],
      [0.12, 0.65],
      [0.2, 0.88],
      [0.45, 1.0],
      [0.72, 0.94],
      [0.86, 0.75],
      [0.8, 0.55],
      [0.55, 0.45],
      [0.3, 0.5],
      [0.14, 0.65],
    ],
  ],
  [
    [
      [0.08, 0.0],
      [0.92, 0.0],
      [0.62, 0.45],
      [0.38, 1.0],
    ],
  ],
  [ellipse(0.5, 0.25, 0.32, 0.25), ellipse(0.5, 0.73, 0.4, 0.27)],
  [
    ellipse(0.48, 0.3, 0.36, 0.3),
    [
      [0.84, 0.3],
      [0.82, 0.6],
      [0.72, 0.85],
      [0.5, 1.0],
      [0.2, 0.94],
    ],
  ],
];

/**
 * Rasterises strokes into an ink coverage plane (0-1, anti-aliased by distance to the
 * nearest segment). Points are already in pixel coordinates; `width` is the stroke width.
 */
function drawStrokes(
  plane: Float32Array,
  w: number,
  h: number,
  strokes: ReadonlyArray<Array<[number, number]>>,
  width: number,
): void {
  const half = width / 2;
  for (const stroke of strokes) {
    for (let s = 0; s + 1 < stroke.length; s++) {
      const [ax, ay] = stroke[s] as [number, number];
      const [bx, by] = stroke[s + 1] as [number, number];
      const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - half - 1));
      const x1 = Math.min(w - 1, Math.ceil(Math.max(ax, bx) + half + 1));
      const y0 = Math.max(0, Math.floor(Math.min(ay, by) - half - 1));
      const y1 = Math.min(h - 1, Math.ceil(Math.max(ay, by) + half + 1));
      const dx = bx - ax;
      const dy = by - ay;
      const len2 = dx * dx + dy * dy || 1e-9;
      for (let y = y0; y <= y1; y++) {
        const py = y + 0.5;
        for (let x = x0; x <= x1; x++) {
          const px = x + 0.5;
          let t = ((px - ax) * dx + (py - ay) * dy) / len2;
          t = t < 0 ? 0 : t > 1 ? 1 : t;
          const ex = ax + t * dx - px;
          const ey = ay + t * dy - py;
          const cover = half + 0.5 - Math.sqrt(ex * ex + ey * ey);
          if (cover > 0) {
            const i = y * w + x;
            const c = cover > 1 ? 1 : cover;
            if (c > (plane[i] as number)) plane[i] = c;
          }
        }
      }
    }
  }
}

/** Pixel-space transform of the digit box: rotation, shear, aspect, size, centre. */
interface Placement {
  cx: number;
  cy: number;
  height: number;
  aspect: number;
  angle: number;
  shear: number;
}

function placeFont(label: number, p: Placement, rng: Rng, jitter: number): Array<Array<[number, number]>> {
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  const bw = p.height * p.aspect;
  return (FONT[label] as readonly Stroke[]).map((stroke) =>
    stroke.map(([u, v]) => {
      const ju = u + jitter * (rng.next() - 0.5);
      const jv = v + jitter * (rng.next() - 0.5);
      let x = (ju - 0.5) * bw;
      const y = (jv - 0.5) * p.height;
      x -= p.shear * y;
      return [p.cx + cos * x - sin * y, p.cy + sin * x + cos * y] as [number, number];
    }),
  );
}

/** Samples a raw MNIST digit (ink high) into the plane through the placement (bilinear). */
function drawMnist(plane: Float32Array, w: number, h: number, raw: Uint8Array, p: Placement): void {
  // MNIST digits fill about 20 of their 28 pixels.
  const scale = p.height / 20;
  const sx = scale * p.aspect;
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  const reach = (28 * Math.max(sx, scale)) / 1.4;
  const x0 = Math.max(0, Math.floor(p.cx - reach));
  const x1 = Math.min(w - 1, Math.ceil(p.cx + reach));
  const y0 = Math.max(0, Math.floor(p.cy - reach));
  const y1 = Math.min(h - 1, Math.ceil(p.cy + reach));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const qx = x + 0.5 - p.cx;
      const qy = y + 0.5 - p.cy;
      // Undo rotation, then shear, then scale.
      let u = cos * qx + sin * qy;
      const v = -sin * qx + cos * qy;
      u += p.shear * v;
      const mx = u / sx + 14 - 0.5;
      const my = v / scale + 14 - 0.5;
      const ix = Math.floor(mx);
      const iy = Math.floor(my);
      if (ix < -1 || iy < -1 || ix > 27 || iy > 27) continue;
      const fx = mx - ix;
      const fy = my - iy;
      const at = (xx: number, yy: number): number => (xx < 0 || yy < 0 || xx > 27 || yy > 27 ? 0 : (raw[yy * 28 + xx] as number));
      const val =
        ((at(ix, iy) * (1 - fx) + at(ix + 1, iy) * fx) * (1 - fy) + (at(ix, iy + 1) * (1 - fx) + at(ix + 1, iy + 1) * fx) * fy) /
        255;
      const i = y * w + x;
      if (val > (plane[i] as number)) plane[i] = val;
    }
  }
}

/** Grows (amount > 0) or shrinks ink coverage by a 3x3 max/min filter, blended by the fraction. */
function adjustThickness(plane: Float32Array, w: number, h: number, amount: number): void {
  const steps = Math.ceil(Math.abs(amount));
  let frac = Math.abs(amount) - (steps - 1);
  const tmp = new Float32Array(w * h);
  const next = new Float32Array(w * h);
  const grow = amount > 0;
  const pick = (a: number, b: number, c: number): number =>
    grow ? (a > b ? (a > c ? a : c) : b > c ? b : c) : a < b ? (a < c ? a : c) : b < c ? b : c;
  for (let s = 0; s < steps; s++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const r = y * w;
        tmp[r + x] = pick(
          plane[r + (x > 0 ? x - 1 : 0)] as number,
          plane[r + x] as number,
          plane[r + (x < w - 1 ? x + 1 : x)] as number,
        );
      }
    }
    for (let y = 0; y < h; y++) {
      const up = (y > 0 ? y - 1 : 0) * w;
      const dn = (y < h - 1 ? y + 1 : y) * w;
      for (let x = 0; x < w; x++) next[y * w + x] = pick(tmp[up + x] as number, tmp[y * w + x] as number, tmp[dn + x] as number);
    }
    const mix = s === steps - 1 ? frac : 1;
    for (let i = 0; i < w * h; i++) plane[i] = (plane[i] as number) * (1 - mix) + (next[i] as number) * mix;
    frac = 1;
  }
}

/**
 * Thickness change and blur, applied only to the window around the ink (the rest of the
 * plane is empty): on a 640x480 frame this is most of the generator's time otherwise.
 */
function processInkWindow(plane: Float32Array, w: number, h: number, thickness: number, blur: number): void {
  const doThick = Math.abs(thickness) > 0.05;
  const doBlur = blur > 0.2;
  if (!doThick && !doBlur) return;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if ((plane[y * w + x] as number) > 0) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return;
  const margin = Math.ceil(Math.max(0, thickness)) + Math.ceil(3 * blur) + 2;
  x0 = Math.max(0, x0 - margin);
  y0 = Math.max(0, y0 - margin);
  x1 = Math.min(w - 1, x1 + margin);
  y1 = Math.min(h - 1, y1 + margin);
  const ww = x1 - x0 + 1;
  const wh = y1 - y0 + 1;
  const sub = new Float32Array(ww * wh);
  for (let y = 0; y < wh; y++) sub.set(plane.subarray((y0 + y) * w + x0, (y0 + y) * w + x0 + ww), y * ww);
  if (doThick) adjustThickness(sub, ww, wh, thickness);
  if (doBlur) blurPlane(sub, new Float32Array(ww * wh), ww, wh, blur);
  for (let y = 0; y < wh; y++) plane.set(sub.subarray(y * ww, (y + 1) * ww), (y0 + y) * w + x0);
}

/** Standard normal quantiles: one table lookup per noise sample instead of Box-Muller. */
const NORMAL_TABLE = (() => {
  const n = 4096;
  const t = new Float32Array(n);
  // Inverse normal CDF by the rational approximation of Abramowitz and Stegun 26.2.23 (error < 4.5e-4).
  for (let i = 0; i < n; i++) {
    const p = (i + 0.5) / n;
    const q = p < 0.5 ? p : 1 - p;
    const tt = Math.sqrt(-2 * Math.log(q));
    const z =
      tt - (2.515517 + 0.802853 * tt + 0.010328 * tt * tt) / (1 + 1.432788 * tt + 0.189269 * tt * tt + 0.001308 * tt * tt * tt);
    t[i] = p < 0.5 ? -z : z;
  }
  return t;
})();

const INKS: Record<InkKind, (rng: Rng, paper: number) => [number, number, number]> = {
  black: (rng) => {
    const v = rng.uniform(10, 70);
    return [v, v, v + rng.uniform(0, 10)];
  },
  blue: (rng) => [rng.uniform(15, 60), rng.uniform(30, 90), rng.uniform(120, 200)],
  pencil: (rng, paper) => {
    const v = paper - rng.uniform(60, 120);
    return [v, v, v + 4];
  },
};

interface Rendered {
  /** RGB, 3 bytes per pixel. */
  rgb: Uint8Array;
  width: number;
  height: number;
  label: number | null;
  recipe: FrameRecipe;
}

const mnistCache = new Map<MnistSet, ReturnType<typeof loadMnist>>();

function mnistData(set: MnistSet): ReturnType<typeof loadMnist> {
  let d = mnistCache.get(set);
  if (!d) {
    d = loadMnist(set);
    mnistCache.set(set, d);
  }
  return d;
}

function mix32(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Hashes (seed, index) into a generator seed, so each frame stands alone and seeds do not overlap. */
function frameSeed(seed: number, index: number): number {
  return mix32((mix32(seed) + Math.imul(index + 1, 0x9e3779b9)) >>> 0);
}

/** Renders frame `index` of the set described by `options` (RGB, before PNG encoding). */
export function renderFrame(index: number, options: CameraFrameOptions = {}): Rendered {
  const rng = new Rng(frameSeed(options.seed ?? 1, index));
  const sizes = options.sizes ?? FRAME_SIZES;
  const styles = options.styles ?? (['mnist', 'printed', 'pen'] as const);
  const difficulty = options.difficulty ?? 1;
  const [width, height] = sizes[rng.int(sizes.length)] as readonly [number, number];
  const blank = rng.next() < (options.blankShare ?? 0.08);
  const style = styles[rng.int(styles.length)] as DigitStyle;
  const inkKind = (['black', 'black', 'blue', 'pencil'] as const)[rng.int(4)] as InkKind;

  // Paper: gray level, slight tint, lighting fall-off and vignetting.
  const paper = rng.uniform(150, 250);
  const tint = [rng.uniform(-8, 8), rng.uniform(-8, 8), rng.uniform(-10, 6)];
  const gradient = difficulty * rng.uniform(0, 0.3);
  const gAngle = rng.uniform(0, 2 * Math.PI);
  const vignette = difficulty * rng.uniform(0, 0.25);
  const noise = difficulty * rng.uniform(0, 9);
  const small = Math.min(width, height);
  const blur = difficulty * rng.uniform(0, small >= 200 ? 1.8 : 0.9);

  const plane = new Float32Array(width * height);
  let thickness = 0;
  let label: number | null = null;
  let digitHeight = 0;
  let mnistIndex = -1;
  if (!blank) {
    label = rng.int(10);
    // Small frames are mostly digit; big ones may hold a small digit anywhere.
    const hFrac = small <= 64 ? rng.uniform(0.55, 0.85) : rng.uniform(Math.max(0.12, 24 / small), 0.8);
    digitHeight = Math.max(14, hFrac * small);
    const aspect = rng.uniform(0.8, 1.15);
    const angle = ((rng.uniform(-12, 12) * Math.PI) / 180) * Math.min(1, difficulty + 0.3);
    const shear = rng.uniform(-0.2, 0.2);
    const halfW = (digitHeight * 0.75) / 2 + 2;
    const halfH = digitHeight / 2 + 2;
    const place: Placement = {
      cx: rng.uniform(Math.min(halfW, width / 2), Math.max(width - halfW, width / 2)),
      cy: rng.uniform(Math.min(halfH, height / 2), Math.max(height - halfH, height / 2)),
      height: digitHeight,
      aspect,
      angle,
      shear,
    };
    if (style === 'mnist') {
      const data = mnistData(options.mnistSet ?? 't10k');
      const pool = options.mnistIndexes;
      // Draw until the label matches: MNIST classes are near-balanced, so this ends fast.
      for (let tries = 0; tries < 1000; tries++) {
        const candidate = pool ? (pool[rng.int(pool.length)] as number) : rng.int(data.count);
        if (data.labels[candidate] === label || tries === 999) {
          mnistIndex = candidate;
          label = data.labels[candidate] as number;
          break;
        }
      }
      drawMnist(plane, width, height, mnistImage(data, mnistIndex), place);
      // Scaled-up MNIST strokes are as thick as the scale; a pen is thinner on a big frame.
      const scale = digitHeight / 20;
      thickness = scale > 3 ? -rng.uniform(0, Math.min(4, scale / 2.5)) : rng.uniform(-0.4, 0.8);
    } else {
      place.aspect *= 0.7;
      const printed = style === 'printed';
      const strokeWidth = printed ? digitHeight * rng.uniform(0.07, 0.14) : Math.max(1.2, digitHeight * rng.uniform(0.04, 0.1));
      const strokes = placeFont(
        label,
        printed ? { ...place, angle: place.angle * 0.3, shear: place.shear * 0.5 } : place,
        rng,
        printed ? 0 : 0.06,
      );
      drawStrokes(plane, width, height, strokes, strokeWidth);
    }
  }
  processInkWindow(plane, width, height, thickness, blur);

  const ink = INKS[inkKind](rng, paper);
  const strength = rng.uniform(0.8, 1);
  const rgb = new Uint8Array(width * height * 3);
  const diag = Math.hypot(width, height) / 2;
  const gx = Math.cos(gAngle);
  const gy = Math.sin(gAngle);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x + 0.5 - width / 2;
      const dy = y + 0.5 - height / 2;
      // Light: linear fall-off across the frame (0 at one side, `gradient` at the other), vignette.
      const t = 0.5 + (gx * dx + gy * dy) / (2 * diag);
      const light = (1 - gradient * t) * (1 - (vignette * (dx * dx + dy * dy)) / (diag * diag));
      const i = y * width + x;
      const c = (plane[i] as number) * strength;
      // Sensor noise, mostly luminance, a little per channel.
      const lum = noise * (NORMAL_TABLE[rng.int(4096)] as number);
      for (let ch = 0; ch < 3; ch++) {
        const p = paper + (tint[ch] as number);
        const chroma = noise * 0.3 * (NORMAL_TABLE[rng.int(4096)] as number);
        const v = (p * (1 - c) + (ink[ch] as number) * c) * light + lum + chroma;
        rgb[i * 3 + ch] = v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
      }
    }
  }
  const colour = inkKind === 'blue' || rng.next() < 0.5;
  return {
    rgb,
    width,
    height,
    label,
    recipe: {
      index,
      width,
      height,
      style: blank ? 'blank' : style,
      ink: inkKind,
      digitHeight: Math.round(digitHeight),
      mnistIndex,
      paper: Math.round(paper),
      noise: Math.round(noise * 10) / 10,
      blur: Math.round(blur * 100) / 100,
      colour,
    },
  };
}

/** ITU-R 601-2 luma, as the decoder computes it. */
function toGray(rgb: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] =
      ((rgb[i * 3] as number) * 19595 + (rgb[i * 3 + 1] as number) * 38470 + (rgb[i * 3 + 2] as number) * 7471 + 0x8000) >>> 16;
  }
  return out;
}

/** Frame `index` of the set as a PNG (RGB for colour frames, else grey) with its label. */
export function cameraFrameAt(index: number, options: CameraFrameOptions = {}): CameraFrame & { recipe: FrameRecipe } {
  const r = renderFrame(index, options);
  const png = r.recipe.colour
    ? encodePng(r.rgb, r.width, r.height, 3, 3)
    : encodePng(toGray(r.rgb, r.width * r.height), r.width, r.height, 1, 3);
  return { png, label: r.label, recipe: r.recipe };
}

/** Frame `index` as a grey image (what the decoder makes of its PNG), for training without PNG round trips. */
export function cameraGrayAt(index: number, options: CameraFrameOptions = {}): { image: GrayImage; label: number | null } {
  const r = renderFrame(index, options);
  return { image: { data: toGray(r.rgb, r.width * r.height), width: r.width, height: r.height }, label: r.label };
}

/** Frames 0..count-1 of the set. */
export function generateCameraFrames(count: number, options: CameraFrameOptions = {}): CameraFrame[] {
  const out: CameraFrame[] = [];
  for (let i = 0; i < count; i++) {
    const { png, label } = cameraFrameAt(i, options);
    out.push({ png, label });
  }
  return out;
}

function main(argv: string[]): void {
  const arg = (name: string, fallback: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : fallback;
  };
  const count = Number(arg('count', '20'));
  const seed = Number(arg('seed', '1'));
  const out = arg('out', 'out/camera-frames');
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(seed)) {
    throw new Error('usage: camera-frames.ts [--count N] [--seed S] [--out DIR]');
  }
  mkdirSync(out, { recursive: true });
  for (let i = 0; i < count; i++) {
    const f = cameraFrameAt(i, { seed });
    writeFileSync(join(out, `${String(i).padStart(5, '0')}-${f.label ?? 'blank'}.png`), f.png);
  }
  process.stdout.write(`wrote ${count} frames to ${out}\n`);
}

// Run as a script only (bundlers make every module `require.main`; check the file name too).
if (require.main === module && /camera-frames\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) main(process.argv.slice(2));
