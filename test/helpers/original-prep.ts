/**
 * The original ImagePrep, step by step, with no ink/paper separation: invert, crop to the box
 * around every non-zero pixel widened to a square, PIL Lanczos to 20x20, paste into 28x28 at
 * round(14 - centre of mass). Used to check that clean white frames prepare as they did.
 */
import { resizeLanczos } from '../../functions/lib/prepare';

export function originalPrep(gray: Uint8Array, width: number, height: number): Uint8Array {
  const inv = new Float32Array(width * height);
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = 255 - (gray[y * width + x] as number);
      inv[y * width + x] = v;
      if (v > 0) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  const out = new Uint8Array(784);
  if (x1 < 0) return out;
  const bw = x1 - x0 + 1;
  const bh = y1 - y0 + 1;
  const side = Math.max(bw, bh);
  const sx = x0 - ((side - bw) >> 1);
  const sy = y0 - ((side - bh) >> 1);
  const crop = new Float32Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const gx = sx + x;
      const gy = sy + y;
      if (gx >= 0 && gx < width && gy >= 0 && gy < height) crop[y * side + x] = inv[gy * width + gx] as number;
    }
  }
  const box = resizeLanczos(crop, side, 20);
  let m = 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < 400; i++) {
    const v = box[i] as number;
    m += v;
    mx += (i % 20) * v;
    my += Math.floor(i / 20) * v;
  }
  if (m === 0) return out;
  const pyRound = (v: number): number => {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  };
  const ox = pyRound(14 - mx / m);
  const oy = pyRound(14 - my / m);
  for (let y = 0; y < 20; y++) {
    for (let x = 0; x < 20; x++) {
      const tx = x + ox;
      const ty = y + oy;
      if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) out[ty * 28 + tx] = box[y * 20 + x] as number;
    }
  }
  return out;
}
