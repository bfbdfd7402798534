// The review queue: uncertain frames as tiles, filtered and sorted by the server, labelled
// with the keyboard (one key per class, automatic advance) or in bulk. Frames arriving
// while someone labels are announced, never inserted under their cursor.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { useServerEvent } from './events.js';
import { count, labelText } from './format.js';
import { html } from './html.js';
import { NOT_A_DIGIT, QueueModel } from './queue-model.js';
import { Tile } from './tile.js';

const PAGE = 60;
const DIGITS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

export const SORTS = [
  ['newest', 'newest first'],
  ['oldest', 'oldest first'],
  ['confidence', 'least confident first'],
  ['margin', 'smallest top-2 margin first'],
  ['entropy', 'highest entropy first'],
];

/** The filters a queue URL may carry (#/queue?status=labelled&label=3&predicted=5). */
export const FILTER_KEYS = ['status', 'sort', 'camera', 'predicted', 'reason', 'model_version', 'label'];
const DEFAULTS = { status: 'unlabelled', sort: 'newest' };

export function filtersFrom(params) {
  const filters = { ...DEFAULTS };
  for (const key of FILTER_KEYS) {
    const value = params.get(key);
    if (value !== null && value !== '') filters[key] = value;
  }
  return filters;
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName));
}

function columns(grid) {
  if (!grid) return 1;
  return Math.max(1, getComputedStyle(grid).gridTemplateColumns.split(' ').filter(Boolean).length);
}

function Select({ label, value, options, onChange, testid }) {
  return html`<label class="field">
    <span>${label}</span>
    <select data-testid=${testid} value=${value ?? ''} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${options.map(([v, text]) => html`<option key=${v} value=${v}>${text}</option>`)}
    </select>
  </label>`;
}

export function KeyLegend({ selecting }) {
  const keys = [
    ['0–9', selecting ? 'label selection' : 'label, next'],
    ['x', 'not a digit'],
    ['Enter', selecting ? 'accept guesses' : 'accept guess'],
    ['s', 'skip'],
    ['u', 'undo'],
    ['← → ↑ ↓', 'move'],
    ['Space', 'select'],
    ['Shift/Ctrl-click', 'select many'],
    ['Ctrl+A', 'select loaded'],
    ['Esc', 'clear selection'],
  ];
  return html`<div class="legend" data-testid="key-legend" aria-label="keyboard keys">
    ${keys.map(([key, what]) => html`<span class="legend-item" key=${key}><kbd>${key}</kbd> ${what}</span>`)}
  </div>`;
}

/** The Review queue view. `params` holds the URL's filters; `models` the versions seen. */
export function QueueView({ params, models, notify }) {
  const model = useRef(new QueueModel()).current;
  const [, setVersion] = useState(0);
  const rerender = () => setVersion((v) => v + 1);
  const [filters, setFilters] = useState(() => filtersFrom(params));
  const [state, setState] = useState({ loading: true, next: null, total: 0, error: null, arrived: 0 });
  const pending = useRef(new Set()).current;
  const chain = useRef(Promise.resolve());
  const grid = useRef(null);
  const lastFocusId = useRef(null);
  const seenCameras = useRef(new Set()).current;
  const loadSeq = useRef(0);

  const load = async (nextFilters = filters) => {
    const seq = ++loadSeq.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const page = await api.frames({ ...nextFilters, limit: PAGE });
      if (seq !== loadSeq.current) return;
      model.reset(page.frames);
      for (const f of page.frames) seenCameras.add(f.camera);
      setState({ loading: false, next: page.next, total: page.total, error: null, arrived: 0 });
    } catch (error) {
      if (seq === loadSeq.current) setState((s) => ({ ...s, loading: false, error: error.message }));
    }
  };

  const loadMore = async () => {
    if (!state.next || state.loading) return;
    const seq = loadSeq.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const page = await api.frames({ ...filters, limit: PAGE, cursor: state.next });
      if (seq !== loadSeq.current) return;
      model.append(page.frames);
      for (const f of page.frames) seenCameras.add(f.camera);
      setState((s) => ({ ...s, loading: false, next: page.next, total: page.total }));
    } catch (error) {
      setState((s) => ({ ...s, loading: false, error: error.message }));
    }
  };

  useEffect(() => {
    load(filters);
    const search = new URLSearchParams();
    for (const key of FILTER_KEYS)
      if (filters[key] !== undefined && filters[key] !== DEFAULTS[key]) search.set(key, filters[key]);
    const text = search.toString();
    history.replaceState(null, '', `#/queue${text ? `?${text}` : ''}`);
  }, [JSON.stringify(filters)]);

  const setFilter = (key, value) =>
    setFilters((f) => {
      const next = { ...f };
      if (value === '' || value === undefined) delete next[key];
      else next[key] = value;
      if (key === 'status' && value === 'unlabelled') delete next.label;
      return next;
    });

  /** Runs API writes one after another, so `u` never overtakes the label it undoes. */
  const enqueue = (ids, task) => {
    for (const id of ids) pending.add(id);
    rerender();
    chain.current = chain.current
      .then(task)
      .catch((error) => notify(error.message, 'bad'))
      .finally(() => {
        for (const id of ids) pending.delete(id);
        rerender();
      });
  };

  const labelFrames = (frames, label) => {
    if (frames.length === 0) return;
    const ids = frames.map((f) => f.frame_id);
    const before = new Map(frames.map((f) => [f.frame_id, f.label]));
    for (const f of frames) model.setLabel(f.frame_id, label === 'accept' ? f.result_class : label);
    model.undoStack.push(ids);
    enqueue(ids, async () => {
      try {
        const entries =
          label === 'accept' || ids.length > 1 ? (await api.bulk(ids, label)).entries : [await api.label(ids[0], label)];
        for (const entry of entries) model.setLabel(entry.frame_id, entry.label, entry.labelled_at);
      } catch (error) {
        for (const [id, previous] of before) model.setLabel(id, previous);
        const at = model.undoStack.lastIndexOf(ids);
        if (at >= 0) model.undoStack.splice(at, 1);
        throw error;
      }
    });
  };

  const apply = (label) => {
    if (model.selected.size > 0) {
      const frames = model.selectedFrames();
      const last = Math.max(...frames.map((f) => model.indexOf(f.frame_id)));
      model.selected.clear();
      labelFrames(frames, label);
      model.advanceFrom(last);
      notify(`${frames.length} frames ${label === 'accept' ? "accepted as the model's guess" : `labelled ${labelText(label)}`}`);
    } else {
      const frame = model.focused;
      if (!frame) return;
      labelFrames([frame], label);
      model.advanceFrom(model.focus);
    }
    rerender();
  };

  const undo = () => {
    const ids = model.undoStack.pop();
    enqueue(ids ?? [], async () => {
      const entries = [];
      if (ids) {
        for (const id of [...ids].reverse()) entries.push(await api.undo(id));
      } else {
        entries.push(await api.undo());
      }
      for (const entry of entries) model.setLabel(entry.frame_id, entry.label ?? undefined, entry.labelled_at);
      const index = model.indexOf(entries[entries.length - 1].frame_id);
      if (index >= 0) model.focusAt(index);
      notify(
        entries.length === 1
          ? `undone: ${entries[0].frame_id} is ${labelText(entries[0].label)} again`
          : `undone: ${entries.length} labels`,
      );
    });
  };

  const latestKeys = useRef(null);
  latestKeys.current = (event) => {
    if (isTyping(event.target) || event.altKey) return;
    const mod = event.ctrlKey || event.metaKey;
    const { key } = event;
    let handled = true;
    if (mod) {
      if (key === 'a' || key === 'A') {
        model.selectAll();
        rerender();
        event.preventDefault();
      }
      return;
    }
    if (/^[0-9]$/.test(key)) apply(Number(key));
    else if (key === 'x' || key === 'X') apply(NOT_A_DIGIT);
    else if (key === 'Enter') apply('accept');
    else if (key === 's' || key === 'S') model.moveFocus(1);
    else if (key === 'u' || key === 'U') undo();
    else if (key === 'ArrowRight') model.moveFocus(1);
    else if (key === 'ArrowLeft') model.moveFocus(-1);
    else if (key === 'ArrowDown') model.moveFocus(columns(grid.current));
    else if (key === 'ArrowUp') model.moveFocus(-columns(grid.current));
    else if (key === 'Home') model.focusAt(0);
    else if (key === 'End') model.focusAt(model.frames.length - 1);
    else if (key === ' ') model.toggleFocused();
    else if (key === 'Escape') model.selected.clear();
    else if (key === 'r' && state.arrived > 0) load();
    else handled = false;
    if (handled) {
      event.preventDefault();
      rerender();
    }
  };
  useEffect(() => {
    const listener = (event) => latestKeys.current(event);
    document.addEventListener('keydown', listener);
    return () => document.removeEventListener('keydown', listener);
  }, []);

  // Keep the focused tile in view when it changes, and fetch the next page near the end.
  useEffect(() => {
    const frame = model.focused;
    if (frame && frame.frame_id !== lastFocusId.current) {
      lastFocusId.current = frame.frame_id;
      document.getElementById(`tile-${frame.frame_id}`)?.scrollIntoView({ block: 'nearest' });
    }
    if (state.next && !state.loading && model.focus >= model.frames.length - 12) loadMore();
  });

  useServerEvent('frames', ({ added }) => {
    if (filters.status === 'labelled' || !added) return;
    if (model.frames.length === 0 && !state.loading) load();
    else setState((s) => ({ ...s, arrived: s.arrived + added }));
  });
  // Pruned frames leave the data folder: drop their tiles (or reload when the event could
  // not name them all), so no tile points at an image that is gone.
  useServerEvent('retention', ({ pruned_keys: keys, pruned_keys_complete: complete }) => {
    if (!complete) return load();
    if (model.remove(keys) > 0) rerender();
    // The count covers frames not loaded yet too: ask for it again.
    api
      .frames({ ...filters, limit: 1 })
      .then((page) => setState((s) => ({ ...s, total: page.total })))
      .catch(() => {});
  });
  useServerEvent('label', (entry) => {
    if (pending.has(entry.frame_id)) return; // our own write: its answer updates the tile
    if (model.setLabel(entry.frame_id, entry.label ?? undefined, entry.labelled_at)) rerender();
  });
  // Events may have been missed while disconnected: refresh the shown labels in place
  // (reloading the list would move the tiles under the person's cursor).
  useServerEvent('reconnected', async () => {
    if (model.frames.length === 0) return load();
    const answers = await Promise.allSettled(model.frames.slice(0, 500).map((f) => api.frame(f.frame_id)));
    for (const answer of answers) if (answer.status === 'fulfilled') model.setLabel(answer.value.frame_id, answer.value.label);
    rerender();
  });

  const groups = model.groups();
  const selecting = model.selected.size > 0;
  const cameraOptions = [...seenCameras].sort();
  const moreSentinel = useRef(null);
  useEffect(() => {
    const element = moreSentinel.current;
    if (!element) return undefined;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMore();
    });
    observer.observe(element);
    return () => observer.disconnect();
  });

  return html`<div class="view queue" data-testid="view-queue">
    <div class="toolbar">
      <div class="segmented" role="group" aria-label="status">
        ${['unlabelled', 'labelled', 'all'].map((s) => html`<button key=${s} class=${filters.status === s ? 'on' : ''} data-testid=${`status-${s}`} onClick=${() => setFilter('status', s)}>${s}</button>`)}
      </div>
      <${Select} label="sort" testid="sort" value=${filters.sort} options=${SORTS} onChange=${(v) => setFilter('sort', v)} />
      <${Select} label="camera" testid="filter-camera" value=${filters.camera} options=${[['', 'any'], ...cameraOptions.map((c) => [c, c])]} onChange=${(v) => setFilter('camera', v)} />
      <${Select} label="predicted" testid="filter-predicted" value=${filters.predicted} options=${[['', 'any'], ...DIGITS.map((d) => [String(d), String(d)])]} onChange=${(v) => setFilter('predicted', v)} />
      <${Select} label="reason" testid="filter-reason" value=${filters.reason} options=${[['', 'any'], ['low_confidence', 'low confidence'], ['test_camera', 'test camera']]} onChange=${(v) => setFilter('reason', v)} />
      <${Select} label="model" testid="filter-model" value=${filters.model_version} options=${[['', 'any'], ...models.map((m) => [m, m])]} onChange=${(v) => setFilter('model_version', v)} />
      ${
        filters.status !== 'unlabelled'
          ? html`<${Select} label="label" testid="filter-label" value=${filters.label} options=${[['', 'any'], ...DIGITS.map((d) => [String(d), String(d)]), [NOT_A_DIGIT, 'not a digit']]} onChange=${(v) => setFilter('label', v)} />`
          : null
      }
      <span class="spacer"></span>
      <span class="muted" data-testid="queue-total">${count(state.total)} frames${model.frames.length < state.total ? ` · ${count(model.frames.length)} loaded` : ''}</span>
    </div>
    <div class=${`actionbar${selecting ? ' selecting' : ''}`}>
      <label class="field">
        <span>select group</span>
        <select data-testid="select-group" value="" onChange=${(e) => {
          const v = e.currentTarget.value;
          e.currentTarget.value = '';
          if (v !== '') {
            model.selectGroup(Number(v));
            rerender();
          }
        }}>
          <option value="">predicted as…</option>
          ${DIGITS.map((d) => html`<option key=${d} value=${d} disabled=${groups[d] === 0}>${d} (${groups[d]} unlabelled)</option>`)}
        </select>
      </label>
      ${
        selecting
          ? html`<span class="selection" data-testid="selection-count">${model.selected.size} selected</span>
            <button class="primary" data-testid="bulk-accept" onClick=${() => apply('accept')}>Accept model's guesses <kbd>Enter</kbd></button>
            <span class="muted">or set</span>
            <span class="label-buttons">
              ${DIGITS.map((d) => html`<button key=${d} data-testid=${`bulk-label-${d}`} onClick=${() => apply(d)}>${d}</button>`)}
              <button data-testid="bulk-label-x" onClick=${() => apply(NOT_A_DIGIT)}>not a digit</button>
            </span>
            <button class="ghost" onClick=${() => {
              model.selected.clear();
              rerender();
            }}>Clear <kbd>Esc</kbd></button>`
          : html`<span class="muted">Click a tile to focus it; Shift/Ctrl-click or a group to select many.</span>`
      }
      <span class="spacer"></span>
      <button class="ghost" data-testid="undo" onClick=${undo}>Undo <kbd>u</kbd></button>
    </div>
    ${
      state.arrived > 0
        ? html`<button class="arrived" data-testid="new-frames" onClick=${() => load()}>${count(state.arrived)} new frames arrived · show them <kbd>r</kbd></button>`
        : null
    }
    ${state.error ? html`<div class="notice bad">${state.error}</div>` : null}
    ${
      model.frames.length === 0 && !state.loading
        ? html`<div class="empty">${filters.status === 'unlabelled' ? 'Nothing to review: uncertain frames appear here as cameras send them home.' : 'No frame matches these filters.'}</div>`
        : null
    }
    <div class="grid" ref=${grid} data-testid="queue-grid" role="listbox" aria-multiselectable="true" aria-label="frames to review">
      ${model.frames.map(
        (frame, index) => html`<${Tile}
        key=${frame.frame_id}
        frame=${frame}
        focused=${index === model.focus}
        selected=${model.selected.has(frame.frame_id)}
        pending=${pending.has(frame.frame_id)}
        onClick=${(e) => {
          model.click(index, { shift: e.shiftKey, toggle: e.ctrlKey || e.metaKey });
          if (e.shiftKey) window.getSelection()?.removeAllRanges();
          rerender();
        }}
      />`,
      )}
    </div>
    <div class="more" ref=${moreSentinel}>
      ${state.loading ? 'Loading…' : state.next ? html`<button class="ghost" onClick=${loadMore}>Load more</button>` : model.frames.length > 0 ? 'End of the queue.' : ''}
    </div>
    <${KeyLegend} selecting=${selecting} />
  </div>`;
}
