/**
 * The home side of a local run: reads what the pipeline sends home (predictions, uncertain
 * images, rejects, metrics) through the same runner the functions use, and writes it where a
 * person can look at it:
 *
 *   <out>/predictions.jsonl    one line per accepted frame
 *   <out>/uncertain/           <camera>_<frame_id>.png + .json (the tuple, image in the PNG)
 *   <out>/rejected.jsonl       one line per unreadable frame
 *   <out>/metrics.jsonl        one metrics document per window and shard
 *
 * Delivery is at-least-once, so every output is de-duplicated on `frame_id` (documents on
 * their `id`): a retried batch never shows up twice here.
 *
 * Crash-consistent: every handler makes what it wrote durable (fsync) before it returns, and
 * only then may the runner checkpoint past the records, so a SIGKILL or a power cut never
 * leaves a checkpoint ahead of the files. Lines are appended (rewriting a growing file per
 * batch would cost its whole size every time); uncertain frames are written then renamed. A
 * torn last line is cut off when a run resumes (its records are delivered again).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { KinesisStreamEvent } from 'aws-lambda';
import {
  predictionSchema,
  rejectedImageSchema,
  uncertainImageSchema,
  type Prediction,
  type RejectedImage,
} from '../functions/lib/contracts';
import { LogLinearHistogram } from '../functions/lib/metrics/histogram';
import { type MetricsDocument, metricsDocumentSchema } from '../functions/lib/metrics/document';
import { mergeMetrics } from '../functions/lib/metrics/merge';
import { appendDurable, removeTemporaryFilesIn, repairJsonLines, writeFilesAtomic } from '../functions/lib/state-file';

export const HOME_FILES = {
  predictions: 'predictions.jsonl',
  uncertain: 'uncertain',
  rejected: 'rejected.jsonl',
  metrics: 'metrics.jsonl',
  deadLetter: 'dead-letter.jsonl',
  summary: 'summary.json',
} as const;

/**
 * A string safe as (part of) a file name on every common file system: letters, digits,
 * `.`, `_` and `-` only, no leading dot, at most `max` characters. Camera ids are validated
 * upstream, but the output folder must not depend on that.
 */
export function safeFileName(value: string, max = 80): string {
  const cleaned = value
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, max);
  return cleaned === '' ? '_' : cleaned;
}

export interface HomeCounts {
  predicted: number;
  uncertain: number;
  rejected: number;
  metricsDocuments: number;
  /** Labelled predictions, and those whose class matched the label. */
  labelled: number;
  correct: number;
  /** Outputs seen again after a retry and dropped. */
  duplicates: number;
  /** Records on an output stream that did not match its contract (kept in unreadable.jsonl). */
  unreadable: number;
  rejectedByReason: Record<string, number>;
  /**
   * Outputs of frames published before this run (left unfinished by an earlier run, or read
   * again on purpose): kept in the files, counted here and not above.
   */
  earlier: { predicted: number; uncertain: number; rejected: number };
  /** Uncertain-images by reason (low_confidence, test_camera, sampled). */
  uncertainByReason: Record<string, number>;
}

/** A shadow comparison summed over every metrics document read home. */
export interface ShadowTotal {
  current: string;
  candidate: string;
  count: number;
  agree: number;
  labelled: number;
  current_correct: number;
  candidate_correct: number;
}

export interface HomeOptions {
  /** Keep what the folder holds (a resumed run) instead of starting empty. */
  resume?: boolean;
  /** Frame ids remembered per output for de-duplication (default {@link DEDUP_MEMORY}). */
  dedupMemory?: number;
  /** Called with the merged document of a window each time a document for it arrives. */
  onWindow?: (merged: MetricsDocument) => void;
  /** True for a frame published before this run (see {@link HomeCounts.earlier}). */
  isEarlier?: (frameId: string) => boolean;
  /** Told about damage found and repaired when a run resumes (default: standard error). */
  onRepair?: (message: string) => void;
}

type Handler = (event: KinesisStreamEvent) => Promise<void>;

/**
 * Frame ids remembered per output for de-duplication. A duplicate only comes from a retry,
 * which repeats records of the last few batches (or, after a restart, those past the last
 * checkpoint), so the most recent 50,000 ids are plenty; bounding them keeps a long --serve
 * run's memory flat.
 */
export const DEDUP_MEMORY = 50_000;
/** Metrics windows kept for merging late shard documents and for the summary. */
export const WINDOWS_KEPT = 64;

/** Adds to an insertion-ordered set, forgetting the oldest entry past `limit`. */
function remember(set: Set<string>, id: string, limit = DEDUP_MEMORY): void {
  set.add(id);
  if (set.size > limit) {
    const oldest = set.values().next();
    if (!oldest.done) set.delete(oldest.value);
  }
}

/** Writes the home outputs of one local run into `outDir`. */
export class HomeOutputs {
  readonly counts: HomeCounts = {
    predicted: 0,
    uncertain: 0,
    rejected: 0,
    metricsDocuments: 0,
    labelled: 0,
    correct: 0,
    duplicates: 0,
    unreadable: 0,
    rejectedByReason: {},
    earlier: { predicted: 0, uncertain: 0, rejected: 0 },
    uncertainByReason: {},
  };
  /** Shadow comparisons over the run, keyed `<current>\n<candidate>` (from the metrics documents). */
  readonly shadowTotals = new Map<string, ShadowTotal>();
  /** Capture-to-scoring latency of the predictions, seconds. */
  readonly endToEnd = new LogLinearHistogram();
  readonly modelVersions = new Set<string>();
  private readonly predictedIds = new Set<string>();
  private readonly uncertainIds = new Set<string>();
  private readonly rejectedIds = new Set<string>();
  private readonly documentIds = new Set<string>();
  private readonly windows = new Map<string, MetricsDocument[]>();
  /** Wall-clock ms when the first and the latest new prediction or reject arrived home. */
  firstOutputAt = 0;
  lastOutputAt = 0;
  private firstPredictionAt = Number.POSITIVE_INFINITY;
  private lastPredictionAt = 0;

  constructor(
    readonly outDir: string,
    private readonly options: HomeOptions = {},
  ) {
    mkdirSync(outDir, { recursive: true });
    if (!options.resume) {
      for (const name of Object.values(HOME_FILES)) rmSync(join(outDir, name), { recursive: true, force: true });
      rmSync(join(outDir, 'unreadable.jsonl'), { force: true });
    } else {
      this.reload();
    }
    mkdirSync(join(outDir, HOME_FILES.uncertain), { recursive: true });
  }

  path(name: keyof typeof HOME_FILES): string {
    return join(this.outDir, HOME_FILES[name]);
  }

  private remember(set: Set<string>, id: string): void {
    remember(set, id, this.options.dedupMemory ?? DEDUP_MEMORY);
  }

  /** Seconds between the first and the last prediction seen (0 before two arrive). */
  get predictionSpanSeconds(): number {
    return this.lastPredictionAt > this.firstPredictionAt ? (this.lastPredictionAt - this.firstPredictionAt) / 1000 : 0;
  }

  /** Handlers for the runner, keyed by base stream name. They never fail a batch. */
  handlers(): Record<'predictions' | 'uncertain-images' | 'rejected-images' | 'metrics', Handler> {
    return {
      predictions: async (event) => this.onPredictions(event),
      'uncertain-images': async (event) => this.onUncertain(event),
      'rejected-images': async (event) => this.onRejected(event),
      metrics: async (event) => this.onMetrics(event),
    };
  }

  private decode(record: KinesisStreamEvent['Records'][number]): unknown {
    try {
      return JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')) as unknown;
    } catch {
      return undefined;
    }
  }

  private earlier(frameId: string): boolean {
    return this.options.isEarlier?.(frameId) ?? false;
  }

  private unreadable(stream: string, record: KinesisStreamEvent['Records'][number], problem: string): void {
    this.counts.unreadable += 1;
    appendDurable(
      join(this.outDir, 'unreadable.jsonl'),
      `${JSON.stringify({ stream, sequenceNumber: record.kinesis.sequenceNumber, problem })}\n`,
    );
  }

  private onPredictions(event: KinesisStreamEvent): void {
    const lines: string[] = [];
    for (const record of event.Records) {
      const parsed = predictionSchema.safeParse(this.decode(record));
      if (!parsed.success) {
        this.unreadable('predictions', record, parsed.error.message);
        continue;
      }
      const p = parsed.data;
      if (this.predictedIds.has(p.frame_id)) {
        this.counts.duplicates += 1;
        continue;
      }
      this.remember(this.predictedIds, p.frame_id);
      if (this.earlier(p.frame_id)) this.counts.earlier.predicted += 1;
      else this.countPrediction(p);
      lines.push(JSON.stringify(p));
    }
    if (lines.length > 0) {
      appendDurable(this.path('predictions'), `${lines.join('\n')}\n`);
      this.arrived();
    }
  }

  private arrived(): void {
    const now = Date.now();
    if (this.firstOutputAt === 0) this.firstOutputAt = now;
    this.lastOutputAt = now;
  }

  private countPrediction(p: Prediction): void {
    this.counts.predicted += 1;
    if (p.label !== undefined) {
      this.counts.labelled += 1;
      if (p.label === p.result_class) this.counts.correct += 1;
    }
    this.modelVersions.add(p.model_version);
    const scored = Date.parse(p.scored_at);
    const captured = Date.parse(p.timestamp);
    if (Number.isFinite(scored)) {
      this.firstPredictionAt = Math.min(this.firstPredictionAt, scored);
      this.lastPredictionAt = Math.max(this.lastPredictionAt, scored);
      if (Number.isFinite(captured) && scored >= captured) this.endToEnd.record(Math.max((scored - captured) / 1000, 1e-6));
    }
  }

  private onUncertain(event: KinesisStreamEvent): void {
    const files: Array<{ path: string; data: string | Buffer }> = [];
    for (const record of event.Records) {
      const parsed = uncertainImageSchema.safeParse(this.decode(record));
      if (!parsed.success) {
        this.unreadable('uncertain-images', record, parsed.error.message);
        continue;
      }
      const { image, ...tuple } = parsed.data;
      if (this.uncertainIds.has(tuple.frame_id)) {
        this.counts.duplicates += 1;
        continue;
      }
      this.remember(this.uncertainIds, tuple.frame_id);
      if (this.earlier(tuple.frame_id)) {
        this.counts.earlier.uncertain += 1;
      } else {
        this.counts.uncertain += 1;
        this.counts.uncertainByReason[tuple.reason] = (this.counts.uncertainByReason[tuple.reason] ?? 0) + 1;
      }
      const base = `${safeFileName(tuple.camera, 60)}_${safeFileName(tuple.frame_id, 100)}`;
      const dir = this.path('uncertain');
      const png = image ? Buffer.from(image, 'base64') : undefined;
      // The image first: a JSON file (what a reload counts) never names a missing PNG.
      if (png && png.length > 0) files.push({ path: join(dir, `${base}.png`), data: png });
      files.push({
        path: join(dir, `${base}.json`),
        data: `${JSON.stringify({ ...tuple, image_file: png?.length ? `${base}.png` : null })}\n`,
      });
    }
    if (files.length > 0) writeFilesAtomic(files);
  }

  private onRejected(event: KinesisStreamEvent): void {
    const lines: string[] = [];
    for (const record of event.Records) {
      const parsed = rejectedImageSchema.safeParse(this.decode(record));
      if (!parsed.success) {
        this.unreadable('rejected-images', record, parsed.error.message);
        continue;
      }
      const r: RejectedImage = parsed.data;
      if (this.rejectedIds.has(r.frame_id)) {
        this.counts.duplicates += 1;
        continue;
      }
      this.remember(this.rejectedIds, r.frame_id);
      if (this.earlier(r.frame_id)) {
        this.counts.earlier.rejected += 1;
      } else {
        this.counts.rejected += 1;
        this.counts.rejectedByReason[r.reason] = (this.counts.rejectedByReason[r.reason] ?? 0) + 1;
      }
      lines.push(JSON.stringify(r));
    }
    if (lines.length > 0) {
      appendDurable(this.path('rejected'), `${lines.join('\n')}\n`);
      this.arrived();
    }
  }

  private onMetrics(event: KinesisStreamEvent): void {
    const lines: string[] = [];
    const touched = new Set<string>();
    for (const record of event.Records) {
      const parsed = metricsDocumentSchema.safeParse(this.decode(record));
      if (!parsed.success) {
        this.unreadable('metrics', record, parsed.error.message);
        continue;
      }
      const doc = parsed.data;
      if (this.documentIds.has(doc.id)) {
        this.counts.duplicates += 1;
        continue;
      }
      this.remember(this.documentIds, doc.id);
      this.counts.metricsDocuments += 1;
      this.addShadow(doc);
      lines.push(JSON.stringify(doc));
      const key = `${doc.window.start}/${doc.window.end}`;
      const group = this.windows.get(key) ?? [];
      if (group.length === 0) this.windowCount += 1;
      group.push(doc);
      this.windows.set(key, group);
      if (this.windows.size > WINDOWS_KEPT) this.windows.delete(this.windows.keys().next().value as string);
      touched.add(key);
    }
    if (lines.length > 0) appendDurable(this.path('metrics'), `${lines.join('\n')}\n`);
    for (const key of touched) {
      const group = this.windows.get(key);
      if (group && this.options.onWindow) this.options.onWindow(mergeMetrics(group));
    }
  }

  /** Adds a document's shadow comparisons to the run's totals. */
  private addShadow(doc: MetricsDocument): void {
    for (const s of doc.shadow ?? []) {
      const key = `${s.current}\n${s.candidate}`;
      const total = this.shadowTotals.get(key) ?? {
        current: s.current,
        candidate: s.candidate,
        count: 0,
        agree: 0,
        labelled: 0,
        current_correct: 0,
        candidate_correct: 0,
      };
      total.count += s.count;
      total.agree += s.agree;
      total.labelled += s.labelled;
      total.current_correct += s.current_correct;
      total.candidate_correct += s.candidate_correct;
      this.shadowTotals.set(key, total);
    }
  }

  /** Windows seen so far (documents of the most recent ones are kept). */
  windowCount = 0;

  /** The metrics documents of the most recent windows, merged per window, oldest first. */
  mergedWindows(): MetricsDocument[] {
    return [...this.windows.values()]
      .map((group) => mergeMetrics(group))
      .sort((a, b) => Date.parse(a.window.start) - Date.parse(b.window.start));
  }

  /** Frame ids written so far (tests and the summary use them). */
  ids(): { predicted: ReadonlySet<string>; uncertain: ReadonlySet<string>; rejected: ReadonlySet<string> } {
    return { predicted: this.predictedIds, uncertain: this.uncertainIds, rejected: this.rejectedIds };
  }

  /** A resumed run: count and de-duplicate against what the folder already holds. */
  private reload(): void {
    const report = this.options.onRepair ?? ((message: string) => process.stderr.write(`home: ${message}\n`));
    for (const name of ['predictions', 'rejected', 'metrics'] as const) {
      const cut = repairJsonLines(this.path(name));
      if (cut > 0) report(`${this.path(name)}: cut a torn last line (${cut} bytes) left by a crash; its records are read again`);
    }
    removeTemporaryFilesIn(this.path('uncertain'));
    const lines = (file: string): unknown[] => {
      if (!existsSync(file)) return [];
      let damaged = 0;
      const values = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          try {
            return JSON.parse(l) as unknown;
          } catch {
            damaged += 1;
            return undefined;
          }
        });
      if (damaged > 0) report(`${file}: ${damaged} unreadable line(s) skipped`);
      return values;
    };
    for (const value of lines(this.path('predictions'))) {
      const parsed = predictionSchema.safeParse(value);
      if (parsed.success && !this.predictedIds.has(parsed.data.frame_id)) {
        this.remember(this.predictedIds, parsed.data.frame_id);
        this.countPrediction(parsed.data);
      }
    }
    for (const value of lines(this.path('rejected'))) {
      const parsed = rejectedImageSchema.safeParse(value);
      if (parsed.success && !this.rejectedIds.has(parsed.data.frame_id)) {
        this.remember(this.rejectedIds, parsed.data.frame_id);
        this.counts.rejected += 1;
        this.counts.rejectedByReason[parsed.data.reason] = (this.counts.rejectedByReason[parsed.data.reason] ?? 0) + 1;
      }
    }
    for (const value of lines(this.path('metrics'))) {
      const parsed = metricsDocumentSchema.safeParse(value);
      if (parsed.success && !this.documentIds.has(parsed.data.id)) {
        this.remember(this.documentIds, parsed.data.id);
        this.addShadow(parsed.data);
        this.counts.metricsDocuments += 1;
      }
    }
    const uncertainDir = this.path('uncertain');
    if (existsSync(uncertainDir)) {
      for (const name of readdirSync(uncertainDir)) {
        if (!name.endsWith('.json')) continue;
        const [value] = lines(join(uncertainDir, name));
        const id = value && typeof value === 'object' ? (value as { frame_id?: unknown }).frame_id : undefined;
        if (typeof id === 'string' && !this.uncertainIds.has(id)) {
          this.remember(this.uncertainIds, id);
          this.counts.uncertain += 1;
        }
      }
    }
  }
}
