// The edge's uplink to the home endpoint, as the home process that runs it reports it
// (GET /api/uplink, then `uplink` events): a link indicator for the header and the Uplink view.
// A home started on its own (npm run home) has no uplink and says so.
import { useEffect, useState } from 'preact/hooks';
import { request } from './api.js';
import { useServerEvent } from './events.js';
import { ago, clock, count, seconds } from './format.js';
import { html } from './html.js';

/** The uplink status: null while loading, `{ error }` when it cannot be read, else the API's answer. */
export function useUplink() {
  const [uplink, setUplink] = useState(null);
  const load = () =>
    request('GET', '/api/uplink')
      .then(setUplink)
      .catch((e) => setUplink((current) => (current && !current.error ? current : { error: e.message })));
  useEffect(() => {
    load();
  }, []);
  useServerEvent('uplink', setUplink);
  useServerEvent('reconnected', load);
  return uplink;
}

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const DOT = { up: 'live', down: 'closed', unknown: 'connecting' };

/** The header's one-line link state: "uplink up", "uplink down since 12:03:04", "uplink not configured". */
export function UplinkIndicator({ uplink }) {
  if (!uplink || uplink.error) return null;
  const text = !uplink.configured
    ? 'uplink not configured'
    : uplink.link === 'down'
      ? `uplink down since ${clock(uplink.link_since)}`
      : uplink.link === 'up'
        ? 'uplink up'
        : 'uplink not tried yet';
  const waiting = uplink.configured ? `; ${count(uplink.backlog.records)} records waiting at the edge` : '';
  return html`<a href="#/uplink" class="uplink-indicator muted" data-testid="uplink-indicator" data-link=${uplink.configured ? uplink.link : 'not-configured'} title=${uplink.configured ? `uplink to ${uplink.endpoint}${waiting}` : 'this home runs no uplink'}>
    <span class=${`dot ${uplink.configured ? DOT[uplink.link] : ''}`}></span> ${text}
  </a>`;
}

function dropsOf(streams) {
  return Object.entries(streams).flatMap(([stream, s]) =>
    Object.entries(s.dropped)
      .filter(([, n]) => n > 0)
      .map(([reason, n]) => ({ stream, reason, n })),
  );
}

/** The Uplink view: link, backlog per stream, drops, last success and error, policy and bound. */
export function UplinkView({ uplink }) {
  if (!uplink) return html`<div class="empty">Loading…</div>`;
  if (uplink.error) return html`<div class="notice bad">The uplink status could not be read: ${uplink.error}</div>`;
  if (!uplink.configured) {
    return html`<div class="view" data-testid="view-uplink">
      <p class="empty" data-testid="uplink-not-configured">This home runs no uplink: nothing is forwarded from here. Start the edge with <code>npm start -- --home-endpoint URL</code> to forward its outputs to a home Kinesis endpoint and see the link here.</p>
    </div>`;
  }
  const drops = dropsOf(uplink.streams);
  const b = uplink.backlog;
  return html`<div class="view" data-testid="view-uplink">
    <div class="summary">
      <div class="stat"><span class="stat-value" data-testid="uplink-link">${uplink.link}</span><span class="stat-label">link since ${clock(uplink.link_since)}</span></div>
      <div class="stat"><span class="stat-value" data-testid="uplink-backlog-records">${count(b.records)}</span><span class="stat-label">records waiting</span></div>
      <div class="stat"><span class="stat-value">${bytes(b.bytes)}</span><span class="stat-label">of ${bytes(b.max_bytes)}</span></div>
      <div class="stat"><span class="stat-value">${b.policy}</span><span class="stat-label">when full · ${b.persisted ? 'on disk' : 'in memory'}</span></div>
    </div>
    <section class="panel">
      <header class="panel-head"><h3>Link</h3><span class="muted">${uplink.endpoint}${uplink.stream_prefix ? ` · prefix ${uplink.stream_prefix}` : ''}</span></header>
      <table class="data" data-testid="uplink-link-table"><tbody>
        <tr><th>last success</th><td data-testid="uplink-last-success">${uplink.last_success ? `${clock(uplink.last_success)} (${ago(uplink.last_success)})` : 'none yet'}</td></tr>
        <tr><th>last error</th><td data-testid="uplink-last-error">${uplink.last_error ? `${clock(uplink.last_error.at)}: ${uplink.last_error.message}` : 'none'}</td></tr>
        <tr><th>failures in a row</th><td>${count(uplink.consecutive_failures)}${uplink.next_attempt_at ? ` · next try ${clock(uplink.next_attempt_at)}` : ''}</td></tr>
        <tr><th>bandwidth cap</th><td>${uplink.kbps > 0 ? `${count(uplink.kbps)} kbit/s` : 'none'} · ${bytes(uplink.bytes_attempted)} put on the link</td></tr>
        <tr><th>duplicates skipped</th><td>${count(uplink.duplicates_skipped)}</td></tr>
      </tbody></table>
    </section>
    <section class="panel">
      <header class="panel-head"><h3>Backlog per stream</h3><span class="muted">highest priority first</span></header>
      <table class="data" data-testid="uplink-streams">
        <thead><tr><th>stream</th><th class="num">waiting</th><th class="num">bytes</th><th class="num">oldest</th><th class="num">sent</th><th class="num">sent bytes</th></tr></thead>
        <tbody>
          ${Object.entries(uplink.streams).map(
            ([stream, s]) => html`<tr key=${stream} data-testid="uplink-stream" data-stream=${stream} data-records=${s.records}>
              <td class="mono">${stream}</td>
              <td class="num">${count(s.records)}</td>
              <td class="num">${bytes(s.bytes)}</td>
              <td class="num">${s.oldest_age_seconds === null ? '–' : seconds(s.oldest_age_seconds)}</td>
              <td class="num">${count(s.sent_records)}</td>
              <td class="num">${bytes(s.sent_bytes)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>
    <section class="panel">
      <header class="panel-head"><h3>Dropped at the edge</h3><span class="muted">by stream and reason</span></header>
      ${
        drops.length === 0
          ? html`<p class="empty" data-testid="uplink-dropped">Nothing dropped.</p>`
          : html`<table class="data" data-testid="uplink-dropped">
            <thead><tr><th>stream</th><th>reason</th><th class="num">records</th></tr></thead>
            <tbody>${drops.map((d) => html`<tr key=${`${d.stream}/${d.reason}`}><td class="mono">${d.stream}</td><td>${d.reason}</td><td class="num">${count(d.n)}</td></tr>`)}</tbody>
          </table>`
      }
    </section>
  </div>`;
}
