// Number and time formatting shared by the views.

/** Seconds as µs, ms or s with three significant digits; '–' for null. */
export function seconds(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  if (abs === 0) return '0';
  if (abs < 1e-3) return `${(value * 1e6).toPrecision(3)} µs`;
  if (abs < 1) return `${(value * 1e3).toPrecision(3)} ms`;
  return `${value.toPrecision(3)} s`;
}

/** A share as a percentage with one decimal; '–' when the whole is 0. */
export function percent(part, whole) {
  if (!whole) return '–';
  return `${((100 * part) / whole).toFixed(1)}%`;
}

/** A probability (0-1) as a percentage. */
export function prob(p) {
  return `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
}

/** Integer with thousands separators. */
export function count(n) {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '–';
}

/** HH:MM:SS of an ISO time, in the viewer's time zone. */
export function clock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleTimeString('en-GB', { hour12: false });
}

/** "3 s ago", "5 min ago" for an ISO time. */
export function ago(iso, now = Date.now()) {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** The label as people read it. */
export function labelText(label) {
  if (label === 'not_a_digit') return 'not a digit';
  if (label === null || label === undefined) return 'unlabelled';
  return String(label);
}

export function sum(values) {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
