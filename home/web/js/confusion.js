// Labelled vs predicted as a matrix; a cell opens its frames in the review queue.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { useServerEvent } from './events.js';
import { count, labelText, percent, sum } from './format.js';
import { html } from './html.js';
import { throttle } from './throttle.js';

export function ConfusionView() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = () =>
    api
      .confusion()
      .then((d) => {
        setData(d);
        setError(null);
      })
      .catch((e) => setError(e.message));
  const [reload] = useState(() => throttle(load, 500));
  useEffect(() => {
    load();
  }, []);
  useServerEvent('label', reload);

  if (error) return html`<div class="notice bad">The confusion matrix could not be loaded: ${error}</div>`;
  if (!data) return html`<div class="empty">Loading…</div>`;
  const max = Math.max(1, ...data.matrix.flat());
  const rowTotals = data.matrix.map((row) => sum(row));
  const colTotals = data.predicted.map((_, c) => sum(data.matrix.map((row) => row[c] ?? 0)));
  const digitRows = data.labels.map((l, r) => [l, r]).filter(([l]) => /^[0-9]$/.test(l));
  const labelledDigits = sum(digitRows.map(([, r]) => rowTotals[r]));
  const correct = sum(digitRows.map(([l, r]) => data.matrix[r][data.predicted.indexOf(l)] ?? 0));
  const open = (label, predicted) => {
    location.hash = `#/queue?status=labelled&label=${encodeURIComponent(label)}&predicted=${encodeURIComponent(predicted)}`;
  };
  return html`<div class="view" data-testid="view-confusion">
    <div class="summary">
      <div class="stat"><span class="stat-value">${count(sum(rowTotals))}</span><span class="stat-label">labelled frames</span></div>
      <div class="stat"><span class="stat-value">${percent(correct, labelledDigits)}</span><span class="stat-label">model agrees with the label (digits)</span></div>
      <div class="stat"><span class="stat-value">${count(rowTotals[data.labels.indexOf('not_a_digit')] ?? 0)}</span><span class="stat-label">not a digit</span></div>
    </div>
    <section class="panel">
      <header class="panel-head"><h3>Label (rows) vs model's guess (columns)</h3><span class="muted">click a cell to review its frames</span></header>
      ${sum(rowTotals) === 0 ? html`<p class="empty">No labelled frames yet: label some in the review queue.</p>` : null}
      <div class="table-scroll">
        <table class="confusion" data-testid="confusion-matrix">
          <thead>
            <tr><th class="corner">label \\ predicted</th>${data.predicted.map((p) => html`<th key=${p}>${p}</th>`)}<th>total</th><th>agree</th></tr>
          </thead>
          <tbody>
            ${data.labels.map((label, r) => {
              const row = data.matrix[r];
              const diagonal = data.predicted.indexOf(label);
              return html`<tr key=${label}>
                <th>${labelText(label)}</th>
                ${row.map((n, c) => {
                  const predicted = data.predicted[c];
                  const alpha = n === 0 ? 0 : 0.12 + 0.78 * (n / max);
                  const hue = c === diagonal ? '62, 207, 142' : '229, 83, 75';
                  return html`<td key=${predicted} class=${`cell${c === diagonal ? ' diag' : ''}`}>
                    <button
                      data-testid="confusion-cell"
                      data-label=${label}
                      data-predicted=${predicted}
                      disabled=${n === 0}
                      title=${`${count(n)} frames labelled ${labelText(label)} that the model read as ${predicted}`}
                      style=${n === 0 ? undefined : { background: `rgba(${hue}, ${alpha.toFixed(3)})` }}
                      onClick=${() => open(label, predicted)}
                    >${n === 0 ? '·' : count(n)}</button>
                  </td>`;
                })}
                <td class="num muted">${count(rowTotals[r])}</td>
                <td class="num muted">${diagonal >= 0 ? percent(row[diagonal] ?? 0, rowTotals[r]) : '–'}</td>
              </tr>`;
            })}
            <tr class="totals"><th>total</th>${colTotals.map((n, c) => html`<td key=${c} class="num muted">${count(n)}</td>`)}<td class="num">${count(sum(rowTotals))}</td><td></td></tr>
          </tbody>
        </table>
      </div>
    </section>
  </div>`;
}
