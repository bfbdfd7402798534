/**
 * Renders a (merged) metrics document as a compact text table, one row per camera: the
 * "metrics view" of the original, shown by `npm start` and `npm run metrics`.
 */
import type { LatencyBlock, MetricsDocument } from './document';

/** Seconds as a short human duration (µs, ms or s with three significant digits). */
export function formatSeconds(value: number | null): string {
  if (value === null) return '-';
  const abs = Math.abs(value);
  if (abs === 0) return '0';
  if (abs < 1e-3) return `${(value * 1e6).toPrecision(3)}µs`;
  if (abs < 1) return `${(value * 1e3).toPrecision(3)}ms`;
  if (abs < 1000) return `${value.toPrecision(3)}s`;
  return `${value.toFixed(0)}s`;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-';
}

function clock(iso: string): string {
  const match = /T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(iso);
  return match?.[1] ?? iso;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function pad(cells: string[], widths: number[]): string {
  return cells
    .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
    .join('  ')
    .trimEnd();
}

function p50p99(block: LatencyBlock): string {
  return `p50 ${formatSeconds(block['50'])} p99 ${formatSeconds(block['99'])}`;
}

/**
 * The table for one document: a header line (window, shards, frames, throughput, uncertain
 * share, unreadable records, model versions), one row per camera (frames, certain,
 * uncertain, accuracy when labelled, end-to-end p50/p99), a total row, and a line of
 * prep/predict/end-to-end percentiles. Pure; no trailing newline.
 */
export function renderMetricsTable(doc: MetricsDocument): string {
  const duration = (Date.parse(doc.window.end) - Date.parse(doc.window.start)) / 1000;
  const date = doc.window.start.slice(0, 10);
  const models = Object.keys(doc.model_versions).join(', ') || '-';
  const lines = [
    `window ${date} ${clock(doc.window.start)} - ${clock(doc.window.end)}` +
      ` (${Number.isFinite(duration) ? duration : '?'} s, ${doc.shard.split(',').filter((shard) => !shard.startsWith('shadow-scores:')).length || 1} shard(s)${doc.terminated_early ? ', ended early' : ''})`,
    `frames ${doc.count}  ${doc.throughput.toFixed(1)}/s  uncertain ${doc.uncertain} (${percent(doc.uncertain, doc.count)})` +
      `  unreadable ${doc.invalid.count}  model ${models}`,
  ];
  const header = ['camera', 'frames', 'certain', 'uncertain', 'accuracy', 'e2e p50', 'e2e p99'];
  const rows: string[][] = [];
  let labelled = 0;
  let correct = 0;
  for (const [camera, m] of Object.entries(doc.camera_metrics)) {
    const certain = sum(m.certain);
    const uncertain = sum(m.uncertain);
    labelled += m.accuracy?.labelled ?? 0;
    correct += m.accuracy?.correct ?? 0;
    rows.push([
      camera,
      String(m.count),
      String(certain),
      String(uncertain),
      m.accuracy ? percent(m.accuracy.correct, m.accuracy.labelled) : '-',
      formatSeconds(m.end_to_end['50']),
      formatSeconds(m.end_to_end['99']),
    ]);
  }
  const e2e = doc.latency_metrics.end_to_end;
  if (rows.length > 1 || rows.length === 0) {
    rows.push([
      'all',
      String(doc.count),
      String(doc.count - doc.uncertain),
      String(doc.uncertain),
      labelled > 0 ? percent(correct, labelled) : '-',
      formatSeconds(e2e['50']),
      formatSeconds(e2e['99']),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  lines.push(pad(header, widths));
  for (const row of rows) lines.push(pad(row, widths));
  lines.push(
    `prep ${p50p99(doc.latency_metrics.prep)} | predict ${p50p99(doc.latency_metrics.predict)}` +
      ` | end-to-end ${p50p99(e2e)}${e2e.negative > 0 ? ` (${e2e.negative} frame(s) from a camera clock ahead)` : ''}`,
  );
  lines.push(...versionAndShadowLines(doc));
  if (doc.rejected.count > 0) lines.push(rejectsLine(doc.rejected));
  if (doc.duplicates > 0) lines.push(`duplicates ${doc.duplicates} (delivered again, counted once)`);
  return lines.join('\n');
}

/** Cameras named on the rejects line; the rest are summed. */
const REJECT_CAMERAS_SHOWN = 5;

/** `rejected N: <camera> n (reason n, ...), ...`, the cameras with most rejects first. */
function rejectsLine(rejected: MetricsDocument['rejected']): string {
  const cameras = Object.entries(rejected.cameras)
    .map(([camera, reasons]) => ({ camera, reasons: Object.entries(reasons), total: sum(Object.values(reasons)) }))
    .sort((a, b) => b.total - a.total || (a.camera < b.camera ? -1 : 1));
  const shown = cameras
    .slice(0, REJECT_CAMERAS_SHOWN)
    .map((c) => `${c.camera} ${c.total} (${c.reasons.map(([reason, n]) => `${reason} ${n}`).join(', ')})`);
  const rest = cameras.slice(REJECT_CAMERAS_SHOWN);
  if (rest.length > 0) shown.push(`${rest.length} more camera(s) ${sum(rest.map((c) => c.total))}`);
  return `rejected ${rejected.count}: ${shown.join(', ')}`;
}

/**
 * One line per model version when several scored the window (a switch happened in it), and
 * one per shadow comparison: agreement, each model's accuracy on labelled frames, and the
 * most frequent disagreements as current->candidate class pairs.
 */
export function versionAndShadowLines(doc: MetricsDocument): string[] {
  const lines: string[] = [];
  const versions = Object.entries(doc.version_metrics ?? {});
  if (versions.length > 1) {
    lines.push(
      `by model ${versions
        .map(
          ([v, t]) =>
            `${v}: ${t.count} frames, ${t.uncertain} uncertain${t.labelled > 0 ? `, ${percent(t.correct, t.labelled)} right` : ''}`,
        )
        .join(' | ')}`,
    );
  }
  for (const s of doc.shadow ?? []) {
    const pairs = s.confusion
      .map((n, cell) => ({ n, from: Math.floor(cell / 10), to: cell % 10 }))
      .filter((c) => c.n > 0 && c.from !== c.to)
      .sort((a, b) => b.n - a.n)
      .slice(0, 3)
      .map((c) => `${c.from}->${c.to} x${c.n}`);
    const accuracy =
      s.labelled > 0
        ? `  labelled ${s.labelled}: current ${percent(s.current_correct, s.labelled)}, candidate ${percent(s.candidate_correct, s.labelled)}`
        : '';
    lines.push(
      `shadow ${s.candidate} vs ${s.current}: ${percent(s.agree, s.count)} agree of ${s.count}${accuracy}` +
        `${pairs.length > 0 ? `  disagree ${pairs.join(', ')}` : ''}`,
    );
  }
  return lines;
}
