// Rejected frames: counts by reason over time, and per reason the sentence saying what to
// do with samples of the offending payloads (shown as text).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { TimeChart } from './charts.js';
import { useServerEvent } from './events.js';
import { ago, count } from './format.js';
import { html } from './html.js';
import { throttle } from './throttle.js';

function seriesData(data) {
  const reasons = data.reasons.map((r) => r.reason);
  const x = data.series.map((s) => Date.parse(s.start) / 1000);
  const ys = reasons.map((reason) => data.series.map((s) => s.counts[reason] ?? 0));
  return { reasons, data: [x, ...ys] };
}

export function RejectedView() {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const load = () =>
    api
      .rejected()
      .then((d) => {
        setData(d);
        setError(null);
      })
      .catch((e) => setError(e.message));
  const [reload] = useState(() => throttle(load, 1000));
  useEffect(() => {
    load();
  }, []);
  useServerEvent('rejected', reload);

  if (error) return html`<div class="notice bad">Rejected frames could not be loaded: ${error}</div>`;
  if (!data) return html`<div class="empty">Loading…</div>`;
  const total = data.reasons.reduce((a, r) => a + r.count, 0);
  const chart = seriesData(data);
  return html`<div class="view" data-testid="view-rejected">
    <div class="summary">
      <div class="stat"><span class="stat-value">${count(total)}</span><span class="stat-label">rejected frames</span></div>
      <div class="stat"><span class="stat-value">${count(data.reasons.length)}</span><span class="stat-label">reasons</span></div>
    </div>
    ${
      total === 0
        ? html`<div class="empty">No frame has been rejected: every frame that arrived could be scored.</div>`
        : html`<section class="panel">
          <header class="panel-head"><h3>Rejected frames by reason</h3></header>
          <${TimeChart} key=${chart.reasons.join('|')} testid="chart-rejected" title="frames per interval" group="rejected"
            minSpan=${600}
            counts=${true} series=${chart.reasons.map((r) => ({ label: r }))} data=${chart.data} format=${(v) => String(Math.round(v))} yMin=${0} />
        </section>`
    }
    ${data.reasons.map(
      (r) => html`<section class="panel reason" key=${r.reason} data-testid="reject-reason" data-reason=${r.reason}>
      <header class="panel-head"><h3><code>${r.reason}</code></h3><span class="chip bad">${count(r.count)}</span></header>
      <p class="hint">${r.hint}</p>
      <div class="table-scroll">
        <table class="data samples">
          <thead><tr><th>frame</th><th>camera</th><th>received</th><th>error</th><th class="num">bytes</th><th>payload (start)</th></tr></thead>
          <tbody>
            ${r.samples.map(
              (s) => html`<tr key=${s.frame_id}>
              <td class="mono ellipsis" title=${s.frame_id}>${s.frame_id}</td>
              <td class="ellipsis" title=${s.camera ?? ''}>${s.camera ?? '–'}</td>
              <td title=${s.received_at}>${ago(s.received_at)}</td>
              <td class="error-text">${s.error}</td>
              <td class="num">${count(s.payload_bytes)}</td>
              <td><pre class="payload">${s.payload_preview}</pre></td>
            </tr>`,
            )}
          </tbody>
        </table>
      </div>
    </section>`,
    )}
  </div>`;
}
