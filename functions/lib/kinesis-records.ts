/**
 * Facts about Kinesis records that every reader and writer shares: the service's limits and
 * where an event record's shard id comes from.
 */

/** Kinesis limits for PutRecords (AWS documentation, enforced by kinesalite too). */
export const KINESIS_LIMITS = {
  /** Entries per PutRecords call. */
  maxRecordsPerCall: 500,
  /** Bytes per PutRecords call, counting data and partition keys. */
  maxBytesPerCall: 5 * 1024 * 1024,
  /** Bytes per record, data plus partition key: no larger record can arrive on a stream. */
  maxRecordBytes: 1024 * 1024,
  /** Partition key length in Unicode characters. */
  maxPartitionKeyLength: 256,
} as const;

/** The shard id used when an event record's `eventID` carries none (never on Lambda). */
export const UNKNOWN_SHARD_ID = 'shardId-unknown';

/**
 * The shard an event record was read from: the part of its `eventID`
 * (`shardId-000000000000:4954...`) before the colon, or {@link UNKNOWN_SHARD_ID}.
 */
export function shardIdOf(eventID: string): string {
  const colon = eventID.indexOf(':');
  return colon > 0 ? eventID.slice(0, colon) : UNKNOWN_SHARD_ID;
}
