/**
 * The paper model: where the paper is and how bright, so that gray paper, gradients and
 * vignetting drop out and only ink is left. Nodes on the corners of a grid of up to 6x6 cells
 * (frame borders included), each a plane fitted to the window around it without the ink,
 * repaired where a thick stroke covers a whole cell; bilinear between nodes.
 */
import { diffSigma, histQuantile, sampleStep } from './statistics';

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

const nodeHist = new Uint32Array(256);

/** The paper's node grid over a detection copy: `nx` x `ny` brightness levels, row-major. */
export interface PaperGrid {
  grid: Float32Array;
  nx: number;
  ny: number;
}

/**
 * Estimates the paper on a `lw` x `lh` detection copy: each node starts as the bright
 * percentile of the cell-sized window around it, is refined to a plane fitted without the ink
 * when the paper is uneven, and cells covered by ink take the smooth surface's value.
 */
export function estimatePaper(low: Float32Array, lw: number, lh: number): PaperGrid {
  const ln = lw * lh;
  const cellsX = cellsFor(lw);
  const cellsY = cellsFor(lh);
  const nx = cellsX + 1;
  const ny = cellsY + 1;
  const grid = new Float32Array(nx * ny);
  for (let cy = 0; cy < ny; cy++) {
    const [ya, yb] = nodeWindow(cy, cellsY, lh);
    for (let cx = 0; cx < nx; cx++) {
      const [xa, xb] = nodeWindow(cx, cellsX, lw);
      nodeHist.fill(0);
      for (let y = ya; y < yb; y++) {
        const row = y * lw;
        for (let x = xa; x < xb; x++) {
          const v = ((low[row + x] as number) + 0.5) | 0;
          nodeHist[v] = (nodeHist[v] as number) + 1;
        }
      }
      grid[cy * nx + cx] = histQuantile(nodeHist, (yb - ya) * (xb - xa), BG_PERCENTILE);
    }
  }
  let uneven = false;
  for (let i = 1; i < grid.length; i++) if (grid[i] !== grid[0]) uneven = true;
  if (uneven) refineNodes(low, lw, lh, cellsX, cellsY, grid, diffSigma(low, lw, lh, sampleStep(ln)));
  repairInkCells(grid, nx, ny);
  return { grid, nx, ny };
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

export function bgAt(
  grid: Float32Array,
  nx: number,
  _ny: number,
  xi: number,
  xf: number,
  yi: number,
  yf: number,
  cap: number,
): number {
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
    for (let r = col + 1; r < terms; r++)
      if (Math.abs(m[r * w + col] as number) > Math.abs(m[pivot * w + col] as number)) pivot = r;
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

/**
 * Replaces each node's bright percentile by the paper level at the node itself: a plane fitted
 * to the window's pixels, refitted twice without the pixels well below it (ink), evaluated at
 * the node. A percentile alone is biased towards the bright side of a window, which at the
 * frame's border (one-sided windows) under vignetting reads as ink in the corners.
 */
function refineNodes(
  low: Float32Array,
  lw: number,
  lh: number,
  cellsX: number,
  cellsY: number,
  grid: Float32Array,
  sigma: number,
): void {
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

function cellsFor(n: number): number {
  return Math.max(1, Math.min(BG_MAX_CELLS, Math.ceil(n / BG_CELL), Math.floor(n / BG_MIN_CELL)));
}

export interface Axes {
  xi: Int32Array;
  xf: Float32Array;
  yi: Int32Array;
  yf: Float32Array;
}

const axesCache = new Map<string, Axes>();

/** Bilinear weights from every pixel of a w x h image (reduced by f) to the grid's cell centres. */
export function backgroundAxes(w: number, h: number, f: number, nx: number, ny: number, lw: number, lh: number): Axes {
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
