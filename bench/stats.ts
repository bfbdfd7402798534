/**
 * Figures of the benchmark: repeated measurements summarised as min / median / max, latency
 * percentiles, and the plain-text table `npm run bench` prints.
 */

/** One figure measured several times. */
export interface Figure {
  min: number;
  median: number;
  max: number;
  runs: number[];
}

/** Summarises repeated measurements (NaN-free input expected; an empty list gives NaN). */
export function figure(runs: readonly number[]): Figure {
  const sorted = [...runs].sort((a, b) => a - b);
  return { min: sorted[0] ?? Number.NaN, median: median(sorted), max: sorted[sorted.length - 1] ?? Number.NaN, runs: [...runs] };
}

/** Median of a list (the mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The p-th percentile (0-100) of a list, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * The largest of `values` (-Infinity when empty). `Math.max(...values)` passes every value as
 * an argument and overflows the stack past about 120,000 of them (a soak's latencies).
 */
export function maxOf(values: Iterable<number>): number {
  let max = Number.NEGATIVE_INFINITY;
  for (const value of values) if (value > max) max = value;
  return max;
}

/** Formats a number with about three significant digits and thousands separators. */
export function fmt(value: number, unit = ''): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return `${value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}${unit}`;
}

/** One row of the results table. */
export interface Row {
  section: string;
  name: string;
  value: Figure;
  unit: string;
  /** Ratio of the median to a reference figure's median, shown as a percentage. */
  ratio?: { to: string; value: number };
  /** Median CPU time per frame (ms), all threads of the process doing the work. */
  cpuMs?: number;
  note?: string;
}

/** The table as aligned plain text, one section after another. */
export function renderTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.name,
    fmt(r.value.min),
    fmt(r.value.median),
    fmt(r.value.max),
    r.unit,
    r.cpuMs === undefined ? '' : fmt(r.cpuMs),
    r.ratio ? `${fmt(r.ratio.value * 100)}% of ${r.ratio.to}` : '',
    r.note ?? '',
  ]);
  const header = ['figure', 'min', 'median', 'max', 'unit', 'cpu ms/frame', 'ratio', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => ((i >= 1 && i <= 3) || i === 5 ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const out: string[] = [];
  let section = '';
  rows.forEach((r, k) => {
    if (r.section !== section) {
      section = r.section;
      out.push('', `== ${section}`, line(header));
    }
    out.push(line(cells[k] as string[]));
  });
  return out.join('\n');
}
