// Models: the versions of the models folder with their state and gate figures, the buttons
// behind the model loop (retrain, shadow, promote, roll back), a running retrain's progress,
// and the shadow comparison of the current model against the candidate in shadow.
import { useEffect, useState } from 'preact/hooks';
import { request } from './api.js';
import { throttle } from './throttle.js';
import { useServerEvent } from './events.js';
import { ago, count, percent } from './format.js';
import { html } from './html.js';
import { Tile } from './tile.js';

const modelsApi = {
  list: () => request('GET', '/api/models'),
  shadowComparisons: () => request('GET', '/api/models/shadow'),
  retrain: (epochs) => request('POST', '/api/models/retrain', epochs ? { epochs } : {}),
  promote: (version) => request('POST', `/api/models/${encodeURIComponent(version)}/promote`),
  shadow: (version) => request('POST', `/api/models/${encodeURIComponent(version)}/shadow`),
  unshadow: () => request('DELETE', '/api/models/shadow'),
  rollback: () => request('POST', '/api/models/rollback'),
};

const STATE_TEXT = {
  current: 'current',
  shadow: 'in shadow',
  candidate: 'candidate',
  previous: 'served before',
  shipped: 'shipped',
};

/** A figure as a percentage with two decimals; '–' when absent. */
function pct(value) {
  return typeof value === 'number' && Number.isFinite(value) ? `${(value * 100).toFixed(2)}%` : '–';
}

/** A gate's value as people read it: shares as %, bytes as kB, text as is. */
function gateValue(name, value) {
  if (typeof value !== 'number') return value === null || value === undefined ? '–' : String(value);
  if (name === 'size') return `${(value / 1000).toFixed(0)} kB`;
  if (value >= 0 && value <= 1) return `${(value * 100).toFixed(2)}%`;
  return String(value);
}

function GateChecks({ gates }) {
  if (!gates) return html`<span class="muted">no gates (served before gates existed)</span>`;
  return html`<ul class="gates" data-testid="gates" data-passed=${String(gates.passed)}>
    ${gates.checks.map(
      (
        check,
      ) => html`<li key=${check.name} class=${check.passed ? 'pass' : 'fail'} data-testid="gate" data-gate=${check.name} data-passed=${String(check.passed)} title=${check.detail ?? ''}>
        <span class="gate-mark" aria-hidden="true">${check.passed ? '✓' : '✗'}</span>
        <span class="gate-name">${check.name.replaceAll('_', ' ')}</span>
        <span class="gate-value mono" title=${String(check.value ?? '')}>${gateValue(check.name, check.value)}</span>
        <span class="gate-limit muted mono" title=${check.limit === null ? '' : String(check.limit)}>${check.limit === null ? '' : String(check.limit)}</span>
      </li>`,
    )}
  </ul>`;
}

function Figures({ model }) {
  const e = model.evaluation;
  const rows = [
    ['MNIST', pct(e.mnist_accuracy), e.parent_mnist_accuracy !== null ? `parent ${pct(e.parent_mnist_accuracy)}` : ''],
    [
      'held-out frames',
      pct(e.held_out_accuracy),
      e.parent_held_out_accuracy !== null ? `parent ${pct(e.parent_held_out_accuracy)} · ${count(e.held_out_count)} frames` : '',
    ],
    ['ECE', pct(e.mnist_ece), ''],
    ['blank max p', e.blank_max_probability === null ? '–' : e.blank_max_probability.toFixed(3), ''],
  ].filter(([, value]) => value !== '–');
  if (rows.length === 0) return html`<span class="muted">no figures in its card</span>`;
  return html`<dl class="figures">
    ${rows.map(([name, value, note]) => html`<div key=${name}><dt>${name}</dt><dd><b>${value}</b> <span class="muted">${note}</span></dd></div>`)}
  </dl>`;
}

function ModelRow({ model, overview, busy, ask }) {
  const isCurrent = model.state === 'current';
  const inShadow = model.state === 'shadow';
  const gatesFailed = model.gates && !model.gates.passed;
  const servedBefore = model.state === 'previous' || model.state === 'shipped';
  const canPromote = !isCurrent && !model.problem && (servedBefore || model.gates?.passed === true);
  const promoteWhy = isCurrent
    ? 'this version is current'
    : model.problem
      ? model.problem
      : gatesFailed
        ? 'its gates failed: promotion is refused'
        : !model.gates && !servedBefore
          ? 'its card has no gate results'
          : `make ${model.version} current: the edge switches at its next batch`;
  return html`<tr data-testid="model-row" data-version=${model.version} data-state=${model.state} class=${`model-row state-${model.state}`}>
    <td>
      <div class="model-version mono">${model.version}</div>
      <span class=${`state-badge state-${model.state}`} data-testid="state-badge">${STATE_TEXT[model.state] ?? model.state}</span>
      ${model.problem ? html`<div class="notice bad small">${model.problem}</div>` : null}
    </td>
    <td class="small">
      ${model.created ? html`<div title=${model.created}>created ${ago(model.created)}</div>` : null}
      ${model.parent ? html`<div>from <span class="mono">${model.parent.version}</span></div>` : null}
      ${model.promoted_at ? html`<div title=${model.promoted_at}>current since ${ago(model.promoted_at)}</div>` : null}
      ${
        model.dataset
          ? html`<div class="muted" title=${model.dataset.version ?? ''}>${count(model.dataset.labelled)} labelled · ${count(model.dataset.train)} trained on · ${count(model.dataset.held_out)} held out</div>`
          : null
      }
      ${model.training?.seconds ? html`<div class="muted">${model.training.epochs} epoch${model.training.epochs === 1 ? '' : 's'} · ${Math.round(model.training.seconds)} s</div>` : null}
    </td>
    <td><${Figures} model=${model} /></td>
    <td><${GateChecks} gates=${model.gates} /></td>
    <td class="model-actions">
      <button
        class="primary"
        data-testid="promote-button"
        disabled=${busy || !canPromote}
        title=${promoteWhy}
        onClick=${() =>
          ask({
            action: 'promote',
            version: model.version,
            text: `Promote ${model.version}? It replaces ${overview.current} at the edge's next batch (roll back returns to ${overview.current}).`,
          })}
      >Promote</button>
      ${
        inShadow
          ? html`<button data-testid="unshadow-button" disabled=${busy} onClick=${() => ask({ action: 'unshadow', version: model.version })}>Stop shadow</button>`
          : html`<button
              data-testid="shadow-button"
              disabled=${busy || isCurrent || Boolean(model.problem)}
              title=${isCurrent ? 'the current version cannot shadow itself' : `score every frame with ${model.version} too; outputs unchanged`}
              onClick=${() => ask({ action: 'shadow', version: model.version })}
            >Shadow</button>`
      }
    </td>
  </tr>`;
}

function RetrainPanel({ job, busy, labelled, onRetrain }) {
  const running = job?.state === 'running';
  const share = job?.steps ? job.step / job.steps : 0;
  return html`<section class="panel" data-testid="retrain-panel">
    <header class="panel-head">
      <h3>Retrain</h3>
      <span class="muted">fine-tunes the current model on the labelled frames (exported first), with MNIST replay; writes a candidate with its gates</span>
    </header>
    <div class="toolbar">
      <button class="primary" data-testid="retrain-button" disabled=${busy || running || labelled === 0} onClick=${onRetrain}
        title=${labelled === 0 ? 'label frames in the review queue first' : 'start a retrain job'}>${running ? 'Retraining…' : 'Retrain'}</button>
      <span class="muted">${count(labelled)} labelled frames</span>
    </div>
    ${
      job
        ? html`<div class="retrain-job" data-testid="retrain-job" data-state=${job.state} data-phase=${job.phase}>
            <div class="retrain-line">
              <span class=${`state-badge job-${job.state}`}>${job.state}</span>
              <span>job ${job.id} · from <span class="mono">${job.parent}</span> · dataset <span class="mono">${job.dataset.version}</span> (${count(job.dataset.labelled)} frames)</span>
            </div>
            ${
              job.steps
                ? html`<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax=${job.steps} aria-valuenow=${job.step} data-testid="retrain-progress">
                    <div class="progress-bar" style=${{ width: `${(100 * share).toFixed(1)}%` }}></div>
                  </div>
                  <div class="retrain-figures mono small">
                    epoch ${job.epoch}/${job.epochs} · step ${job.step}/${job.steps} · loss ${job.loss === null ? '–' : job.loss.toFixed(4)}
                    · held-out ${pct(job.held_out_accuracy)} · MNIST slice ${pct(job.mnist_accuracy)}
                  </div>`
                : null
            }
            ${job.message && job.state === 'running' ? html`<div class="muted small">${job.message}</div>` : null}
            ${
              job.result
                ? html`<div class=${`notice ${job.result.gates_passed ? '' : 'bad'}`} data-testid="retrain-result" data-version=${job.result.version}>
                    candidate <b class="mono">${job.result.version}</b> written; gates ${job.result.gates_passed ? 'passed: it can be promoted' : `failed: ${job.result.gates_failed.join(', ')}`}
                  </div>`
                : null
            }
            ${job.error ? html`<div class="notice bad" data-testid="retrain-error">${job.error}</div>` : null}
            ${job.log.length > 0 ? html`<pre class="retrain-log small">${job.log.slice(-8).join('\n')}</pre>` : null}
          </div>`
        : null
    }
  </section>`;
}

function ShadowMatrix({ confusion, current, candidate }) {
  const max = Math.max(1, ...confusion.flat());
  return html`<div class="table-scroll"><table class="confusion" data-testid="shadow-confusion">
    <thead><tr><th class="corner">${current} \\ ${candidate}</th>${confusion.map((_, c) => html`<th key=${c}>${c}</th>`)}</tr></thead>
    <tbody>
      ${confusion.map(
        (row, r) =>
          html`<tr key=${r}><th>${r}</th>${row.map((n, c) => {
            const alpha = n === 0 ? 0 : 0.12 + 0.78 * (n / max);
            const hue = r === c ? '62, 207, 142' : '229, 83, 75';
            return html`<td key=${c} class=${`cell${r === c ? ' diag' : ''}`}><button disabled style=${n === 0 ? undefined : { background: `rgba(${hue}, ${alpha.toFixed(3)})` }} title=${`${count(n)} frames: ${current} said ${r}, ${candidate} said ${c}`}>${n === 0 ? '·' : count(n)}</button></td>`;
          })}</tr>`,
      )}
    </tbody>
  </table></div>`;
}

/** The queue URL that lists a stored frame among few others: its camera, class and version. */
function queueLink(frame) {
  const search = new URLSearchParams({
    status: frame.label === undefined ? 'unlabelled' : 'labelled',
    camera: frame.camera,
    predicted: String(frame.result_class),
    model_version: frame.model_version,
  });
  return `#/queue?${search.toString()}`;
}

function ShadowPanel({ comparisons, overview, busy, ask }) {
  const active = comparisons.find((c) => c.current === overview.current && c.candidate === overview.shadow);
  const shown = active ?? comparisons[0];
  return html`<section class="panel" data-testid="shadow-panel">
    <header class="panel-head">
      <h3>Shadow comparison</h3>
      <span class="muted">${overview.shadow ? html`<span class="mono">${overview.shadow}</span> scores every frame beside <span class="mono">${overview.current}</span>; outputs unchanged` : 'no version runs in shadow'}</span>
      <span class="spacer"></span>
      ${overview.shadow ? html`<button data-testid="stop-shadow" disabled=${busy} onClick=${() => ask({ action: 'unshadow', version: overview.shadow })}>Stop shadow</button>` : null}
    </header>
    ${
      !shown
        ? html`<p class="empty">No comparison in the metrics windows of the last hour${overview.shadow ? ': it appears with the next window' : ': put a candidate in shadow'}.</p>`
        : html`<div>
            ${!active && overview.shadow ? html`<p class="muted">No window yet for ${overview.shadow}; the latest comparison held is shown.</p>` : null}
            <div class="summary">
              <div class="stat" data-testid="shadow-agreement" data-agreement=${shown.agreement} data-current=${shown.current} data-candidate=${shown.candidate}>
                <span class="stat-value">${percent(shown.agree, shown.count)}</span>
                <span class="stat-label">${shown.candidate} agrees with ${shown.current} on ${count(shown.agree)} of ${count(shown.count)} frames</span>
              </div>
              <div class="stat"><span class="stat-value">${percent(shown.current_correct, shown.labelled)}</span><span class="stat-label">${shown.current} right on ${count(shown.labelled)} labelled</span></div>
              <div class="stat"><span class="stat-value">${percent(shown.candidate_correct, shown.labelled)}</span><span class="stat-label">${shown.candidate} right on ${count(shown.labelled)} labelled</span></div>
              <div class="stat"><span class="stat-value">${count(shown.windows)}</span><span class="stat-label">windows since ${new Date(shown.first_window).toLocaleTimeString('en-GB', { hour12: false })}</span></div>
            </div>
            <div class="two-col">
              <div>
                <h4>Current (rows) × candidate (columns)</h4>
                <${ShadowMatrix} confusion=${shown.confusion} current=${shown.current} candidate=${shown.candidate} />
              </div>
              <div>
                <h4>Where they disagree <span class="muted">(latest ${shown.disagreements.length})</span></h4>
                ${shown.disagreements.length === 0 ? html`<p class="empty">No disagreement.</p>` : null}
                <ul class="disagreements" data-testid="shadow-disagreements">
                  ${shown.disagreements.map(
                    (
                      d,
                    ) => html`<li key=${`${d.window_start}/${d.frame_id}`} data-testid="disagreement" data-frame-id=${d.frame_id}>
                      <div class="disagree-line">
                        <span class="mono">${d.current_class} → ${d.candidate_class}</span>
                        <span class="muted">(${(d.candidate_probability * 100).toFixed(0)}%)</span>
                        ${d.label !== null ? html`<span class="chip">label ${d.label}</span>` : null}
                        <span class="muted ellipsis" title=${d.frame_id}>${d.camera}</span>
                        ${d.frame ? html`<a href=${queueLink(d.frame)} data-testid="disagreement-link">in the review queue</a>` : html`<span class="muted">not sent home</span>`}
                      </div>
                      ${d.frame ? html`<a class="mini-tile" href=${queueLink(d.frame)}><${Tile} frame=${d.frame} /></a>` : null}
                    </li>`,
                  )}
                </ul>
              </div>
            </div>
          </div>`
    }
  </section>`;
}

const CONFIRM = {
  promote: (q) => q.text,
  rollback: (q) => q.text,
};

export function ModelsView({ notify }) {
  const [overview, setOverview] = useState(null);
  const [comparisons, setComparisons] = useState([]);
  const [labelled, setLabelled] = useState(0);
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [question, setQuestion] = useState(null);

  const load = () =>
    Promise.all([modelsApi.list(), modelsApi.shadowComparisons()])
      .then(([list, shadowed]) => {
        setOverview(list);
        setJob(list.retrain);
        setComparisons(shadowed.comparisons);
        setError(null);
      })
      .catch((e) => setError(e.message));
  const [reload] = useState(() => throttle(load, 300));
  useEffect(() => {
    load();
    request('GET', '/api/dataset')
      .then((d) => setLabelled(d.labelled - d.not_a_digit))
      .catch(() => {});
  }, []);
  useServerEvent('models', reload);
  useServerEvent('window', (w) => {
    if (w.shadow) reload();
  });
  useServerEvent('retrain', setJob);
  useServerEvent('dataset', (d) => setLabelled(d.labelled - d.not_a_digit));
  useServerEvent('reconnected', reload);

  const run = async (action, version) => {
    setBusy(true);
    setQuestion(null);
    try {
      const answer =
        action === 'promote'
          ? await modelsApi.promote(version)
          : action === 'shadow'
            ? await modelsApi.shadow(version)
            : action === 'unshadow'
              ? await modelsApi.unshadow()
              : await modelsApi.rollback();
      const said = {
        promote: `${answer.version} is current (was ${answer.from}): the edge switches at its next batch`,
        rollback: `rolled back to ${answer.version} (was ${answer.from})`,
        shadow: `${answer.version} runs in shadow`,
        unshadow: `shadow scoring of ${answer.version} stopped`,
      }[answer.action];
      notify(said);
    } catch (e) {
      notify(e.message, 'bad');
    } finally {
      setBusy(false);
      load();
    }
  };
  const ask = (q) => {
    if (CONFIRM[q.action]) setQuestion(q);
    else void run(q.action, q.version);
  };
  const retrain = async () => {
    setBusy(true);
    try {
      const answer = await modelsApi.retrain();
      setJob(answer.job);
      notify(`retrain job ${answer.job.id} started`);
    } catch (e) {
      notify(e.message, 'bad');
    } finally {
      setBusy(false);
    }
  };

  if (error && !overview) return html`<div class="notice bad">The models could not be loaded: ${error}</div>`;
  if (!overview) return html`<div class="empty">Loading…</div>`;
  return html`<div class="view" data-testid="view-models">
    <div class="summary">
      <div class="stat"><span class="stat-value mono" data-testid="current-version">${overview.current}</span><span class="stat-label">current at the edge</span></div>
      <div class="stat"><span class="stat-value mono">${overview.shadow ?? '–'}</span><span class="stat-label">in shadow</span></div>
      <div class="stat">
        <button
          data-testid="rollback-button"
          disabled=${busy || !overview.rollback_to}
          title=${overview.rollback_to ? `return to ${overview.rollback_to}` : 'nothing to roll back to: the current version is the first that served'}
          onClick=${() =>
            ask({
              action: 'rollback',
              version: overview.rollback_to,
              text: `Roll back from ${overview.current} to ${overview.rollback_to}? The edge switches at its next batch.`,
            })}
        >Roll back${overview.rollback_to ? ` to ${overview.rollback_to}` : ''}</button>
        <span class="stat-label">undo the latest promote</span>
      </div>
      <div class="stat"><span class="stat-value small mono ellipsis" title=${overview.root}>${overview.root}</span><span class="stat-label">models folder</span></div>
    </div>
    ${
      question
        ? html`<div class="confirm notice" role="alertdialog" aria-label="confirm" data-testid="confirm">
            <span>${question.text}</span>
            <span class="spacer"></span>
            <button class="primary" data-testid="confirm-yes" onClick=${() => run(question.action, question.version)}>${question.action === 'promote' ? 'Promote' : 'Roll back'}</button>
            <button data-testid="confirm-no" onClick=${() => setQuestion(null)}>Cancel</button>
          </div>`
        : null
    }
    <section class="panel">
      <header class="panel-head"><h3>Versions</h3><span class="muted">newest first; promote needs every gate passed (a version that served before needs none)</span></header>
      <div class="table-scroll">
        <table class="data models-table" data-testid="models-table">
          <thead><tr><th>version</th><th>origin</th><th>figures</th><th>gates (value · limit)</th><th></th></tr></thead>
          <tbody>
            ${overview.models.map((m) => html`<${ModelRow} key=${m.version} model=${m} overview=${overview} busy=${busy} ask=${ask} />`)}
          </tbody>
        </table>
      </div>
    </section>
    <${RetrainPanel} job=${job} busy=${busy} labelled=${labelled} onRetrain=${retrain} />
    <${ShadowPanel} comparisons=${comparisons} overview=${overview} busy=${busy} ask=${ask} />
    ${
      overview.history.length > 0
        ? html`<section class="panel">
            <header class="panel-head"><h3>History</h3><span class="muted">registry changes, newest first</span></header>
            <table class="data" data-testid="models-history">
              <tbody>
                ${overview.history
                  .slice(0, 20)
                  .map(
                    (h, i) =>
                      html`<tr key=${i}><td class="mono small" title=${h.at}>${ago(h.at)}</td><td>${h.action}</td><td class="mono">${h.version}</td><td class="muted">${h.from ? `from ${h.from}` : ''}</td></tr>`,
                  )}
              </tbody>
            </table>
          </section>`
        : null
    }
  </div>`;
}
