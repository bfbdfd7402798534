/**
 * What a stream held before this run: its record count and, per shard, the last sequence
 * number. Read once at start-up, before anything is published, so that the summary of a run
 * against a shared endpoint can tell this run's frames from those of earlier runs (a frame's
 * id is `<shard id>-<sequence number>`, and sequence numbers only grow within a shard).
 */
import { GetShardIteratorCommand, type KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { compareSequenceNumbers } from '../functions/lib/metrics/reducer';
import { getRecordsRaw } from './runner/get-records-raw';

export interface EarlierRecords {
  stream: string;
  /** Records the stream held (every shard, from the oldest). */
  records: number;
  /** Last sequence number per shard id; shards that were empty are absent. */
  lastSequence: ReadonlyMap<string, string>;
}

/**
 * Reads `stream` from the oldest record to the newest, counting (the data stays base64, never
 * decoded). Against AWS this reads the stream's whole retention once, within the usual
 * GetRecords limits.
 */
export async function scanEarlierRecords(client: KinesisClient, stream: string): Promise<EarlierRecords> {
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  const lastSequence = new Map<string, string>();
  let records = 0;
  for (const shard of shards) {
    if (!shard.ShardId) continue;
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await getRecordsRaw(client, { ShardIterator: iterator, Limit: 10_000 });
      const last = page.Records.at(-1);
      // An empty page ends the shard unless Kinesis says records lie further on (a gap).
      if (!last && !page.MillisBehindLatest) break;
      if (last) {
        records += page.Records.length;
        lastSequence.set(shard.ShardId, last.SequenceNumber);
      }
      iterator = page.NextShardIterator;
    }
  }
  return { stream, records, lastSequence };
}

/** Splits a frame id into its shard id and sequence number (the shard id holds dashes). */
export function parseFrameId(frameId: string): { shardId: string; sequenceNumber: string } | undefined {
  const dash = frameId.lastIndexOf('-');
  if (dash <= 0 || dash === frameId.length - 1) return undefined;
  return { shardId: frameId.slice(0, dash), sequenceNumber: frameId.slice(dash + 1) };
}

/** True when the frame was in the stream before the scan (at or before its shard's last record then). */
export function isEarlierFrame(earlier: EarlierRecords, frameId: string): boolean {
  const parsed = parseFrameId(frameId);
  if (!parsed) return false;
  const last = earlier.lastSequence.get(parsed.shardId);
  return last !== undefined && compareSequenceNumbers(parsed.sequenceNumber, last) <= 0;
}
