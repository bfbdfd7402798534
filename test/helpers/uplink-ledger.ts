/**
 * What the edge kept and what arrived home, for the uplink tests: ids per output, duplicates,
 * and order per camera (partition key).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { streamReader } from './stream-reader';

export interface HomeRecord {
  partitionKey: string;
  body: { frame_id?: string; id?: string; window?: { start: string } };
}

/** Every record of a home stream, in stream order. */
export async function readHome(endpoint: string, stream: string): Promise<HomeRecord[]> {
  const client = createKinesisClient({ endpoint });
  try {
    return (await streamReader(client).readAll(stream)).map((r) => ({
      partitionKey: r.partitionKey,
      body: JSON.parse(r.data.toString('utf8')) as HomeRecord['body'],
    }));
  } finally {
    client.destroy();
  }
}

export const idOf = (r: HomeRecord): string => r.body.frame_id ?? r.body.id ?? '';

/** First arrival of each id, in arrival order, and how many arrived again. */
export function firstArrivals(records: HomeRecord[]): { records: HomeRecord[]; duplicates: number } {
  const seen = new Set<string>();
  const first: HomeRecord[] = [];
  for (const r of records) {
    if (seen.has(idOf(r))) continue;
    seen.add(idOf(r));
    first.push(r);
  }
  return { records: first, duplicates: records.length - first.length };
}

/** Input sequence number of a frame id (`<shard id>-<sequence number>`). */
export const frameSequence = (frameId: string): bigint => BigInt(frameId.slice(frameId.lastIndexOf('-') + 1));

/** Pairs of consecutive records of one partition key whose rank goes down. */
export function outOfOrder(records: HomeRecord[], rank: (r: HomeRecord) => bigint): string[] {
  const last = new Map<string, { rank: bigint; id: string }>();
  const problems: string[] = [];
  for (const r of records) {
    const current = rank(r);
    const previous = last.get(r.partitionKey);
    if (previous && current < previous.rank) problems.push(`${r.partitionKey}: ${idOf(r)} after ${previous.id}`);
    last.set(r.partitionKey, { rank: current, id: idOf(r) });
  }
  return problems;
}

const jsonLines = (file: string): Array<Record<string, unknown>> =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

/** The ids the edge's own outputs hold (each output de-duplicated by the edge). */
export function edgeIds(out: string): { uncertain: string[]; rejected: string[]; metrics: string[] } {
  const dir = join(out, 'uncertain');
  const uncertain = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { frame_id: string }).frame_id)
    : [];
  return {
    uncertain,
    rejected: jsonLines(join(out, 'rejected.jsonl')).map((r) => r.frame_id as string),
    metrics: jsonLines(join(out, 'metrics.jsonl')).map((r) => r.id as string),
  };
}

/** The uplink status file the edge writes, or undefined before the first write. */
export function uplinkStatus(out: string):
  | {
      link: string;
      backlog: { records: number };
      streams: Record<string, { records: number; sent_records: number; dropped: Record<string, number> }>;
    }
  | undefined {
  try {
    return JSON.parse(readFileSync(join(out, 'uplink.json'), 'utf8')) as ReturnType<typeof uplinkStatus>;
  } catch {
    return undefined;
  }
}

export const sorted = (ids: string[]): string[] => [...ids].sort();

/** The edge's summary.json, as far as the uplink tests read it. */
export interface EdgeSummary {
  unaccounted: number;
  uplink: { backlog: { records: number }; streams: Record<string, { dropped: Record<string, number> }> };
}

export const edgeSummary = (out: string): EdgeSummary =>
  JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as EdgeSummary;
