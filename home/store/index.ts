/**
 * The home's data folder as one object: frames, the label log, metrics windows and rejects,
 * plus the queries the API answers and the events the page listens to. Everything a request
 * reads is in memory; files are only appended (and read back at start), except the frame
 * store's, which retention compacts.
 *
 *   <data>/frames.jsonl    one line per uncertain frame (without images)
 *   <data>/images.bin      the frames' original PNGs and prepared pixels, appended per batch
 *   <data>/labels.jsonl    the label log (fsync'd per request)
 *   <data>/metrics.jsonl   metrics shard documents of the last hour
 *   <data>/rejected.jsonl  the latest rejects (without their payloads)
 *   <data>/checkpoints.json  stream positions when the home reads the streams itself
 *   <data>/retention.json  the last prune and the totals (see ./retention.ts, ./compaction.ts)
 *   <data>/exports/<version>/  exports made from the page
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../../functions/lib/state-file';
import type { MetricsDocument } from '../../functions/lib/metrics/document';
import type { RejectedImage, UncertainImage } from '../../functions/lib/contracts';
import type { CompactionResult } from './compaction';
import { FrameStore, type StoredFrame } from './frames';
import { type LabelEntry, LabelLog, type LabelValue, NOT_A_DIGIT } from './labels';
import { MetricsStore, type WindowView } from './metrics';
import { RejectStore } from './rejects';
import { lockDataFolder } from './files';
import { datasetVersion, type LabelledFrame } from '../dataset-version';
import { choosePrune, DEFAULT_RETENTION, folderBytes, RETENTION_CHECK_MS, type RetentionSettings } from './retention';

export { NOT_A_DIGIT, type LabelEntry, type LabelValue, type StoredFrame, type WindowView };

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] as const;

/** What the page hears about, as server-sent events. */
export type HomeEvent =
  | { type: 'window'; data: WindowView }
  | { type: 'frames'; data: { added: number; total: number } }
  | { type: 'label'; data: LabelEntry }
  | { type: 'rejected'; data: { added: number } }
  | { type: 'dataset'; data: DatasetSummary }
  | { type: 'retention'; data: RetentionStatus & { pruned_keys: string[]; pruned_keys_complete: boolean } };

/** Pruned keys an event names at most (beyond that the page reloads its list). */
export const PRUNED_KEYS_IN_EVENT = 5000;
/** Frames copied per step of a compaction: a few ms of the event loop each. */
export const COMPACTION_FRAMES_PER_STEP = 500;
export const RETENTION_FILE = 'retention.json';
/** Shortest time between two checks that stored frames (not the timer) asked for. */
export const RETENTION_MIN_GAP_MS = 5000;

const pruneRunSchema = z.object({
  at: z.string(),
  pruned: z.number(),
  pruned_by_age: z.number(),
  pruned_by_size: z.number(),
  bytes_before: z.number(),
  bytes_after: z.number(),
  ms: z.number(),
  longest_step_ms: z.number(),
});
/** One pruning: what went, what the pack and index took before and after, how long it took. */
export type PruneRun = z.infer<typeof pruneRunSchema>;
const retentionRecordSchema = z.object({
  last_prune: pruneRunSchema.nullable(),
  total: z.object({ pruned: z.number(), bytes_freed: z.number(), prunes: z.number() }),
});

/** The data folder against its bound, as GET /api/retention answers. */
export interface RetentionStatus {
  bound: { keep_days: number | null; max_bytes: number | null };
  data_bytes: number;
  /** The pack and the index: the part pruning shrinks. */
  frames_bytes: number;
  /** Bytes over max_bytes the last check could not free by pruning (labelled frames and other files). */
  over_bound_bytes: number;
  checked_at: string | null;
  running: boolean;
  last_error: string | null;
  last_prune: PruneRun | null;
  /** Every pruning of this data folder. */
  total: { pruned: number; bytes_freed: number; prunes: number };
}

export interface DatasetSummary {
  version: string;
  /** Frames with a label (digits and not-a-digit). */
  labelled: number;
  per_class: Record<string, number>;
  not_a_digit: number;
  unlabelled: number;
  frames: number;
}

/** A label request refers to something that is not there, or cannot be undone: a 4xx. */
export class HomeRequestError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 410,
    message: string,
  ) {
    super(message);
    this.name = 'HomeRequestError';
  }
}

/** How a stream batch went: what was new, what was seen before, what could not be read. */
export interface IngestCounts {
  added: number;
  duplicates: number;
}

export class HomeStore {
  readonly dir: string;
  readonly frames: FrameStore;
  readonly labels: LabelLog;
  readonly metrics: MetricsStore;
  readonly rejects: RejectStore;
  readonly startedAt = new Date().toISOString();
  /** Stream records that did not match their contract, per stream (never stored). */
  readonly unreadable: Record<string, number> = {};
  /** Redelivered records dropped, per stream. */
  readonly duplicates: Record<string, number> = {};
  private readonly listeners = new Set<(event: HomeEvent) => void>();
  private summary: DatasetSummary | undefined;

  private readonly unlock: () => void;
  readonly retention: RetentionSettings;
  private retentionStatus: RetentionStatus;
  private retentionRun: Promise<PruneRun | null> | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  /** Bytes of frames stored since the folder was last measured. */
  private grownSinceCheck = 0;
  private closed = false;
  private readonly readOnly: boolean;

  /**
   * Opens (creating) the data folder. A writer locks it (one writing home per folder); with
   * `readOnly` (the dataset command beside a running home) nothing is locked or written.
   * `retention` is the bound {@link enforceRetention} keeps the folder in.
   */
  constructor(dir: string, options: { readOnly?: boolean; retention?: RetentionSettings } = {}) {
    this.dir = resolve(dir);
    this.retention = options.retention ?? DEFAULT_RETENTION;
    this.readOnly = options.readOnly ?? false;
    if (options.readOnly) {
      this.unlock = () => undefined;
    } else {
      mkdirSync(this.dir, { recursive: true });
      this.unlock = lockDataFolder(this.dir);
    }
    try {
      this.frames = new FrameStore(this.dir, options);
      this.labels = new LabelLog(this.dir, options);
      this.metrics = new MetricsStore(this.dir, options);
      this.rejects = new RejectStore(this.dir, options);
    } catch (error: unknown) {
      this.unlock();
      throw error;
    }
    const record = this.readRetentionRecord();
    this.retentionStatus = {
      bound: { keep_days: this.retention.keepDays, max_bytes: this.retention.maxBytes },
      data_bytes: 0,
      frames_bytes: this.frames.bytes,
      over_bound_bytes: 0,
      checked_at: null,
      running: false,
      last_error: null,
      last_prune: record.last_prune,
      total: record.total,
    };
  }

  private readRetentionRecord(): z.infer<typeof retentionRecordSchema> {
    const empty = { last_prune: null, total: { pruned: 0, bytes_freed: 0, prunes: 0 } };
    const file = join(this.dir, RETENTION_FILE);
    if (!existsSync(file)) return empty;
    try {
      return retentionRecordSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    } catch {
      // Only a record of past prunes: a damaged one restarts the totals, nothing else is lost.
      return empty;
    }
  }

  /** The data folder's size, its bound and the prunes so far. */
  retentionView(): RetentionStatus {
    return {
      ...this.retentionStatus,
      // Measured now: frames arriving between checks make the last check's figure stale.
      data_bytes: folderBytes(this.dir),
      frames_bytes: this.frames.bytes,
      running: this.retentionRun !== undefined,
    };
  }

  /**
   * Checks the bound every `everyMs` (and once now), and as soon as the frames stored since
   * the last check could have passed the size bound, pruning when it is passed. Stopped by
   * {@link close}.
   */
  startRetention(everyMs = RETENTION_CHECK_MS): void {
    if (this.readOnly || this.retentionTimer) return;
    this.retentionTimer = setInterval(() => this.checkRetentionSoon(), everyMs);
    this.retentionTimer.unref();
    this.checkRetentionSoon();
  }

  private checkRetentionSoon(): void {
    // Never inside the ingest or the timer that asked: on the next turn of the event loop.
    setImmediate(() => {
      if (this.closed) return;
      this.enforceRetention().catch((error: unknown) => {
        console.error(`home: retention: ${error instanceof Error ? error.message : String(error)}`);
      });
    });
  }

  private noteGrowth(bytes: number): void {
    this.grownSinceCheck += bytes;
    const max = this.retention.maxBytes;
    if (this.retentionTimer === undefined || this.retentionRun !== undefined || max === null) return;
    const checked = this.retentionStatus.checked_at === null ? 0 : Date.parse(this.retentionStatus.checked_at);
    // At most one check per RETENTION_MIN_GAP_MS: a folder over its bound for labelled frames
    // alone would otherwise be measured at every batch.
    if (this.retentionStatus.data_bytes + this.grownSinceCheck > max && Date.now() - checked >= RETENTION_MIN_GAP_MS) {
      // Measured again by the check: a burst of frames prunes within the batch, not a minute later.
      this.grownSinceCheck = 0;
      this.checkRetentionSoon();
    }
  }

  /**
   * Prunes what the bound asks for (see {@link choosePrune}): compacts the frame store in
   * steps of {@link COMPACTION_FRAMES_PER_STEP} frames, yielding to requests between steps.
   * One run at a time: a call during a run gets that run. Resolves to the prune, or null when
   * nothing had to go.
   */
  enforceRetention(options: { now?: number; framesPerStep?: number } = {}): Promise<PruneRun | null> {
    if (this.retentionRun) return this.retentionRun;
    const run = this.runRetention(options.now ?? Date.now(), options.framesPerStep ?? COMPACTION_FRAMES_PER_STEP);
    this.retentionRun = run.then(
      (result) => {
        this.retentionRun = undefined;
        return result;
      },
      (error: unknown) => {
        this.retentionRun = undefined;
        this.retentionStatus.last_error = error instanceof Error ? error.message : String(error);
        throw error;
      },
    );
    return this.retentionRun;
  }

  /**
   * Runs one compaction to its commit; null when the store closed meanwhile. On an error (a
   * full disk while writing the new files) the new files are deleted and the old store goes on.
   */
  private async compact(
    prune: ReadonlySet<string>,
    isLabelled: (key: string) => boolean,
    framesPerStep: number,
  ): Promise<CompactionResult | null> {
    const compaction = this.frames.startCompaction(prune, isLabelled);
    try {
      while (!compaction.step(framesPerStep)) {
        await new Promise((resolveStep) => setImmediate(resolveStep));
        if (this.closed) return null;
      }
      await compaction.flush();
      if (this.closed) return null;
      return compaction.commit();
    } catch (error: unknown) {
      // Closed meanwhile: the files the flush was for went with the compaction.
      if (this.closed) return null;
      this.frames.abandonCompaction();
      throw error;
    }
  }

  private async runRetention(now: number, framesPerStep: number): Promise<PruneRun | null> {
    if (this.closed || this.readOnly) return null;
    const started = performance.now();
    const dataBytes = folderBytes(this.dir);
    this.grownSinceCheck = 0;
    const isLabelled = (key: string): boolean => this.labels.current(key) !== undefined;
    const plan = choosePrune(
      this.frames.list.map((frame) => ({
        key: frame.key,
        seq: frame.seq,
        received_at: frame.received_at,
        bytes: this.frames.bytesOf(frame),
      })),
      isLabelled,
      this.retention,
      dataBytes,
      now,
    );
    Object.assign(this.retentionStatus, {
      data_bytes: dataBytes,
      over_bound_bytes: plan.overBy,
      checked_at: new Date(now).toISOString(),
      last_error: null,
    });
    if (plan.keys.size === 0) return null;
    const result = await this.compact(plan.keys, isLabelled, framesPerStep);
    if (!result) return null;
    const prune: PruneRun = {
      at: new Date().toISOString(),
      pruned: result.pruned.length,
      pruned_by_age: Math.min(plan.byAge, result.pruned.length),
      pruned_by_size: Math.max(0, result.pruned.length - plan.byAge),
      bytes_before: result.bytesBefore,
      bytes_after: result.bytesAfter,
      ms: Math.round(performance.now() - started),
      longest_step_ms: Math.round(result.longestStepMs * 10) / 10,
    };
    const total = this.retentionStatus.total;
    total.pruned += prune.pruned;
    total.bytes_freed += Math.max(0, prune.bytes_before - prune.bytes_after);
    total.prunes += 1;
    this.retentionStatus.last_prune = prune;
    writeFileAtomic(join(this.dir, RETENTION_FILE), `${JSON.stringify({ last_prune: prune, total })}\n`);
    this.retentionStatus.data_bytes = folderBytes(this.dir);
    this.summary = undefined;
    const keys = result.pruned.slice(0, PRUNED_KEYS_IN_EVENT).map((frame) => frame.key);
    this.emit({
      type: 'retention',
      data: { ...this.retentionView(), pruned_keys: keys, pruned_keys_complete: keys.length === result.pruned.length },
    });
    this.emit({ type: 'dataset', data: this.dataset() });
    return prune;
  }

  /** Calls `listener` with every event from now on; returns the function that stops it. */
  subscribe(listener: (event: HomeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: HomeEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A listener (an SSE connection going away) must not break ingestion or labelling.
      }
    }
  }

  countUnreadable(stream: string, n = 1): void {
    this.unreadable[stream] = (this.unreadable[stream] ?? 0) + n;
  }

  private countDuplicates(stream: string, n: number): void {
    if (n > 0) this.duplicates[stream] = (this.duplicates[stream] ?? 0) + n;
  }

  /** Stores a batch of `uncertain-images` records. */
  addFrames(records: readonly UncertainImage[]): IngestCounts {
    const { added, duplicates } = this.frames.addBatch(records);
    this.countDuplicates('uncertain-images', duplicates);
    if (added.length > 0) {
      this.summary = undefined;
      this.emit({ type: 'frames', data: { added: added.length, total: this.frames.size } });
      this.noteGrowth(added.reduce((sum, frame) => sum + this.frames.bytesOf(frame), 0));
    }
    return { added: added.length, duplicates };
  }

  /** Stores a batch of `rejected-images` records. */
  addRejects(records: readonly RejectedImage[]): IngestCounts {
    const result = this.rejects.add(records);
    this.countDuplicates('rejected-images', result.duplicates);
    if (result.added > 0) this.emit({ type: 'rejected', data: { added: result.added } });
    return result;
  }

  /** Stores a batch of `metrics` shard documents; each window they touch is sent merged. */
  addMetrics(docs: readonly MetricsDocument[]): IngestCounts {
    const { touched, duplicates } = this.metrics.add(docs);
    this.countDuplicates('metrics', duplicates);
    for (const window of touched) this.emit({ type: 'window', data: window });
    return { added: docs.length - duplicates, duplicates };
  }

  private frameOrThrow(key: string): StoredFrame {
    const frame = this.frames.get(key);
    const prunedAt = frame ? undefined : this.frames.prunedWhen(key);
    if (prunedAt)
      throw new HomeRequestError(
        410,
        `frame ${JSON.stringify(key)} was pruned at ${prunedAt}, before anyone labelled it: it is no longer in the data folder`,
      );
    if (!frame)
      throw new HomeRequestError(
        400,
        `there is no frame ${JSON.stringify(key.slice(0, 200))}: label only frame_ids that GET /api/frames returned`,
      );
    return frame;
  }

  private afterLabels(entries: readonly LabelEntry[]): void {
    this.summary = undefined;
    for (const entry of entries) this.emit({ type: 'label', data: entry });
    this.emit({ type: 'dataset', data: this.dataset() });
  }

  /**
   * Labels frames (one fsync for all). `accept` labels each frame with the model's guess.
   * Every frame must exist; otherwise nothing is written.
   */
  label(keys: readonly string[], label: LabelValue | 'accept'): LabelEntry[] {
    const frames = [...new Set(keys)].map((key) => this.frameOrThrow(key));
    const entries = this.labels.append(
      frames.map((frame) => ({
        frame_id: frame.key,
        label: label === 'accept' ? frame.result_class : label,
        predicted: frame.result_class,
        model_version: frame.model_version,
        camera: frame.camera,
        action: label === 'accept' ? 'accept' : 'label',
      })),
    );
    this.afterLabels(entries);
    return entries;
  }

  /**
   * Reverts the most recent label entry not yet undone (of `key` when given) by a new entry
   * that restores the label it replaced.
   */
  undo(key?: string): LabelEntry {
    if (key !== undefined) this.frameOrThrow(key);
    const target = this.labels.undoable(key);
    if (!target)
      throw new HomeRequestError(
        409,
        key === undefined ? 'there is no label to undo' : `frame ${JSON.stringify(key)} has no label to undo`,
      );
    const [entry] = this.labels.append([
      {
        frame_id: target.frame_id,
        label: target.previous,
        predicted: target.predicted,
        model_version: target.model_version,
        camera: target.camera,
        action: 'undo',
        undoes: target.seq,
      },
    ]);
    this.afterLabels([entry as LabelEntry]);
    return entry as LabelEntry;
  }

  /** Labelled counts per class, remaining frames and the dataset version (cached until a change). */
  dataset(): DatasetSummary {
    if (this.summary) return this.summary;
    const perClass: Record<string, number> = Object.fromEntries(DIGITS.map((d) => [d, 0]));
    let notADigit = 0;
    for (const entry of this.labels.currentEntries()) {
      if (entry.label === null || !this.frames.get(entry.frame_id)) continue;
      if (entry.label === NOT_A_DIGIT) notADigit += 1;
      else perClass[String(entry.label)] = (perClass[String(entry.label)] ?? 0) + 1;
    }
    const digits = Object.values(perClass).reduce((a, b) => a + b, 0);
    this.summary = {
      version: datasetVersion(this.labelledFrames()),
      labelled: digits + notADigit,
      per_class: perClass,
      not_a_digit: notADigit,
      unlabelled: this.frames.size - digits - notADigit,
      frames: this.frames.size,
    };
    return this.summary;
  }

  /** Every frame with a label (digit or not-a-digit) and its current label entry. */
  labelledFrames(): LabelledFrame[] {
    const out: LabelledFrame[] = [];
    for (const entry of this.labels.currentEntries()) {
      const frame = this.frames.get(entry.frame_id);
      if (entry.label !== null && frame) out.push({ frame, entry: entry as LabelledFrame['entry'] });
    }
    return out;
  }

  /** Labelled (rows: 0-9 then not-a-digit) against predicted (columns 0-9). */
  confusion(): { labels: string[]; predicted: string[]; matrix: number[][] } {
    const labels = [...DIGITS, NOT_A_DIGIT];
    const matrix = labels.map(() => DIGITS.map(() => 0));
    for (const entry of this.labels.currentEntries()) {
      const frame = this.frames.get(entry.frame_id);
      if (entry.label === null || !frame) continue;
      const row = entry.label === NOT_A_DIGIT ? 10 : entry.label;
      const cells = matrix[row] as number[];
      cells[frame.result_class] = (cells[frame.result_class] ?? 0) + 1;
    }
    return { labels, predicted: [...DIGITS], matrix };
  }

  close(): void {
    this.closed = true;
    clearInterval(this.retentionTimer);
    this.frames.close();
    this.labels.close();
    this.metrics.close();
    this.rejects.close();
    this.unlock();
  }
}
