/**
 * Combines the per-shard metrics documents of one window into one document. Kinesis
 * tumbling windows are per shard, so a stream with several shards sends several documents
 * per window: every reader (the local table, the metrics tail, home-side consumers) merges
 * them with this one function.
 */
import { accumulatorFromDocument, buildMetricsDocument, type MetricsDocument } from './document';
import { WindowAccumulator } from './reducer';

/** The documents cannot be merged without counting some frames twice, or there are none. */
export class MetricsMergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetricsMergeError';
  }
}

function partsKey(doc: MetricsDocument): string {
  return [...doc.parts].sort().join('\n');
}

function byTime(a: string, b: string): number {
  return Date.parse(a) - Date.parse(b);
}

/**
 * Merges metrics documents as if their frames had been aggregated together: counts add up,
 * histograms merge bucket by bucket (so percentiles equal those of a single aggregation),
 * min/max/mean/std combine exactly. The window spans the earliest start to the latest end
 * and throughput is the total count over that span; `shard` lists the shards, `parts` the
 * shard document ids, `config` is the first document's.
 *
 * A document delivered twice (same `parts`, e.g. a retried write) counts once. Throws
 * {@link MetricsMergeError} for an empty list or for documents that share some but not all
 * parts, which no duplicate delivery can produce and which would double count.
 */
export function mergeMetrics(docs: MetricsDocument[]): MetricsDocument {
  const unique = new Map<string, MetricsDocument>();
  for (const doc of docs) if (!unique.has(partsKey(doc))) unique.set(partsKey(doc), doc);
  const distinct = [...unique.values()];
  const first = distinct[0];
  if (!first) throw new MetricsMergeError('no metrics documents to merge');
  if (distinct.length === 1) return first;

  const owner = new Map<string, string>();
  for (const doc of distinct) {
    for (const part of doc.parts) {
      const seen = owner.get(part);
      if (seen !== undefined) {
        throw new MetricsMergeError(`shard document ${part} is part of two different merged documents (${seen}, ${doc.id})`);
      }
      owner.set(part, doc.id);
    }
  }

  const merged = new WindowAccumulator(first.config.confidence);
  for (const doc of distinct) merged.merge(accumulatorFromDocument(doc));
  const starts = distinct.map((d) => d.window.start).sort(byTime);
  const ends = distinct.map((d) => d.window.end).sort(byTime);
  const timestamps = distinct.map((d) => d.timestamp).sort(byTime);
  const shards = [...new Set(distinct.flatMap((d) => d.shard.split(',')))].sort();
  const parts = [...owner.keys()].sort();
  return buildMetricsDocument(merged, {
    id: parts.join('+'),
    parts,
    window: { start: starts[0] ?? first.window.start, end: ends.at(-1) ?? first.window.end },
    shard: shards.join(','),
    terminatedEarly: distinct.some((d) => d.terminated_early),
    config: first.config,
    timestamp: timestamps.at(-1) ?? first.timestamp,
  });
}

/**
 * Groups documents by window (`start`/`end`) and merges each group, oldest window first:
 * what a reader of the `metrics` stream shows.
 */
export function mergeByWindow(docs: MetricsDocument[]): MetricsDocument[] {
  const groups = new Map<string, MetricsDocument[]>();
  for (const doc of docs) {
    const key = `${doc.window.start}/${doc.window.end}`;
    const group = groups.get(key) ?? [];
    group.push(doc);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => mergeMetrics(group)).sort((a, b) => byTime(a.window.start, b.window.start));
}
