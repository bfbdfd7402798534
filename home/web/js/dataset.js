// The dataset: review progress, class balance and the export (ImageFolder layout).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { useServerEvent } from './events.js';
import { ago, count, percent } from './format.js';
import { html } from './html.js';
import { throttle } from './throttle.js';

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** "0: 12 · 1: 9 · … · not a digit: 2 · total: 123" from the export's counts (nested or flat). */
function countsText(counts) {
  const perClass = counts && typeof counts.per_class === 'object' ? counts.per_class : (counts ?? {});
  const parts = Object.entries(perClass)
    .filter(([, n]) => typeof n === 'number')
    .map(([k, n]) => `${k}: ${count(n)}`);
  if (typeof counts?.not_a_digit === 'number' && perClass !== counts) parts.push(`not a digit: ${count(counts.not_a_digit)}`);
  if (typeof counts?.total === 'number' && perClass !== counts) parts.push(`total: ${count(counts.total)}`);
  return parts.join(' · ');
}

/** "1.2 GB", "340 MB", "12 kB" (decimal units, as --max-gb). */
function size(bytes) {
  if (!Number.isFinite(bytes)) return '–';
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.round(bytes / 1e3)} kB`;
}

/** The data folder against its bound, and what was pruned to keep it there. */
function RetentionPanel() {
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const [reload] = useState(() =>
    throttle(
      () =>
        api
          .retention()
          .then((r) => {
            setInfo(r);
            setError(null);
          })
          .catch((e) => setError(e.message)),
      5000,
    ),
  );
  useEffect(() => reload(), []);
  useServerEvent('retention', setInfo);
  useServerEvent('frames', reload);
  if (!info)
    return error
      ? html`<section class="panel"><div class="notice bad">The data folder's size could not be loaded: ${error}</div></section>`
      : null;
  const { bound, last_prune: last, total } = info;
  const share = bound.max_bytes ? Math.min(100, (100 * info.data_bytes) / bound.max_bytes) : 0;
  return html`<section class="panel" data-testid="retention">
    <header class="panel-head"><h3>Data folder</h3><span class="muted">frames nobody labelled are pruned, oldest first; labelled frames are kept</span></header>
    <div data-testid="retention-size"><b>${size(info.data_bytes)}</b> ${bound.max_bytes ? html`of <b>${size(bound.max_bytes)}</b> (--max-gb)` : 'with no size bound'} · unlabelled frames kept ${bound.keep_days ? html`<b>${count(bound.keep_days)} days</b> (--keep-days)` : 'with no age bound'}</div>
    ${bound.max_bytes ? html`<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=${bound.max_bytes} aria-valuenow=${info.data_bytes}><div class="progress-bar" style=${{ width: `${share}%` }}></div></div>` : null}
    <div class="muted" data-testid="retention-last">${
      last
        ? `last pruned ${ago(last.at)}: ${count(last.pruned)} frames, ${size(last.bytes_before - last.bytes_after)} freed in ${count(last.ms)} ms · in all ${count(total.pruned)} frames, ${size(total.bytes_freed)} in ${count(total.prunes)} prunes`
        : 'nothing pruned yet'
    }${info.running ? ' · pruning now' : ''}</div>
    ${info.over_bound_bytes > 0 ? html`<div class="notice bad" data-testid="retention-over">${size(info.over_bound_bytes)} over the bound that pruning cannot free (labelled frames, exports and other files stay): raise --max-gb or move exports elsewhere.</div>` : null}
    ${info.last_error ? html`<div class="notice bad">The last pruning failed: ${info.last_error}</div>` : null}
  </section>`;
}

export function DatasetView({ notify }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [dir, setDir] = useState('');
  const [exporting, setExporting] = useState(false);
  const [result, setResult] = useState(null);
  useEffect(() => {
    api
      .dataset()
      .then(setData)
      .catch((e) => setError(e.message));
  }, []);
  useServerEvent('dataset', setData);

  const exportNow = async (event) => {
    event.preventDefault();
    setExporting(true);
    try {
      const answer = await api.exportDataset(dir.trim() || undefined);
      setResult(answer);
      notify(`dataset ${answer.version} written to ${answer.dir}`);
    } catch (e) {
      notify(e.message, 'bad');
    } finally {
      setExporting(false);
    }
  };

  if (error && !data) return html`<div class="notice bad">The dataset could not be loaded: ${error}</div>`;
  if (!data) return html`<div class="empty">Loading…</div>`;
  const classes = [...DIGITS.map((d) => [d, data.per_class[d] ?? 0]), ['not a digit', data.not_a_digit]];
  const max = Math.max(1, ...classes.map(([, n]) => n));
  const mean = data.labelled > 0 ? (data.labelled - data.not_a_digit) / 10 : 0;
  return html`<div class="view" data-testid="view-dataset">
    <div class="summary">
      <div class="stat"><span class="stat-value">${count(data.labelled)}</span><span class="stat-label">labelled</span></div>
      <div class="stat"><span class="stat-value">${count(data.unlabelled)}</span><span class="stat-label">to review</span></div>
      <div class="stat"><span class="stat-value">${count(data.frames)}</span><span class="stat-label">frames kept</span></div>
      <div class="stat"><span class="stat-value mono small">${data.version}</span><span class="stat-label">version (content hash)</span></div>
    </div>
    <section class="panel">
      <header class="panel-head"><h3>Review progress</h3><span class="muted">${percent(data.labelled, data.frames)} labelled</span></header>
      <div class="progress" data-testid="dataset-progress" role="progressbar" aria-valuemin="0" aria-valuemax=${data.frames} aria-valuenow=${data.labelled}>
        <div class="progress-bar" style=${{ width: `${data.frames ? (100 * data.labelled) / data.frames : 0}%` }}></div>
      </div>
    </section>
    <div class="two-col">
      <section class="panel">
        <header class="panel-head"><h3>Class balance</h3><span class="muted">labelled frames per class</span></header>
        <table class="data balance" data-testid="class-balance">
          <tbody>
            ${classes.map(
              ([name, n]) => html`<tr key=${name}>
              <th>${name}</th>
              <td class="meter-cell"><div class="meter"><div class=${`meter-bar${mean > 0 && n < mean / 2 && name !== 'not a digit' ? ' low' : ''}`} style=${{ width: `${(100 * n) / max}%` }}></div></div></td>
              <td class="num">${count(n)}</td>
              <td class="num muted">${percent(n, data.labelled)}</td>
            </tr>`,
            )}
          </tbody>
        </table>
      </section>
      <section class="panel">
        <header class="panel-head"><h3>Export</h3></header>
        <p class="muted">Writes <code>${'DIR/<digit>/<frame>.png'}</code>, <code>metadata.jsonl</code> and <code>dataset.json</code>, the layout torchvision <code>ImageFolder</code>, Keras and Hugging Face <code>imagefolder</code> read; not-a-digit frames go to <code>DIR.not_a_digit/</code>.</p>
        <form class="export" onSubmit=${exportNow}>
          <label class="field wide">
            <span>folder (on the home's machine)</span>
            <input type="text" data-testid="export-dir" placeholder="default: exports/<version> in the data folder" value=${dir} onInput=${(e) => setDir(e.currentTarget.value)} />
          </label>
          <button class="primary" type="submit" data-testid="export-button" disabled=${exporting || data.labelled === 0}>${exporting ? 'Exporting…' : 'Export dataset'}</button>
        </form>
        ${
          result
            ? html`<div class="export-result" data-testid="export-result" data-dir=${result.dir} data-version=${result.version}>
              <div><span class="muted">written to</span> <code data-testid="export-dir-written">${result.dir}</code></div>
              <div><span class="muted">version</span> <code>${result.version}</code></div>
              <div class="muted" data-testid="export-counts">${countsText(result.counts)}</div>
            </div>`
            : null
        }
      </section>
    </div>
    <${RetentionPanel} />
  </div>`;
}
