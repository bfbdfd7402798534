// The home page: a header with the views as tabs, the connection state and the source, and
// the view of the URL's hash (#/live, #/queue?..., #/confusion, #/rejected, #/dataset, #/models, #/uplink).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './js/api.js';
import { ConfusionView } from './js/confusion.js';
import { DatasetView } from './js/dataset.js';
import { connectEvents, useServerEvent } from './js/events.js';
import { count } from './js/format.js';
import { html } from './js/html.js';
import { LiveView } from './js/live.js';
import { ModelsView } from './js/models.js';
import { QueueView } from './js/queue.js';
import { RejectedView } from './js/rejected.js';
import { throttle } from './js/throttle.js';
import { UplinkIndicator, UplinkView, useUplink } from './js/uplink.js';

const TABS = [
  ['live', 'Live metrics'],
  ['queue', 'Review queue'],
  ['confusion', 'Confusion'],
  ['rejected', 'Rejected'],
  ['dataset', 'Dataset'],
  ['models', 'Models'],
  ['uplink', 'Uplink'],
];

function parseHash() {
  const [path, search] = location.hash.replace(/^#\/?/, '').split('?');
  const tab = TABS.some(([id]) => id === path) ? path : 'live';
  return { tab, params: new URLSearchParams(search ?? '') };
}

function Toasts({ toasts }) {
  return html`<div class="toasts" aria-live="polite">
    ${toasts.map((t) => html`<div key=${t.id} class=${`toast ${t.tone}`} data-testid="toast">${t.text}</div>`)}
  </div>`;
}

function App() {
  const [route, setRoute] = useState(parseHash);
  const [status, setStatus] = useState(null);
  const [dataset, setDataset] = useState(null);
  const [connection, setConnection] = useState('connecting');
  const [toasts, setToasts] = useState([]);
  const [fatal, setFatal] = useState(null);
  const uplink = useUplink();

  const notify = (text, tone = 'ok') => {
    const id = Math.random();
    setToasts((list) => [...list.slice(-3), { id, text, tone }]);
    setTimeout(() => setToasts((list) => list.filter((t) => t.id !== id)), tone === 'bad' ? 8000 : 3500);
  };
  const loadStatus = () =>
    api
      .status()
      .then((s) => {
        setStatus(s);
        setFatal(null);
      })
      .catch((e) =>
        setFatal(
          e.status === 401
            ? 'This home needs its token: open the page once as /?token=<token> (it is then kept in a cookie).'
            : e.message,
        ),
      );
  const [reloadStatus] = useState(() => throttle(loadStatus, 1000));

  useEffect(() => {
    const onHash = () => setRoute(parseHash());
    window.addEventListener('hashchange', onHash);
    // The token, when given in the URL, is now in a cookie: keep it out of the address bar.
    if (new URLSearchParams(location.search).has('token')) history.replaceState(null, '', `/${location.hash}`);
    loadStatus();
    api
      .dataset()
      .then(setDataset)
      .catch(() => {});
    connectEvents(setConnection);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  useServerEvent('window', reloadStatus);
  useServerEvent('frames', reloadStatus);
  useServerEvent('dataset', setDataset);

  const models = status?.models ?? [];
  const badge = { queue: dataset?.unlabelled, dataset: dataset?.labelled };
  return html`<div class="app">
    <header class="topbar">
      <div class="brand"><span class="logo" aria-hidden="true">◧</span> home <span class="muted">edge-camera-classifier</span></div>
      <nav class="tabs" role="tablist">
        ${TABS.map(
          ([
            id,
            name,
          ]) => html`<a key=${id} role="tab" href=${`#/${id}`} data-testid=${`tab-${id}`} class=${route.tab === id ? 'on' : ''} aria-selected=${route.tab === id ? 'true' : 'false'}>
          ${name}${badge[id] !== undefined ? html` <span class="badge">${count(badge[id])}</span>` : null}
        </a>`,
        )}
      </nav>
      <div class="source">
        <span class=${`dot ${connection}`} data-testid="connection" data-state=${connection} title=${`event stream: ${connection}`}></span>
        <span class="muted">${connection}</span>
        <${UplinkIndicator} uplink=${uplink} />
        ${status?.source ? html`<span class="muted ellipsis" title=${`${status.source.endpoint} ${status.source.prefix ?? ''}`}>${status.source.endpoint}${status.source.prefix ? ` · ${status.source.prefix}` : ''}</span>` : null}
        ${status ? html`<span class="muted">${count(status.frames)} frames · ${count(status.windows)} windows</span>` : null}
      </div>
    </header>
    ${fatal ? html`<div class="notice bad">${fatal}</div>` : null}
    <main>
      ${route.tab === 'live' ? html`<${LiveView} models=${models} />` : null}
      ${route.tab === 'queue' ? html`<${QueueView} key=${route.params.toString()} params=${route.params} models=${models} notify=${notify} />` : null}
      ${route.tab === 'confusion' ? html`<${ConfusionView} />` : null}
      ${route.tab === 'rejected' ? html`<${RejectedView} />` : null}
      ${route.tab === 'dataset' ? html`<${DatasetView} notify=${notify} />` : null}
      ${route.tab === 'models' ? html`<${ModelsView} notify=${notify} />` : null}
      ${route.tab === 'uplink' ? html`<${UplinkView} uplink=${uplink} />` : null}
    </main>
    <${Toasts} toasts=${toasts} />
  </div>`;
}

const root = document.getElementById('app');
root.textContent = ''; // drop the boot message: preact renders into an empty element
render(html`<${App} />`, root);
