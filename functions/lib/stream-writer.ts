/**
 * Writing records to streams: every handler and the camera source go through a
 * {@link RecordSink}. The Kinesis implementation batches PutRecords calls and retries exactly
 * the entries a call reports as failed, because PutRecords can "succeed" while dropping some
 * entries (`FailedRecordCount`), and a writer that ignores them loses data silently.
 */
import { type KinesisClient, PutRecordsCommand, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import type { Config } from './config';
import { createKinesisClient } from './kinesis';
import { KINESIS_LIMITS } from './kinesis-records';
import { backoffDelayMs, sleep } from './retry';

/** One record to write. `data` is sent as is (our records are UTF-8 JSON). */
export interface OutputRecord {
  partitionKey: string;
  data: Uint8Array;
}

/** What became of a `put`: indexes refer to the `records` array passed in. */
export interface WriteResult {
  /** Input indexes still unwritten after the retry bound, ascending. Empty when all landed. */
  failedIndexes: number[];
  /** Last error code seen per failed index (e.g. `ProvisionedThroughputExceededException`). */
  errors?: Map<number, string>;
  /** How many entries were sent again after a failure (0 when every entry landed first time). */
  retriedEntries?: number;
}

export interface RecordSink {
  /**
   * Writes records to a stream. Resolves with the indexes that could not be written (the
   * caller fails the inputs they came from so they are retried); rejects only on a bug or a
   * misuse, never because some entries failed.
   */
  put(stream: string, records: readonly OutputRecord[]): Promise<WriteResult>;
}

/**
 * Call-level errors that no retry can fix: the stream is missing, the request is malformed or
 * access is denied. Retrying them only delays the failure report.
 */
const PERMANENT_ERRORS = new Set([
  'ResourceNotFoundException',
  'ValidationException',
  'InvalidArgumentException',
  'AccessDeniedException',
  'KMSAccessDeniedException',
  'KMSDisabledException',
  'KMSNotFoundException',
  'KMSInvalidStateException',
  'UnrecognizedClientException',
]);

export interface KinesisStreamWriterOptions {
  /** Attempts per entry, the first included (default 5). */
  maxAttempts?: number;
  /** Backoff base: attempt n waits a random time in [0, baseDelayMs * 2^(n-1)] (default 50). */
  baseDelayMs?: number;
  /** Cap on a single backoff wait (default 2000 ms). */
  maxDelayMs?: number;
  /** PutRecords calls in flight at once for one `put` (default 4). */
  concurrency?: number;
  /** Source of jitter in [0, 1); injectable so tests can pin it. */
  random?: () => number;
}

/** Bytes a record counts for against Kinesis' limits: its data plus its partition key. */
export function recordBytes(record: OutputRecord): number {
  return record.data.byteLength + Buffer.byteLength(record.partitionKey, 'utf8');
}

/**
 * Splits input indexes into PutRecords-sized chunks (<= 500 entries, <= 5 MiB), keeping input
 * order so records of one partition key stay in order when nothing fails.
 */
export function chunkIndexes(records: readonly OutputRecord[], indexes: readonly number[]): number[][] {
  const chunks: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const index of indexes) {
    const size = recordBytes(records[index] as OutputRecord);
    if (
      current.length === KINESIS_LIMITS.maxRecordsPerCall ||
      (current.length > 0 && bytes + size > KINESIS_LIMITS.maxBytesPerCall)
    ) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function errorName(error: unknown): string {
  if (error instanceof Error) return error.name || 'Error';
  return 'UnknownError';
}

/** Writes to Kinesis (AWS or an emulator) with PutRecords, retrying failed entries. */
export class KinesisStreamWriter implements RecordSink {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly concurrency: number;
  private readonly random: () => number;

  constructor(
    private readonly client: KinesisClient,
    options: KinesisStreamWriterOptions = {},
  ) {
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.baseDelayMs = Math.max(0, options.baseDelayMs ?? 50);
    this.maxDelayMs = Math.max(0, options.maxDelayMs ?? 2000);
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.random = options.random ?? Math.random;
  }

  /**
   * Writes `records` to `stream` in as few PutRecords calls as the limits allow, running up
   * to `concurrency` calls at once. Entries a call reports as failed, and all entries of a
   * call that throws a transient error, are sent again (only those) after an exponential
   * backoff with full jitter, up to `maxAttempts` sends per entry. A record over Kinesis'
   * per-record limits is never sent (it would fail the whole call) and is reported failed
   * with `RecordTooLarge` or `InvalidPartitionKey`.
   */
  async put(stream: string, records: readonly OutputRecord[]): Promise<WriteResult> {
    const errors = new Map<number, string>();
    const sendable: number[] = [];
    records.forEach((record, index) => {
      const keyLength = record.partitionKey.length;
      if (keyLength < 1 || keyLength > KINESIS_LIMITS.maxPartitionKeyLength) {
        errors.set(index, 'InvalidPartitionKey');
      } else if (recordBytes(record) > KINESIS_LIMITS.maxRecordBytes) {
        errors.set(index, 'RecordTooLarge');
      } else {
        sendable.push(index);
      }
    });
    const counters = { retried: 0 };
    const queue = chunkIndexes(records, sendable);
    const worker = async (): Promise<void> => {
      for (let chunk = queue.shift(); chunk; chunk = queue.shift()) {
        await this.sendChunk(stream, records, chunk, errors, counters);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, queue.length) }, worker));
    const failedIndexes = [...errors.keys()].sort((a, b) => a - b);
    return { failedIndexes, errors, retriedEntries: counters.retried };
  }

  /** Sends one chunk, then its failed entries again, until all land or the bound is reached. */
  private async sendChunk(
    stream: string,
    records: readonly OutputRecord[],
    chunk: number[],
    errors: Map<number, string>,
    counters: { retried: number },
  ): Promise<void> {
    let pending = chunk;
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) counters.retried += pending.length;
      const entries: PutRecordsRequestEntry[] = pending.map((index) => {
        const record = records[index] as OutputRecord;
        return { PartitionKey: record.partitionKey, Data: record.data };
      });
      let stillFailing: number[];
      try {
        const response = await this.client.send(new PutRecordsCommand({ StreamName: stream, Records: entries }));
        const results = response.Records ?? [];
        stillFailing = [];
        pending.forEach((index, position) => {
          const result = results[position];
          if (result && !result.ErrorCode && result.SequenceNumber) {
            errors.delete(index);
          } else {
            stillFailing.push(index);
            errors.set(index, result?.ErrorCode ?? 'MissingResult');
          }
        });
      } catch (error: unknown) {
        const name = errorName(error);
        for (const index of pending) errors.set(index, name);
        if (PERMANENT_ERRORS.has(name)) return;
        stillFailing = pending;
      }
      pending = stillFailing;
      if (pending.length === 0 || attempt >= this.maxAttempts) return;
      await sleep(backoffDelayMs(attempt, { baseMs: this.baseDelayMs, maxMs: this.maxDelayMs }, this.random));
    }
  }
}

/**
 * Prints each record as one JSON line (`{"stream", "partitionKey", "record"}`) instead of
 * writing it: what `sls invoke local` shows when no Kinesis endpoint is configured. Records
 * that are not JSON are printed as base64 under `data`.
 */
export class ConsoleSink implements RecordSink {
  constructor(private readonly writeLine: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  async put(stream: string, records: readonly OutputRecord[]): Promise<WriteResult> {
    const decoder = new TextDecoder();
    for (const record of records) {
      const text = decoder.decode(record.data);
      let body: string;
      try {
        JSON.parse(text);
        body = `"record":${text}`;
      } catch {
        body = `"data":${JSON.stringify(Buffer.from(record.data).toString('base64'))}`;
      }
      this.writeLine(`{"stream":${JSON.stringify(stream)},"partitionKey":${JSON.stringify(record.partitionKey)},${body}}`);
    }
    return { failedIndexes: [] };
  }
}

/** A sink supplied by the process hosting the handlers (see {@link useHostSink}). */
let hostSink: RecordSink | undefined;

/**
 * Lets a process that hosts the handlers outside Lambda (the Greengrass component, over Stream
 * Manager) give them the sink to write to. Call before the handler modules load: they take
 * their sink from {@link sinkFromConfig} once, at cold start. `undefined` removes it.
 */
export function useHostSink(sink: RecordSink | undefined): void {
  hostSink = sink;
}

/** A Kinesis client supplied by the process hosting the handlers (see {@link useHostKinesisClient}). */
let hostClient: KinesisClient | undefined;

/**
 * Lets a process that hosts the handlers next to its own Kinesis store (the local pipeline with
 * its embedded emulator) give their stream writer the client to write with: the writer, its
 * batching and its retries stay exactly as on AWS, only the transport differs. Call before the
 * handler modules load. `undefined` removes it.
 */
export function useHostKinesisClient(client: KinesisClient | undefined): void {
  hostClient = client;
}

/**
 * The sink a handler should use: the host's sink when one was supplied ({@link useHostSink}), a {@link ConsoleSink} under `sls invoke local` (IS_LOCAL) with
 * no KINESIS_ENDPOINT, otherwise a {@link KinesisStreamWriter} on the host's client
 * ({@link useHostKinesisClient}), the configured endpoint (an emulator) or AWS. Pass `client`
 * to reuse an existing Kinesis client.
 */
export function sinkFromConfig(
  config: Pick<Config, 'kinesisEndpoint' | 'isLocal' | 'region' | 'writeMaxAttempts' | 'writeBaseDelayMs'>,
  client?: KinesisClient,
): RecordSink {
  if (hostSink) return hostSink;
  const chosen = client ?? hostClient;
  if (config.isLocal && !config.kinesisEndpoint && !chosen) return new ConsoleSink();
  return new KinesisStreamWriter(chosen ?? createKinesisClient({ endpoint: config.kinesisEndpoint, region: config.region }), {
    maxAttempts: config.writeMaxAttempts,
    baseDelayMs: config.writeBaseDelayMs,
  });
}
