/**
 * A {@link RecordSink} over Stream Manager: each record is appended to the local stream of the
 * same name. Stream Manager keeps no partition key (its Kinesis export chooses one), so the
 * key is not written; the data is, byte for byte, and is what the export sends home.
 */
import type { OutputRecord, RecordSink, WriteResult } from '../../functions/lib/stream-writer';
import { backoffDelayMs, sleep } from '../../functions/lib/retry';
import { type StreamManagerClientLike, streamManagerSdk } from './stream-manager';

export interface StreamManagerSinkOptions {
  /** Attempts per record, the first included (default 3). */
  maxAttempts?: number;
  /** Wait before attempt n is a random time below baseDelayMs * 2^(n-2) (default 50), at most maxDelayMs. */
  baseDelayMs?: number;
  /** Cap on a single wait (default 2000 ms, as the stream writer's). */
  maxDelayMs?: number;
}

export class StreamManagerRecordSink implements RecordSink {
  constructor(
    private readonly client: StreamManagerClientLike,
    private readonly options: StreamManagerSinkOptions = {},
  ) {}

  /** Appends in order; resolves with the indexes that could not be appended (never rejects for them). */
  async put(stream: string, records: readonly OutputRecord[]): Promise<WriteResult> {
    const failedIndexes: number[] = [];
    const errors = new Map<number, string>();
    let retriedEntries = 0;
    const maxAttempts = this.options.maxAttempts ?? 3;
    for (const [index, record] of records.entries()) {
      for (let attempt = 1; ; attempt += 1) {
        try {
          await this.client.appendMessage(
            stream,
            Buffer.from(record.data.buffer, record.data.byteOffset, record.data.byteLength),
          );
          break;
        } catch (error: unknown) {
          const sdk = streamManagerSdk();
          const permanent = error instanceof sdk.ResourceNotFoundException || error instanceof sdk.InvalidRequestException;
          const code = error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
          // A missing stream or a refused request (e.g. full with RejectNewData) does not get better with retries.
          if (attempt >= maxAttempts || permanent) {
            failedIndexes.push(index);
            errors.set(index, code);
            break;
          }
          retriedEntries += 1;
          await sleep(
            backoffDelayMs(attempt, { baseMs: this.options.baseDelayMs ?? 50, maxMs: this.options.maxDelayMs ?? 2000 }),
          );
        }
      }
    }
    return { failedIndexes, ...(errors.size > 0 ? { errors } : {}), retriedEntries };
  }
}
