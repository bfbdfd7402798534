// Live metrics: per-camera charts over the last hour of windows, the latest window's
// per-digit bars, the last 25 windows as a table and the model versions seen. Windows
// arrive as `window` events; nothing reloads.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from './api.js';
import { DigitBars, TimeChart } from './charts.js';
import { useServerEvent } from './events.js';
import { clock, count, percent, seconds, sum } from './format.js';
import { html } from './html.js';

const HOUR_MS = 3600_000;
const TABLE_ROWS = 25;

function windowSeconds(doc) {
  const ms = Date.parse(doc.window.end) - Date.parse(doc.window.start);
  return ms > 0 ? ms / 1000 : 0;
}

/** Inserts or replaces (same window start: a later merge of more shards) and keeps an hour. */
export function upsertWindow(windows, doc) {
  const next = windows.filter((w) => w.window.start !== doc.window.start);
  next.push(doc);
  next.sort((a, b) => Date.parse(a.window.start) - Date.parse(b.window.start));
  const newest = Date.parse(next[next.length - 1].window.end);
  return next.filter((w) => Date.parse(w.window.end) >= newest - HOUR_MS);
}

/** Per-camera columns for uPlot: x (window end, s) and one array per measure. */
function cameraSeries(windows, camera) {
  const x = [];
  const fps = [];
  const uncertainShare = [];
  const p50 = [];
  const p99 = [];
  const accuracy = [];
  for (const doc of windows) {
    const m = doc.camera_metrics[camera];
    x.push(Date.parse(doc.window.end) / 1000);
    if (!m) {
      for (const column of [fps, uncertainShare, p50, p99, accuracy]) column.push(null);
      continue;
    }
    const length = windowSeconds(doc);
    fps.push(length > 0 ? m.count / length : null);
    uncertainShare.push(m.count > 0 ? (100 * sum(m.uncertain)) / m.count : null);
    p50.push(m.end_to_end['50'] ?? null);
    p99.push(m.end_to_end['99'] ?? null);
    accuracy.push(m.accuracy && m.accuracy.labelled > 0 ? 100 * m.accuracy.rate : null);
  }
  return { x, fps, uncertainShare, p50, p99, accuracy };
}

function Stat({ label, value, hint }) {
  return html`<div class="stat" title=${hint ?? ''}><span class="stat-value">${value}</span><span class="stat-label">${label}</span></div>`;
}

function CameraPanel({ camera, windows, latest }) {
  const s = useMemo(() => cameraSeries(windows, camera), [windows, camera]);
  const m = latest.camera_metrics[camera];
  const certain = m ? m.certain : new Array(10).fill(0);
  const uncertain = m ? m.uncertain : new Array(10).fill(0);
  const e2e = m?.end_to_end;
  return html`<section class="panel camera" data-testid="camera-panel" data-camera=${camera}>
    <header class="panel-head">
      <h3 class="camera-name">${camera}</h3>
      <div class="stats">
        <${Stat} label="frames/s" value=${m ? (m.count / Math.max(windowSeconds(latest), 1e-9)).toFixed(1) : '–'} />
        <${Stat} label="uncertain" value=${m ? percent(sum(m.uncertain), m.count) : '–'} />
        <${Stat} label="e2e p50" value=${seconds(e2e?.['50'])} />
        <${Stat} label="e2e p99" value=${seconds(e2e?.['99'])} />
        <${Stat} label="accuracy" value=${m?.accuracy ? percent(m.accuracy.correct, m.accuracy.labelled) : '–'} hint="frames that carried a label" />
      </div>
    </header>
    <div class="chart-grid">
      <${TimeChart} testid="chart-throughput" title="frames/s" series=${[{ label: 'frames/s' }]} data=${[s.x, s.fps]} format=${(v) => v.toFixed(1)} yMin=${0} />
      <${TimeChart} testid="chart-uncertain" title="uncertain share" series=${[{ label: 'uncertain %', color: '#f5a524' }]} data=${[s.x, s.uncertainShare]} format=${(v) => `${v.toFixed(1)}%`} yMin=${0} />
      <${TimeChart} testid="chart-latency" title="end-to-end latency" series=${[{ label: 'p50', color: '#3ecf8e' }, { label: 'p99', color: '#e5534b' }]} data=${[s.x, s.p50, s.p99]} format=${seconds} yMin=${0} />
      <${TimeChart} testid="chart-accuracy" title="accuracy (labelled frames)" series=${[{ label: 'accuracy %', color: '#b083f0' }]} data=${[s.x, s.accuracy]} format=${(v) => `${v.toFixed(1)}%`} />
      <${DigitBars} testid="chart-digits" title=${`per digit, window ending ${clock(latest.window.end)}`} certain=${certain} uncertain=${uncertain} />
    </div>
  </section>`;
}

function WindowsTable({ windows }) {
  const rows = windows.slice(-TABLE_ROWS).reverse();
  return html`<section class="panel">
    <header class="panel-head"><h3>Last ${TABLE_ROWS} windows</h3><span class="muted">${windows.length} in the last hour</span></header>
    <div class="table-scroll">
      <table class="data" data-testid="windows-table">
        <thead><tr>
          <th>window</th><th class="num">s</th><th>shards</th><th class="num">frames</th><th class="num">frames/s</th>
          <th class="num">uncertain</th><th class="num">accuracy</th><th class="num">e2e p50</th><th class="num">e2e p99</th>
          <th class="num">prep p50</th><th class="num">predict p50</th><th class="num">unreadable</th><th>cameras</th><th>models</th>
        </tr></thead>
        <tbody>
          ${rows.map((doc) => {
            const cams = Object.values(doc.camera_metrics);
            const labelled = sum(cams.map((c) => c.accuracy?.labelled ?? 0));
            const correct = sum(cams.map((c) => c.accuracy?.correct ?? 0));
            return html`<tr key=${doc.window.start} data-testid="window-row" data-start=${doc.window.start}>
              <td class="mono">${clock(doc.window.start)}–${clock(doc.window.end)}${doc.terminated_early ? html` <span class="chip warn">early</span>` : null}</td>
              <td class="num">${windowSeconds(doc)}</td>
              <td>${doc.shard.split(',').length}</td>
              <td class="num">${count(doc.count)}</td>
              <td class="num">${doc.throughput.toFixed(1)}</td>
              <td class="num">${count(doc.uncertain)} <span class="muted">${percent(doc.uncertain, doc.count)}</span></td>
              <td class="num">${labelled ? percent(correct, labelled) : '–'}</td>
              <td class="num">${seconds(doc.latency_metrics.end_to_end['50'])}</td>
              <td class="num">${seconds(doc.latency_metrics.end_to_end['99'])}</td>
              <td class="num">${seconds(doc.latency_metrics.prep['50'])}</td>
              <td class="num">${seconds(doc.latency_metrics.predict['50'])}</td>
              <td class="num">${doc.invalid.count ? html`<span class="chip bad">${doc.invalid.count}</span>` : '0'}</td>
              <td class="ellipsis">${Object.keys(doc.camera_metrics).join(', ')}</td>
              <td class="mono ellipsis">${Object.keys(doc.model_versions).join(', ')}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    </div>
  </section>`;
}

function ModelVersions({ windows, models }) {
  const frames = new Map();
  for (const doc of windows) {
    for (const [version, n] of Object.entries(doc.model_versions)) frames.set(version, (frames.get(version) ?? 0) + n);
  }
  for (const version of models) if (!frames.has(version)) frames.set(version, 0);
  return html`<section class="panel" data-testid="model-versions">
    <header class="panel-head"><h3>Model versions seen</h3></header>
    ${
      frames.size === 0
        ? html`<p class="empty">No model has scored a frame yet.</p>`
        : html`<ul class="models">
          ${[...frames].map(([version, n]) => html`<li key=${version}><code>${version}</code><span class="muted">${count(n)} frames in the last hour</span></li>`)}
        </ul>`
    }
  </section>`;
}

/** The Live metrics view. `models` are the versions the server has seen (GET /api/status). */
export function LiveView({ models }) {
  const [windows, setWindows] = useState(null);
  const [error, setError] = useState(null);

  const load = () =>
    api
      .metrics(new Date(Date.now() - HOUR_MS).toISOString())
      .then((answer) => {
        setWindows((current) => (current ?? []).concat(answer.windows).reduce(upsertWindow, []));
        setError(null);
      })
      .catch((e) => setError(e.message));

  useEffect(() => {
    load();
  }, []);
  useServerEvent('window', (doc) => setWindows((current) => upsertWindow(current ?? [], doc)));
  useServerEvent('reconnected', load);

  if (error && !windows) return html`<div class="notice bad">Metrics could not be loaded: ${error}</div>`;
  if (!windows) return html`<div class="empty">Loading windows…</div>`;
  const latest = windows[windows.length - 1];
  const cameras = latest
    ? [...new Set(windows.flatMap((w) => Object.keys(w.camera_metrics)))].sort(
        (a, b) => (latest.camera_metrics[b]?.count ?? 0) - (latest.camera_metrics[a]?.count ?? 0),
      )
    : [];
  return html`<div class="view live" data-testid="view-live">
    ${error ? html`<div class="notice bad">${error}</div>` : null}
    ${
      latest
        ? html`<div class="summary">
          <${Stat} label="latest window" value=${`${clock(latest.window.start)}–${clock(latest.window.end)}`} />
          <${Stat} label="frames" value=${count(latest.count)} />
          <${Stat} label="frames/s" value=${latest.throughput.toFixed(1)} />
          <${Stat} label="uncertain" value=${percent(latest.uncertain, latest.count)} />
          <${Stat} label="e2e p50" value=${seconds(latest.latency_metrics.end_to_end['50'])} />
          <${Stat} label="e2e p99" value=${seconds(latest.latency_metrics.end_to_end['99'])} />
          <${Stat} label="unreadable" value=${count(latest.invalid.count)} />
          <${Stat} label="cameras" value=${count(cameras.length)} />
        </div>`
        : html`<div class="empty">No metrics window yet: windows appear here as the pipeline closes them.</div>`
    }
    ${cameras.map((camera) => html`<${CameraPanel} key=${camera} camera=${camera} windows=${windows} latest=${latest} />`)}
    <div class="two-col">
      <${WindowsTable} windows=${windows} />
      <${ModelVersions} windows=${windows} models=${models} />
    </div>
  </div>`;
}
