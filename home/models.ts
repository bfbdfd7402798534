/**
 * The home's model controls: the model versions of a models folder with their gate figures,
 * the registry changes behind the page's buttons (promote, shadow, rollback: the functions of
 * training/model-registry.ts), the shadow comparison from the metrics windows, and one
 * retrain job at a time, run in a child process from the home's own labelled frames.
 *
 * The running edge follows registry.json by itself (it stats it per batch), so a change made
 * here reaches it at its next batch.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { CANDIDATES_DIR, REGISTRY_FILE, versionSchema } from '../functions/lib/model-registry-file';
import type { ShadowSummary } from '../functions/lib/metrics/document';
import {
  DEFAULT_MODELS_ROOT,
  listModels,
  type ModelRegistryError,
  type ModelState,
  promote,
  readRegistry,
  type RegistryChange,
  rollback,
  rollbackTarget,
  shadow,
  UnknownModelVersionError,
} from '../training/model-registry';
import type { RetrainOptions, RetrainProgress } from '../training/retrain';
import { exportDataset } from './dataset';
import type { RetrainJobMessage, RetrainJobRequest } from './retrain-job';
import { HomeRequestError, type HomeStore, type WindowView } from './store';
import { frameView } from './frames-query';

/** The models folder the home controls: MODEL_ROOT (as the edge reads it), else the repository's models/. */
export function modelsRootFrom(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.MODEL_ROOT;
  return configured !== undefined && configured !== '' ? resolve(configured) : DEFAULT_MODELS_ROOT;
}

/**
 * The HTTP status of a registry refusal: 404 for an unknown version; 409 for the rest (failed
 * gates, corrupt files, nothing to roll back, already current, a damaged registry.json): the
 * request is well formed, the models folder's state refuses it.
 */
export function registryErrorStatus(error: ModelRegistryError): 404 | 409 {
  return error instanceof UnknownModelVersionError ? 404 : 409;
}

const figure = z.number().optional().catch(undefined);
/** The card sections the page shows; anything missing or malformed is left out, never fatal. */
const cardSummarySchema = z.looseObject({
  created: z.string().optional().catch(undefined),
  bytes: figure,
  sha256: z.string().optional().catch(undefined),
  parent: z.looseObject({ version: z.string(), sha256: z.string().optional() }).optional().catch(undefined),
  dataset: z
    .looseObject({
      version: z.string().optional(),
      labelled: figure,
      per_class: z.record(z.string(), z.number()).optional(),
      train: figure,
      held_out: figure,
    })
    .optional()
    .catch(undefined),
  training: z
    .looseObject({ epochs: figure, seconds: figure, learning_rate: figure, batch_size: figure })
    .optional()
    .catch(undefined),
  evaluation: z
    .looseObject({
      // A retrained candidate's card.
      mnist: z
        .looseObject({ accuracy: figure, ece: figure, parent_accuracy: figure, frames: figure })
        .optional()
        .catch(undefined),
      held_out: z.looseObject({ accuracy: figure, parent_accuracy: figure, count: figure }).optional().catch(undefined),
      blank: z.looseObject({ max_probability: figure }).optional().catch(undefined),
      // The shipped model's card (npm run train).
      test_set: z.looseObject({ accuracy: figure, ece: figure, frames: figure }).optional().catch(undefined),
      camera_like: z.looseObject({ accuracy: figure, blank_max_probability: figure }).optional().catch(undefined),
    })
    .optional()
    .catch(undefined),
});

export interface GateView {
  name: string;
  passed: boolean;
  value: unknown;
  limit: unknown;
  detail: string | null;
}

/** One version as GET /api/models lists it. */
export interface ModelView {
  version: string;
  state: ModelState;
  dir: string;
  /** Why the folder cannot be used (its card is missing or unreadable). */
  problem: string | null;
  created: string | null;
  /** When it last became current (a promote to it, or a rollback to it); null if never. */
  promoted_at: string | null;
  /** When it was last put in shadow; null if never. */
  shadowed_at: string | null;
  bytes: number | null;
  sha256: string | null;
  parent: { version: string; sha256: string | null } | null;
  dataset: {
    version: string | null;
    labelled: number | null;
    train: number | null;
    held_out: number | null;
    per_class: Record<string, number> | null;
  } | null;
  training: { epochs: number | null; seconds: number | null } | null;
  evaluation: {
    mnist_accuracy: number | null;
    mnist_ece: number | null;
    parent_mnist_accuracy: number | null;
    held_out_accuracy: number | null;
    parent_held_out_accuracy: number | null;
    held_out_count: number | null;
    blank_max_probability: number | null;
  };
  /** The card's gate results; null for a version without any (the shipped model). */
  gates: { passed: boolean; checks: GateView[] } | null;
}

export interface ModelsOverview {
  root: string;
  current: string;
  shadow: string | null;
  /** The version a rollback returns to; null when there is nothing to roll back to. */
  rollback_to: string | null;
  /** Newest first. */
  history: Array<{ version: string; action: string; at: string; from: string | null }>;
  /** Newest version first. */
  models: ModelView[];
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

/** The versions of `root`, their states, card figures and gate checks, and the registry's history. */
export function modelsOverview(root: string): ModelsOverview {
  const registry = readRegistry(root);
  const lastAt = (version: string, actions: readonly string[]): string | null =>
    [...registry.history].reverse().find((e) => e.version === version && actions.includes(e.action))?.at ?? null;
  const models = listModels(root).map((entry): ModelView => {
    const summary = cardSummarySchema.safeParse(entry.card ?? {});
    const c: z.infer<typeof cardSummarySchema> = summary.success ? summary.data : {};
    const ev = c.evaluation;
    return {
      version: entry.version,
      state: entry.state,
      dir: entry.dir,
      problem: entry.problem ?? null,
      created: orNull(c.created),
      promoted_at: lastAt(entry.version, ['promote', 'rollback']),
      shadowed_at: lastAt(entry.version, ['shadow']),
      bytes: orNull(c.bytes),
      sha256: orNull(c.sha256),
      parent: c.parent ? { version: c.parent.version, sha256: orNull(c.parent.sha256) } : null,
      dataset: c.dataset
        ? {
            version: orNull(c.dataset.version),
            labelled: orNull(c.dataset.labelled),
            train: orNull(c.dataset.train),
            held_out: orNull(c.dataset.held_out),
            per_class: orNull(c.dataset.per_class),
          }
        : null,
      training: c.training ? { epochs: orNull(c.training.epochs), seconds: orNull(c.training.seconds) } : null,
      evaluation: {
        mnist_accuracy: orNull(ev?.mnist?.accuracy ?? ev?.test_set?.accuracy),
        mnist_ece: orNull(ev?.mnist?.ece ?? ev?.test_set?.ece),
        parent_mnist_accuracy: orNull(ev?.mnist?.parent_accuracy),
        held_out_accuracy: orNull(ev?.held_out?.accuracy),
        parent_held_out_accuracy: orNull(ev?.held_out?.parent_accuracy),
        held_out_count: orNull(ev?.held_out?.count),
        blank_max_probability: orNull(ev?.blank?.max_probability ?? ev?.camera_like?.blank_max_probability),
      },
      gates: entry.card?.gates
        ? {
            passed: entry.card.gates.passed,
            checks: entry.card.gates.checks.map((check) => ({
              name: check.name,
              passed: check.passed,
              value: check.value ?? null,
              limit: check.limit ?? null,
              detail: check.detail ?? null,
            })),
          }
        : null,
    };
  });
  return {
    root,
    current: registry.current,
    shadow: registry.shadow,
    rollback_to: rollbackTarget(root),
    history: [...registry.history].reverse(),
    models: models.reverse(),
  };
}

/** A disagreeing frame of the shadow comparison, with the frame as the review queue shows it when the home holds it. */
export interface ShadowDisagreementView {
  frame_id: string;
  camera: string;
  current_class: number;
  candidate_class: number;
  candidate_probability: number;
  label: number | null;
  window_start: string;
  /** The frame as GET /api/frames/:id answers, when it came home; null otherwise. */
  frame: ReturnType<typeof frameView> | null;
}

/** One current x candidate pair over the metrics windows the home holds (the last hour). */
export interface ShadowComparison {
  current: string;
  candidate: string;
  windows: number;
  first_window: string;
  last_window: string;
  count: number;
  agree: number;
  /** agree / count. */
  agreement: number;
  /** 10 x 10 counts, row = the current model's class, column = the candidate's. */
  confusion: number[][];
  labelled: number;
  current_correct: number;
  candidate_correct: number;
  /** Newest window first. */
  disagreements: ShadowDisagreementView[];
  /** Per window, oldest first: the agreement over time. */
  series: Array<{ start: string; count: number; agree: number }>;
}

/** Disagreeing frames listed per comparison, newest first. */
export const MAX_LISTED_DISAGREEMENTS = 24;

/**
 * Adds up the windows' shadow blocks per current x candidate pair. The pair running now
 * (`active`) comes first, then the others by their latest window.
 */
export function shadowComparisons(
  windows: readonly WindowView[],
  store: HomeStore | undefined,
  active?: { current: string; shadow: string | null },
): ShadowComparison[] {
  const pairs = new Map<string, ShadowComparison>();
  const ordered = [...windows].sort((a, b) => Date.parse(a.window.start) - Date.parse(b.window.start));
  for (const window of ordered) {
    for (const tally of (window.shadow ?? []) as ShadowSummary[]) {
      const key = `${tally.current}\u0000${tally.candidate}`;
      let pair = pairs.get(key);
      if (!pair) {
        pair = {
          current: tally.current,
          candidate: tally.candidate,
          windows: 0,
          first_window: window.window.start,
          last_window: window.window.start,
          count: 0,
          agree: 0,
          agreement: 0,
          confusion: Array.from({ length: 10 }, () => new Array<number>(10).fill(0)),
          labelled: 0,
          current_correct: 0,
          candidate_correct: 0,
          disagreements: [],
          series: [],
        };
        pairs.set(key, pair);
      }
      pair.windows += 1;
      pair.last_window = window.window.start;
      pair.count += tally.count;
      pair.agree += tally.agree;
      pair.labelled += tally.labelled;
      pair.current_correct += tally.current_correct;
      pair.candidate_correct += tally.candidate_correct;
      tally.confusion.forEach((n, cell) => {
        const row = pair.confusion[Math.floor(cell / 10)];
        if (row) row[cell % 10] = (row[cell % 10] ?? 0) + n;
      });
      pair.series.push({ start: window.window.start, count: tally.count, agree: tally.agree });
      for (const d of tally.disagreements) {
        const stored = store?.frames.get(d.frame_id);
        pair.disagreements.unshift({
          frame_id: d.frame_id,
          camera: d.camera,
          current_class: d.current_class,
          candidate_class: d.candidate_class,
          candidate_probability: d.candidate_probability,
          label: d.label ?? null,
          window_start: window.window.start,
          frame: stored && store ? frameView(stored, store.labels.current(stored.key)) : null,
        });
      }
    }
  }
  const list = [...pairs.values()].map((pair) => ({
    ...pair,
    agreement: pair.count === 0 ? 0 : pair.agree / pair.count,
    disagreements: pair.disagreements.slice(0, MAX_LISTED_DISAGREEMENTS),
  }));
  const isActive = (p: ShadowComparison) => active !== undefined && p.current === active.current && p.candidate === active.shadow;
  return list.sort((a, b) => Number(isActive(b)) - Number(isActive(a)) || Date.parse(b.last_window) - Date.parse(a.last_window));
}

/** Where a retrain job stands; also the data of the `retrain` server-sent event. */
export interface RetrainJobStatus {
  id: number;
  state: 'running' | 'succeeded' | 'failed';
  started_at: string;
  finished_at: string | null;
  /** The version fine-tuned (the current one when the job started). */
  parent: string;
  dataset: { dir: string; version: string; labelled: number };
  epochs: number | null;
  /** The latest progress: phase prepare | train | evaluate | done | failed. */
  phase: string;
  message: string | null;
  epoch: number | null;
  step: number | null;
  steps: number | null;
  loss: number | null;
  held_out_accuracy: number | null;
  mnist_accuracy: number | null;
  /** The candidate written; gates_failed names the checks that failed. */
  result: { version: string; dir: string; gates_passed: boolean; gates_failed: string[] } | null;
  error: string | null;
  /** The job's text lines (prepare and evaluate messages, one line per epoch), oldest first. */
  log: string[];
}

/** What the page hears: `retrain` (a job's status) and `models` (the versions or registry changed). */
export type ModelsEvent = { type: 'retrain'; data: RetrainJobStatus } | { type: 'models'; data: { reason: string } };

export const retrainBodySchema = z.strictObject({ epochs: z.number().int().min(1).max(20).optional() });
export type RetrainRequest = z.infer<typeof retrainBodySchema>;

/** Retrain settings the home's owner fixes (never the request): the smallest runs in tests, say. */
export type RetrainSettings = Omit<RetrainOptions, 'datasetDir' | 'root' | 'parentDir' | 'out' | 'onProgress' | 'version'>;

export interface ModelControlsOptions {
  /** The models folder (default {@link modelsRootFrom}). */
  root?: string;
  retrain?: RetrainSettings;
  /** How often registry.json and candidates/ are checked for changes made elsewhere (ms; 0 = never). */
  watchMs?: number;
}

const LOG_LINES = 200;
const EVENT_LOG_LINES = 8;

/** The models of one folder, the registry actions on it and its retrain job, for the home's API. */
export class ModelControls {
  readonly root: string;
  private readonly settings: RetrainSettings;
  private readonly listeners = new Set<(event: ModelsEvent) => void>();
  private job: RetrainJobStatus | undefined;
  private child: ChildProcess | undefined;
  private jobDone: Promise<void> = Promise.resolve();
  private nextId = 1;
  private readonly watch: NodeJS.Timeout | undefined;
  private stamp: string;

  constructor(
    private readonly store: HomeStore,
    options: ModelControlsOptions = {},
  ) {
    this.root = resolve(options.root ?? modelsRootFrom());
    this.settings = options.retrain ?? {};
    this.stamp = this.folderStamp();
    const watchMs = options.watchMs ?? 2000;
    if (watchMs > 0) {
      // `npm run promote` or `npm run retrain` in a terminal change the folder too: tell the page.
      this.watch = setInterval(() => {
        const stamp = this.folderStamp();
        if (stamp !== this.stamp) {
          this.stamp = stamp;
          this.emit({ type: 'models', data: { reason: 'changed on disk' } });
        }
      }, watchMs);
      this.watch.unref();
    }
  }

  /** mtimes of registry.json and candidates/: a registry change or a new candidate changes them. */
  private folderStamp(): string {
    return [REGISTRY_FILE, CANDIDATES_DIR]
      .map((name) => {
        try {
          return String(statSync(join(this.root, name)).mtimeMs);
        } catch {
          return '-';
        }
      })
      .join('/');
  }

  subscribe(listener: (event: ModelsEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: ModelsEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener going away must not break the job.
      }
    }
  }

  /** GET /api/models. */
  overview(): ModelsOverview & { retrain: RetrainJobStatus | null } {
    return { ...modelsOverview(this.root), retrain: this.retrainStatus() };
  }

  /** The shadow comparisons of the metrics windows the home holds, the active pair first. */
  shadowComparisons(): ShadowComparison[] {
    const registry = readRegistry(this.root);
    return shadowComparisons(this.store.metrics.list(), this.store, registry);
  }

  private async change(action: () => Promise<RegistryChange>): Promise<RegistryChange> {
    const result = await action();
    this.stamp = this.folderStamp();
    this.emit({ type: 'models', data: { reason: `${result.action} ${result.version}` } });
    return result;
  }

  /** Validates a version named in a URL before it reaches the registry. */
  private version(text: string): string {
    const parsed = versionSchema.safeParse(text);
    if (!parsed.success)
      throw new HomeRequestError(400, `${JSON.stringify(text.slice(0, 80))} is not a model version (like 1.2.0)`);
    return parsed.data;
  }

  promote(version: string): Promise<RegistryChange> {
    const v = this.version(version);
    return this.change(() => promote(v, this.root));
  }

  shadow(version: string): Promise<RegistryChange> {
    const v = this.version(version);
    return this.change(() => shadow(v, this.root));
  }

  unshadow(): Promise<RegistryChange> {
    return this.change(() => shadow(null, this.root));
  }

  rollback(): Promise<RegistryChange> {
    return this.change(() => rollback(this.root));
  }

  /** The latest retrain job (running or finished), or null when none ran since the home started. */
  retrainStatus(): RetrainJobStatus | null {
    return this.job ? structuredClone(this.job) : null;
  }

  /**
   * Starts a retrain job: exports the home's labelled frames (home/dataset.ts), then fine-tunes
   * the current model on them in a child process. Returns once the job runs.
   *
   * @throws HomeRequestError 409 while a job runs, or when no frame has a digit label.
   */
  startRetrain(request: RetrainRequest = {}): RetrainJobStatus {
    if (this.job?.state === 'running')
      throw new HomeRequestError(
        409,
        `a retrain is already running (job ${this.job.id}, started ${this.job.started_at}): wait for it to finish`,
      );
    const summary = this.store.dataset();
    const digits = summary.labelled - summary.not_a_digit;
    if (digits === 0)
      throw new HomeRequestError(409, 'no frame has a digit label yet: label frames in the review queue, then retrain');
    // retrain fine-tunes the registry's current version of the same folder.
    const parent = readRegistry(this.root).current;
    // Its own folder per dataset version: an export button click cannot replace it under the job.
    const exported = exportDataset(this.store, join(this.store.dir, 'exports', `retrain-${summary.version.replace(':', '-')}`));
    const epochs = request.epochs ?? this.settings.epochs ?? null;
    const job: RetrainJobStatus = {
      id: this.nextId++,
      state: 'running',
      started_at: new Date().toISOString(),
      finished_at: null,
      parent,
      dataset: { dir: exported.dir, version: exported.version, labelled: exported.counts.total - exported.counts.not_a_digit },
      epochs,
      phase: 'prepare',
      message: `exported ${exported.counts.total - exported.counts.not_a_digit} labelled frames to ${exported.dir}`,
      epoch: null,
      step: null,
      steps: null,
      loss: null,
      held_out_accuracy: null,
      mnist_accuracy: null,
      result: null,
      error: null,
      log: [],
    };
    job.log.push(job.message as string);
    this.job = job;
    const options: RetrainJobRequest['options'] = {
      ...this.settings,
      ...(epochs !== null ? { epochs } : {}),
      datasetDir: exported.dir,
      root: this.root,
    };
    this.jobDone = this.runChild(job, options);
    this.emit({ type: 'retrain', data: this.publicStatus(job) });
    return structuredClone(job);
  }

  /** Resolves when the current job (if any) has ended. */
  whenRetrainDone(): Promise<void> {
    return this.jobDone;
  }

  /** A status for the event stream: the latest lines of the log only (a step event is sent per batch). */
  private publicStatus(job: RetrainJobStatus): RetrainJobStatus {
    return { ...structuredClone(job), log: job.log.slice(-EVENT_LOG_LINES) };
  }

  private runChild(job: RetrainJobStatus, options: RetrainJobRequest['options']): Promise<void> {
    return new Promise<void>((resolveDone) => {
      let finished = false;
      const finish = (state: 'succeeded' | 'failed', update: Partial<RetrainJobStatus>): void => {
        if (finished) return;
        finished = true;
        Object.assign(job, update, { state, finished_at: new Date().toISOString() });
        if (job.message) job.log.push(job.message);
        this.child = undefined;
        this.emit({ type: 'retrain', data: this.publicStatus(job) });
        if (state === 'succeeded') {
          this.stamp = this.folderStamp();
          this.emit({ type: 'models', data: { reason: `retrained ${job.result?.version ?? ''}` } });
        }
        resolveDone();
      };
      let child: ChildProcess;
      try {
        child = fork(join(__dirname, 'retrain-job.ts'), [], {
          // The job is TypeScript, like the home: the child loads it through tsx.
          execArgv: ['--import', pathToFileURL(require.resolve('tsx')).href],
          stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
          serialization: 'json',
        });
      } catch (error: unknown) {
        finish('failed', { phase: 'failed', error: `the retrain process could not start: ${String(error)}`, message: null });
        return;
      }
      this.child = child;
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      child.on('message', (message: RetrainJobMessage) => {
        if (message.type === 'progress') this.onProgress(job, message.progress);
        else if (message.type === 'done') {
          const failed = message.gates.checks.filter((c) => !c.passed).map((c) => c.name);
          finish('succeeded', {
            phase: 'done',
            result: { version: message.version, dir: message.dir, gates_passed: message.gates.passed, gates_failed: failed },
            message: `candidate ${message.version} written; gates ${message.gates.passed ? 'passed' : `failed: ${failed.join(', ')}`}`,
          });
        } else if (message.type === 'failed') {
          finish('failed', { phase: 'failed', error: `${message.name}: ${message.message}`, message: null });
        }
      });
      child.on('error', (error) =>
        finish('failed', { phase: 'failed', error: `the retrain process failed: ${error.message}`, message: null }),
      );
      child.on('exit', (code, signal) => {
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        finish('failed', {
          phase: 'failed',
          message: null,
          error: `the retrain process ended (${signal ?? `exit code ${code}`}) before reporting a result${tail ? `: ${tail}` : ''}`,
        });
      });
      child.send({ type: 'start', options } satisfies RetrainJobRequest);
    });
  }

  private onProgress(job: RetrainJobStatus, p: RetrainProgress): void {
    job.phase = p.phase;
    if (p.phase === 'train') {
      Object.assign(job, {
        epoch: p.epoch,
        epochs: p.epochs,
        step: p.step,
        steps: p.steps,
        loss: p.loss,
        held_out_accuracy: p.heldOutAccuracy,
        mnist_accuracy: p.mnistAccuracy,
      });
      if (p.epochEnd) {
        job.log.push(
          `epoch ${p.epoch}/${p.epochs}: loss ${p.loss.toFixed(4)}, held-out ${p.heldOutAccuracy === null ? '-' : `${(p.heldOutAccuracy * 100).toFixed(1)}%`}` +
            `${p.mnistAccuracy === null ? '' : `, MNIST slice ${(p.mnistAccuracy * 100).toFixed(2)}%`}`,
        );
      }
    } else {
      job.message = p.message;
      job.log.push(p.message);
    }
    if (job.log.length > LOG_LINES) job.log.splice(0, job.log.length - LOG_LINES);
    this.emit({ type: 'retrain', data: this.publicStatus(job) });
  }

  /** Stops watching and ends a running job's process (the home is shutting down). */
  async close(): Promise<void> {
    if (this.watch) clearInterval(this.watch);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await this.jobDone;
    }
    this.listeners.clear();
  }
}
