/** The digit on the detection copy: 8-connected blobs above a threshold, the ones that are ink, joined. */
import { grow } from './buffers';

/** Smallest blob (detection pixels) that can be ink rather than a speck. */
const MIN_BLOB_AREA = 3;
/** A further blob joins the digit when it weighs this share of the heaviest blob... */
const JOIN_MASS_SHARE = 0.08;
/** ...and lies within this share of the digit's size from it. */
const JOIN_DISTANCE_SHARE = 0.35;

let labelBuf = new Int32Array(0);
let stackBuf = new Int32Array(0);

interface Blob {
  id: number;
  area: number;
  mass: number;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Region {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * Labels 8-connected blobs above `threshold` and returns the digit's box in detection
 * pixels: the heaviest blob plus sizeable blobs near it, or undefined for a blank page.
 */
export function findDigit(dark: Float32Array, lw: number, lh: number, threshold: number, minStep: number): Region | undefined {
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
  const real = blobs
    .slice(0, 64)
    .filter((b) => b.area >= MIN_BLOB_AREA && stepContrast(dark, labels, lw, lh, b, threshold) >= minStep);
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
