/**
 * Metrics windows: the shard documents of the `metrics` stream, merged per window with
 * {@link mergeMetrics}, the last hour (before the newest window's end) kept. Documents are
 * appended to `metrics.jsonl` once per batch; at start the file is read back and compacted to
 * that hour.
 */
import { join } from 'node:path';
import { type MetricsDocument, metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { mergeMetrics } from '../../functions/lib/metrics/merge';
import { AppendFile, readJsonLines, rewriteFile } from './files';

export const METRICS_FILE = 'metrics.jsonl';
/** How much history the page charts: one hour before the newest window's end. */
export const METRICS_HISTORY_MS = 60 * 60 * 1000;

/** A merged window as the API serves it: the document without its histograms. */
export type WindowView = Omit<MetricsDocument, 'histograms'>;

interface Window {
  docs: MetricsDocument[];
  merged: WindowView;
  start: number;
  end: number;
}

function view(doc: MetricsDocument): WindowView {
  const { histograms: _histograms, ...rest } = doc;
  return rest;
}

export class MetricsStore {
  private readonly windows = new Map<string, Window>();
  private readonly documentIds = new Set<string>();
  private newestEnd = 0;
  readonly unreadableLines: number;
  /** Shard documents that contradicted another of their window (merge refused them). */
  conflicts = 0;
  private readonly file: AppendFile;

  constructor(dir: string, options: { readOnly?: boolean } = {}) {
    const path = join(dir, METRICS_FILE);
    const { values, unreadable } = readJsonLines(path);
    let bad = unreadable;
    const docs: MetricsDocument[] = [];
    for (const value of values) {
      const parsed = metricsDocumentSchema.safeParse(value);
      if (parsed.success) docs.push(parsed.data);
      else bad += 1;
    }
    this.unreadableLines = bad;
    this.addDocuments(docs);
    const kept = [...this.windows.values()].flatMap((w) => w.docs);
    if (!options.readOnly && (kept.length !== docs.length || bad > 0)) {
      rewriteFile(path, kept.map((d) => `${JSON.stringify(d)}\n`).join(''));
    }
    this.file = new AppendFile(path, { lines: true, readOnly: options.readOnly ?? false });
  }

  /**
   * Adds shard documents (redeliveries dropped) and returns the merged windows they touched.
   * Persisting is {@link add}'s job; this only updates memory.
   */
  private addDocuments(docs: readonly MetricsDocument[]): {
    added: MetricsDocument[];
    touched: WindowView[];
    duplicates: number;
  } {
    const added: MetricsDocument[] = [];
    const touched = new Set<string>();
    let duplicates = 0;
    for (const doc of docs) {
      if (this.documentIds.has(doc.id)) {
        duplicates += 1;
        continue;
      }
      const start = Date.parse(doc.window.start);
      const end = Date.parse(doc.window.end);
      if (!Number.isFinite(start) || !Number.isFinite(end)) continue;
      const key = `${doc.window.start}/${doc.window.end}`;
      const window = this.windows.get(key);
      const group = [...(window?.docs ?? []), doc];
      let merged: MetricsDocument;
      try {
        merged = mergeMetrics(group);
      } catch {
        this.conflicts += 1;
        continue;
      }
      this.documentIds.add(doc.id);
      this.windows.set(key, { docs: group, merged: view(merged), start, end });
      this.newestEnd = Math.max(this.newestEnd, end);
      added.push(doc);
      touched.add(key);
    }
    this.forgetOld();
    const views = [...touched].flatMap((key) => {
      const w = this.windows.get(key);
      return w ? [w.merged] : [];
    });
    return { added, touched: views, duplicates };
  }

  private forgetOld(): void {
    const horizon = this.newestEnd - METRICS_HISTORY_MS;
    for (const [key, window] of this.windows) {
      if (window.end < horizon) {
        this.windows.delete(key);
        for (const doc of window.docs) this.documentIds.delete(doc.id);
      }
    }
  }

  /** Stores a batch of shard documents (one append) and returns the merged windows touched. */
  add(docs: readonly MetricsDocument[]): { touched: WindowView[]; duplicates: number } {
    const { added, touched, duplicates } = this.addDocuments(docs);
    if (added.length > 0) this.file.append(added.map((d) => `${JSON.stringify(d)}\n`).join(''));
    return { touched, duplicates };
  }

  /**
   * Merged windows, oldest first. `camera` keeps the windows that saw it, with only its
   * `camera_metrics`; `since` keeps windows ending after it (epoch ms).
   */
  list(filter: { camera?: string; since?: number } = {}): WindowView[] {
    const out: WindowView[] = [];
    for (const window of this.windows.values()) {
      if (filter.since !== undefined && window.end <= filter.since) continue;
      if (filter.camera !== undefined) {
        const metrics = window.merged.camera_metrics[filter.camera];
        if (!metrics) continue;
        out.push({ ...window.merged, camera_metrics: { [filter.camera]: metrics } });
      } else {
        out.push(window.merged);
      }
    }
    return out.sort((a, b) => Date.parse(a.window.start) - Date.parse(b.window.start));
  }

  get size(): number {
    return this.windows.size;
  }

  close(): void {
    this.file.close();
  }
}
