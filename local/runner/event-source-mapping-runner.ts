/**
 * A local event source mapping for Kinesis: it polls each shard and invokes a handler in
 * process with the same contract Lambda gives it, so a handler cannot tell the difference.
 *
 * Semantics (Lambda's, as documented for Kinesis event source mappings):
 * - Batches of up to `batchSize` records (and at most 6 MB of payload), gathered for up to
 *   `batchWindowSeconds` when fewer are available; events shaped as `KinesisStreamEvent`.
 * - Partial batch responses (`ReportBatchItemFailures`): the records before the lowest failed
 *   sequence number are checkpointed and the rest is retried; an empty, null or unknown
 *   `itemIdentifier` fails the whole batch.
 * - A thrown error, a timeout or a malformed response fails the batch: with
 *   `bisectBatchOnFunctionError` it is split in two and each half retried (a split does not
 *   count against the retry quota); otherwise it is retried whole.
 * - After `maximumRetryAttempts` retries (-1 = forever), or for records older than
 *   `maximumRecordAgeInSeconds` (-1 = no limit), the batch's metadata goes to the on-failure
 *   destination (here: a JSON Lines file and an in-memory queue) and the shard moves on.
 * - Tumbling windows (`tumblingWindowInSeconds`): windows aligned on the records' arrival time,
 *   per shard; `state` carried from one invocation to the next; a final invocation with
 *   `isFinalInvokeForWindow` once the window has ended; `isWindowTerminatedEarly` when the
 *   state outgrows 1 MB or the runner closes windows before their end; a response without
 *   `state` is a failed invocation.
 * - `parallelizationFactor` > 1 spreads a shard's records over that many concurrent lanes by
 *   partition key (order kept per key); the checkpoint only advances over finished records.
 * - Checkpoints are in memory, optionally persisted to a file so a restart resumes after the
 *   last finished record (at-least-once: a record whose batch was in flight is delivered again).
 * - When the endpoint goes away the runner keeps its checkpoints and buffered records, backs off,
 *   reconnects and resumes; invocations that failed while the endpoint was unreachable are
 *   retried without counting against the retry quota.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  DescribeStreamSummaryCommand,
  ExpiredIteratorException,
  GetShardIteratorCommand,
  InvalidArgumentException,
  type KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
  type Shard,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { getRecordsRaw, type RawRecord } from './get-records-raw';
import type { Context, KinesisStreamRecord } from 'aws-lambda';
import { createLambdaContext, LOCAL_ACCOUNT_ID } from './lambda-context';
import type { StreamMapping } from './mappings';
import { previousCopyPath, readStateFile, type StateFileRead, writeStateFile } from '../state-file';
import { z } from 'zod';

/** Largest synchronous invocation payload Lambda accepts. */
export const MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Window state cap per shard; past it the window ends early. */
export const MAX_WINDOW_STATE_BYTES = 1024 * 1024;
/** Bytes one GetRecords call aims to return (Kinesis caps a response at 10 MB). */
const GET_RECORDS_TARGET_BYTES = 8 * 1024 * 1024;
/** JSON envelope of one event record besides its data (ids, ARNs): a generous estimate. */
const RECORD_OVERHEAD_BYTES = 600;

/** What an in-process handler looks like: any Lambda handler for Kinesis events. */
export type StreamHandler = (event: never, context: Context, callback: never) => unknown;

/** The mapping settings the runner needs (a {@link StreamMapping} carries them all). */
export type RunnerMapping = Pick<
  StreamMapping,
  | 'functionName'
  | 'stream'
  | 'batchSize'
  | 'batchWindowSeconds'
  | 'startingPosition'
  | 'parallelizationFactor'
  | 'reportBatchItemFailures'
  | 'bisectBatchOnFunctionError'
  | 'maximumRetryAttempts'
  | 'maximumRecordAgeInSeconds'
  | 'tumblingWindowInSeconds'
  | 'onFailure'
  | 'timeoutSeconds'
> &
  Partial<Pick<StreamMapping, 'startingPositionTimestamp' | 'memorySize'>>;

/** The on-failure record, as Lambda sends it to an SQS/SNS destination for a Kinesis source. */
export interface DeadLetterRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
    approximateInvokeCount: number;
  };
  responseContext: { statusCode: number; executedVersion: string; functionError?: string };
  version: '1.0';
  timestamp: string;
  KinesisBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
    batchSize: number;
    streamArn: string;
  };
  /** Local additions: where it would go on AWS, why the last attempt failed, the window. */
  destinationArn?: string;
  errorMessage?: string;
  window?: { start: string; end: string };
  /** Local addition: the records themselves, so nothing is lost when the emulator is in memory. */
  records: Array<{ sequenceNumber: string; partitionKey: string; data: string }>;
}

export interface RunnerLogger {
  debug(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
}

/** Invocation outcome, for progress displays and tests. */
export interface InvocationReport {
  functionName: string;
  shardId: string;
  records: number;
  outcome: 'success' | 'partial' | 'error';
  /** Wall time of the handler call. */
  durationMs: number;
  error?: string;
  window?: { start: string; end: string; final: boolean; early: boolean };
}

export interface RunnerOptions {
  client: KinesisClient;
  /** Prepended to each mapping's base stream name ('' locally). */
  streamPrefix?: string;
  region?: string;
  /** Persist checkpoints (and window state) here; unset keeps them in memory. */
  checkpointFile?: string;
  /** Append on-failure records here as JSON Lines; they are also kept in `deadLetters`. */
  deadLetterFile?: string;
  /** First retry delay; doubles per attempt up to 2 s. Default 100 ms. */
  retryBaseDelayMs?: number;
  /** Longest sleep between polls of an idle shard. Default 200 ms. */
  maxIdlePollMs?: number;
  /** Records buffered per shard ahead of the handler. Default max(10,000, 2 x batch size). */
  maxBufferedRecords?: number;
  logger?: RunnerLogger;
  onInvocation?: (report: InvocationReport) => void;
  /**
   * Where a consumer with no checkpoint starts: the mapping's `startingPosition` (default);
   * `run-start`, this run's start (`LATEST`, resolved before {@link EventSourceMappingRunner.start}
   * resolves, so nothing put after it is missed, and saved with the checkpoints as an
   * `AT_TIMESTAMP` so a restart before the first finished record resumes there); or
   * `trim-horizon`, the oldest record.
   */
  firstPosition?: 'mapping' | 'run-start' | 'trim-horizon';
}

const quietLogger: RunnerLogger = {
  debug: () => undefined,
  warn: (message, context) => process.stderr.write(`runner: ${message} ${context ? JSON.stringify(context) : ''}\n`),
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Network-level failures (the endpoint is not there), as opposed to API errors. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|ECONNABORTED)$/.test(code)
  ) {
    return true;
  }
  return error.name === 'TimeoutError' || /socket hang up|ECONNREFUSED|ECONNRESET/.test(error.message);
}

/** A wake-up signal: `wait` resolves on `notify` or after a timeout, whichever comes first. */
class Signal {
  private waiters: Array<() => void> = [];
  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.waiters = self.waiters.filter((w) => w !== done);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}

/** A FIFO over an array with a moving head, compacted now and then (no O(n) shifts). */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(offset = 0): T | undefined {
    return this.items[this.head + offset];
  }
  shift(): T | undefined {
    const item = this.items[this.head];
    if (item === undefined) return undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

interface Entry {
  seq: string;
  arrivalMs: number;
  fetchedAt: number;
  partitionKey: string;
  data: string;
  record: KinesisStreamRecord;
  bytes: number;
  done: boolean;
  /** Start of the tumbling window (ms) this record belongs to; 0 without windows. */
  windowStart: number;
}

type WindowState = Record<string, unknown>;

interface OpenWindow {
  start: number;
  end: number;
  state: WindowState;
}

/** Where one consumer (a mapping on one shard) stands. */
export interface ConsumerPosition {
  functionName: string;
  stream: string;
  shardId: string;
  /** The last record finished (the checkpoint); undefined until the first one is. */
  sequenceNumber: string | undefined;
}

/** One checkpoint: the last finished record of a shard (and, for windows, the open window). */
export interface CheckpointEntry {
  /** The last finished record; absent while only the run's starting point is known. */
  sequenceNumber?: string;
  /**
   * Where a consumer with no finished record yet starts reading (ms since the epoch,
   * `AT_TIMESTAMP`): the start of the run that first read the shard, saved before anything was
   * published, so a run that stops before finishing a record resumes there and not at the
   * oldest record.
   */
  startTimestampMs?: number;
  window?: { start: number; end: number; state: WindowState };
}

const checkpointFileSchema = z.record(
  z.string(),
  z.object({
    sequenceNumber: z.string().optional(),
    startTimestampMs: z.number().optional(),
    window: z.object({ start: z.number(), end: z.number(), state: z.record(z.string(), z.unknown()) }).optional(),
  }),
);

/** Time between writes of a changed checkpoint file; `flush` writes at once. */
export const CHECKPOINT_WRITE_INTERVAL_MS = 200;

/**
 * Where each shard's consumer stands. In memory; with a file it is written crash-consistently
 * (local/state-file.ts: at most every {@link CHECKPOINT_WRITE_INTERVAL_MS} and at stop) so a
 * restarted runner resumes after the last finished record. A damaged file is reported and its
 * previous copy used; with no readable copy the constructor throws {@link StateFileError}.
 */
export class CheckpointStore {
  private readonly entries = new Map<string, CheckpointEntry>();
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  /** Which copy of the file was loaded, and what was wrong with the others. */
  readonly loaded: StateFileRead<unknown>['source'];

  constructor(
    private readonly file?: string,
    onProblem: (message: string, context: Record<string, unknown>) => void = () => undefined,
  ) {
    if (!file) {
      this.loaded = 'none';
      return;
    }
    const read = readStateFile(file, checkpointFileSchema);
    this.loaded = read.source;
    if (read.problems.length > 0) {
      onProblem('checkpoint file damaged, resuming from its last good copy', {
        problems: read.problems,
        using: previousCopyPath(file),
      });
    }
    for (const [key, value] of Object.entries(read.value ?? {})) this.entries.set(key, value as CheckpointEntry);
  }

  get(key: string): CheckpointEntry | undefined {
    return this.entries.get(key);
  }

  /** Every entry, by consumer key (`function|stream|shard`). */
  all(): ReadonlyMap<string, CheckpointEntry> {
    return this.entries;
  }

  /** Forgets every entry (the next write replaces the file). */
  clear(): void {
    this.entries.clear();
    this.markDirty();
  }

  set(key: string, entry: CheckpointEntry): void {
    this.entries.set(key, entry);
    this.markDirty();
  }

  private markDirty(): void {
    if (!this.file) return;
    this.dirty = true;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, CHECKPOINT_WRITE_INTERVAL_MS);
  }

  /** Writes pending changes now, durably (a no-op in memory). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.file || !this.dirty) return;
    this.dirty = false;
    writeStateFile(this.file, Object.fromEntries(this.entries));
  }
}

type Outcome =
  | { kind: 'success'; state?: WindowState }
  | { kind: 'partial'; failedIndex: number; state?: WindowState }
  | { kind: 'error'; message: string };

/** Work item of a lane: a contiguous slice of records and how often it has been retried. */
interface Attempt {
  entries: Entry[];
  retries: number;
}

/**
 * Runs event source mappings against Kinesis (an emulator or AWS): add mappings with their
 * handlers, `start`, and `stop` when done.
 */
export class EventSourceMappingRunner {
  /** On-failure records, in the order they were sent. */
  readonly deadLetters: DeadLetterRecord[] = [];
  readonly checkpoints: CheckpointStore;
  private readonly consumers: ShardConsumer[] = [];
  private readonly pending: Array<{ mapping: RunnerMapping; handler: StreamHandler }> = [];
  private started = false;
  /** Invocations begun so far (all mappings): lets `waitForIdle` see activity. */
  invocations = 0;
  private endpointDown = false;
  private reconnect: Promise<void> | undefined;

  constructor(readonly options: RunnerOptions) {
    this.checkpoints = new CheckpointStore(options.checkpointFile, (message, context) => this.logger.warn(message, context));
  }

  get region(): string {
    return this.options.region ?? process.env.AWS_REGION ?? 'us-east-1';
  }

  get logger(): RunnerLogger {
    return this.options.logger ?? quietLogger;
  }

  streamName(mapping: RunnerMapping): string {
    return `${this.options.streamPrefix ?? ''}${mapping.stream}`;
  }

  /** Registers a mapping; call before `start`. Throws on settings Lambda would refuse. */
  add(mapping: RunnerMapping, handler: StreamHandler): void {
    if (this.started) throw new Error('add mappings before start()');
    if (mapping.tumblingWindowInSeconds > 0 && mapping.parallelizationFactor !== 1) {
      throw new Error(`${mapping.functionName}: tumbling windows need parallelizationFactor 1`);
    }
    if (mapping.batchSize < 1) throw new Error(`${mapping.functionName}: batchSize must be >= 1`);
    this.pending.push({ mapping, handler });
  }

  /** Lists each stream's shards and starts one consumer per shard. Rejects if a stream is missing. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const { mapping, handler } of this.pending) {
      const stream = this.streamName(mapping);
      const shards = await this.listShards(stream);
      for (const shard of shards) {
        if (!shard.ShardId) continue;
        this.consumers.push(new ShardConsumer(this, mapping, handler, stream, shard.ShardId));
      }
    }
    if (this.options.firstPosition === 'run-start') {
      const runStartMs = Date.now();
      await Promise.all(this.consumers.map((consumer) => consumer.startAtRunStart(runStartMs)));
      // On disk before anything is published, so a crash before the first finished record
      // resumes at this run's start.
      this.checkpoints.flush();
    }
    for (const consumer of this.consumers) consumer.start();
  }

  private async listShards(stream: string): Promise<Shard[]> {
    const shards: Shard[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.options.client.send(
        new ListShardsCommand(nextToken ? { NextToken: nextToken } : { StreamName: stream }),
      );
      shards.push(...(page.Shards ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
    return shards;
  }

  /**
   * Resolves once every consumer has finished all it fetched, nothing is in flight, and a poll
   * begun after the last invocation found nothing new: the pipeline is quiet. Rejects after
   * `timeoutMs`.
   */
  async waitForIdle(timeoutMs = 600_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const mark = Date.now();
      const before = this.invocations;
      while (!this.consumers.every((c) => c.isQuietSince(mark))) {
        if (Date.now() > deadline) throw new Error('the runner did not become idle in time');
        await sleep(10);
      }
      if (this.invocations === before) return;
    }
  }

  /**
   * Ends every open tumbling window now: a final invocation with `isWindowTerminatedEarly`
   * (unless the window had already ended). Call after `waitForIdle` to flush the last window.
   */
  async closeWindows(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.closeWindow()));
  }

  /**
   * Where every consumer started by `start` stands. Each record at or before the lowest
   * position of a shard is finished for every mapping of this runner reading that shard:
   * handled, or sent to the on-failure destination; none of them reads it again, not even after
   * a restart from persisted checkpoints.
   */
  positions(): ConsumerPosition[] {
    return this.consumers.map((c) => c.position());
  }

  /** Stops polling, lets in-flight invocations finish and writes the checkpoints. */
  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    this.checkpoints.flush();
  }

  /** Sends a failed batch's metadata to the on-failure destination. */
  sendToDeadLetter(record: DeadLetterRecord): void {
    this.deadLetters.push(record);
    if (this.options.deadLetterFile) {
      mkdirSync(dirname(this.options.deadLetterFile), { recursive: true });
      appendFileSync(this.options.deadLetterFile, `${JSON.stringify(record)}\n`);
    }
  }

  /** Marks the endpoint unreachable (from any consumer). */
  markDown(error: unknown): void {
    if (!this.endpointDown) {
      this.logger.warn('kinesis endpoint unreachable, retrying with backoff', {
        error: error instanceof Error ? error.message : String(error),
      });
    }
    this.endpointDown = true;
  }

  /**
   * True when the endpoint answers. Used after a failed invocation: a failure while the
   * endpoint is gone is the outage's fault, not the records', and is not counted.
   */
  async probe(stream: string): Promise<boolean> {
    try {
      await this.options.client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      return true;
    } catch (error: unknown) {
      if (isConnectionError(error)) {
        this.markDown(error);
        return false;
      }
      return true;
    }
  }

  /** Waits (with backoff) until the endpoint answers again; shared by all consumers. */
  waitForEndpoint(stream: string, isStopping: () => boolean): Promise<void> {
    this.reconnect ??= (async () => {
      let delay = 100;
      while (!isStopping() && !(await this.probe(stream))) {
        await sleep(delay + Math.random() * delay * 0.2);
        delay = Math.min(delay * 2, 5000);
      }
      if (this.endpointDown) this.logger.warn('kinesis endpoint reachable again', {});
      this.endpointDown = false;
      this.reconnect = undefined;
    })();
    return this.reconnect;
  }
}

/** Polls one shard for one mapping and feeds its lanes. */
class ShardConsumer {
  private readonly key: string;
  private readonly streamArn: string;
  private readonly functionArn: string;
  private readonly lanes: Lane[] = [];
  /** Fetched records not yet checkpointed, in sequence order. */
  private readonly unfinished = new Fifo<Entry>();
  private bufferedBytes = 0;
  /** Running average size of fetched records, sizing the next GetRecords call. */
  private averageRecordBytes = 1024;
  private iterator: string | undefined;
  /** When a LATEST starting position was first resolved (ms). */
  private latestSince: number | undefined;
  private lastFetchedSeq: string | undefined;
  private checkpointSeq: string | undefined;
  /** Where to start without a checkpoint (ms, AT_TIMESTAMP), from the run that first read the shard. */
  private startTimestampMs: number | undefined;
  private shardClosed = false;
  private stopping = false;
  private fetchLoop: Promise<void> | undefined;
  /** Start time of the latest poll that came back empty; 0 until one does. */
  lastEmptyPollStartedAt = 0;
  readonly fetched = new Signal();
  readonly consumed = new Signal();
  readonly maxBuffered: number;
  readonly maxBufferedBytes = 64 * 1024 * 1024;

  constructor(
    readonly runner: EventSourceMappingRunner,
    readonly mapping: RunnerMapping,
    readonly handler: StreamHandler,
    readonly streamName: string,
    readonly shardId: string,
  ) {
    this.key = `${mapping.functionName}|${streamName}|${shardId}`;
    this.streamArn = `arn:aws:kinesis:${runner.region}:${LOCAL_ACCOUNT_ID}:stream/${streamName}`;
    this.functionArn = `arn:aws:lambda:${runner.region}:${LOCAL_ACCOUNT_ID}:function:${mapping.functionName}`;
    this.maxBuffered = runner.options.maxBufferedRecords ?? Math.max(10_000, mapping.batchSize * 2);
    const saved = runner.checkpoints.get(this.key);
    this.checkpointSeq = saved?.sequenceNumber;
    this.startTimestampMs = saved?.startTimestampMs;
    const lanes = mapping.tumblingWindowInSeconds > 0 ? 1 : mapping.parallelizationFactor;
    for (let i = 0; i < lanes; i += 1) this.lanes.push(new Lane(this, saved?.window));
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /**
   * A consumer with no checkpoint starts at this run's start: a LATEST iterator now (before
   * anything is published), and the start time saved for a restart.
   */
  async startAtRunStart(runStartMs: number): Promise<void> {
    if (this.checkpointSeq !== undefined || this.startTimestampMs !== undefined) return;
    this.iterator = await this.iteratorAt('LATEST');
    this.latestSince = runStartMs;
    this.startTimestampMs = runStartMs;
    this.saveCheckpoint();
  }

  start(): void {
    this.fetchLoop = this.runFetchLoop();
    for (const lane of this.lanes) lane.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.fetched.notify();
    this.consumed.notify();
    await this.fetchLoop;
    await Promise.all(this.lanes.map((lane) => lane.stopped()));
  }

  closeWindow(): Promise<void> {
    return Promise.all(this.lanes.map((lane) => lane.requestClose())).then(() => undefined);
  }

  position(): ConsumerPosition {
    return {
      functionName: this.mapping.functionName,
      stream: this.streamName,
      shardId: this.shardId,
      sequenceNumber: this.checkpointSeq,
    };
  }

  isQuietSince(mark: number): boolean {
    if (this.unfinished.length > 0) return false;
    if (this.lanes.some((lane) => lane.busy)) return false;
    return this.shardClosed || this.lastEmptyPollStartedAt >= mark;
  }

  // ---- fetching -------------------------------------------------------------------------

  private async runFetchLoop(): Promise<void> {
    let idleDelay = 0;
    let errorDelay = 100;
    while (!this.stopping && !this.shardClosed) {
      if (this.unfinished.length >= this.maxBuffered || this.bufferedBytes >= this.maxBufferedBytes) {
        await this.consumed.wait(100);
        continue;
      }
      const startedAt = Date.now();
      try {
        this.iterator ??= await this.getIterator();
        // Few large calls are far cheaper than many small ones; the byte budget keeps a call
        // of large frames near Kinesis' own 10 MB response cap.
        const byBytes = Math.floor(GET_RECORDS_TARGET_BYTES / Math.max(1, this.averageRecordBytes));
        const page = await getRecordsRaw(this.runner.options.client, {
          ShardIterator: this.iterator,
          Limit: Math.max(1, Math.min(10_000, this.maxBuffered - this.unfinished.length, byBytes)),
        });
        errorDelay = 100;
        const records = page.Records ?? [];
        this.iterator = page.NextShardIterator;
        if (!this.iterator) this.shardClosed = true;
        if (records.length > 0) {
          this.accept(records);
          idleDelay = 0;
        } else {
          this.lastEmptyPollStartedAt = startedAt;
          this.fetched.notify();
          idleDelay = Math.min(Math.max(idleDelay * 2, 10), this.runner.options.maxIdlePollMs ?? 200);
          await this.consumed.wait(idleDelay);
        }
      } catch (error: unknown) {
        this.iterator = undefined;
        if (error instanceof ExpiredIteratorException) continue;
        if (isConnectionError(error)) {
          this.runner.markDown(error);
          await this.runner.waitForEndpoint(this.streamName, () => this.stopping);
          continue;
        }
        if (!(error instanceof ProvisionedThroughputExceededException)) {
          this.runner.logger.warn('polling a shard failed, backing off', {
            stream: this.streamName,
            shard: this.shardId,
            error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          });
        }
        await this.consumed.wait(errorDelay);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }

  private async getIterator(): Promise<string> {
    const after = this.lastFetchedSeq ?? this.checkpointSeq;
    const client = this.runner.options.client;
    const base = { StreamName: this.streamName, ShardId: this.shardId };
    if (after) {
      try {
        const out = await client.send(
          new GetShardIteratorCommand({ ...base, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: after }),
        );
        if (out.ShardIterator) return out.ShardIterator;
      } catch (error: unknown) {
        // A sequence number the stream no longer knows (an in-memory emulator was restarted
        // and recreated the stream): start over from the oldest record available.
        if (!(error instanceof InvalidArgumentException)) throw error;
        this.runner.logger.warn('checkpoint unknown to the stream, reading from the oldest record', {
          stream: this.streamName,
          shard: this.shardId,
        });
        this.lastFetchedSeq = undefined;
        return this.iteratorAt('TRIM_HORIZON');
      }
    }
    // LATEST is resolved once: a reconnection before the first record must not skip what
    // arrived in between, so it resumes from the time the mapping first started reading.
    if (this.latestSince !== undefined) return this.iteratorAt('AT_TIMESTAMP', this.latestSince);
    if (this.startTimestampMs !== undefined) return this.iteratorAt('AT_TIMESTAMP', this.startTimestampMs);
    if (this.runner.options.firstPosition === 'trim-horizon') return this.iteratorAt('TRIM_HORIZON');
    const position = this.mapping.startingPosition;
    if (position === 'LATEST') {
      const startedAt = Date.now();
      const iterator = await this.iteratorAt('LATEST');
      this.latestSince = startedAt;
      return iterator;
    }
    return this.iteratorAt(position, (this.mapping.startingPositionTimestamp ?? 0) * 1000);
  }

  private async iteratorAt(type: ShardIteratorType, timestampMs?: number): Promise<string> {
    const out = await this.runner.options.client.send(
      new GetShardIteratorCommand({
        StreamName: this.streamName,
        ShardId: this.shardId,
        ShardIteratorType: type,
        ...(type === 'AT_TIMESTAMP' ? { Timestamp: new Date(timestampMs ?? 0) } : {}),
      }),
    );
    if (!out.ShardIterator) throw new Error(`no shard iterator for ${this.streamName}/${this.shardId}`);
    return out.ShardIterator;
  }

  private accept(records: readonly RawRecord[]): void {
    const now = Date.now();
    const windowMs = this.mapping.tumblingWindowInSeconds * 1000;
    const region = this.runner.region;
    const invokeIdentityArn = `arn:aws:iam::${LOCAL_ACCOUNT_ID}:role/${this.mapping.functionName}-role`;
    for (const r of records) {
      const seq = r.SequenceNumber;
      // Already the base64 a Lambda event carries: passed on without decoding.
      const data = r.Data;
      const arrivalMs = r.ApproximateArrivalTimestamp !== undefined ? r.ApproximateArrivalTimestamp * 1000 : now;
      const partitionKey = r.PartitionKey;
      const entry: Entry = {
        seq,
        arrivalMs,
        fetchedAt: now,
        partitionKey,
        data,
        bytes: data.length + RECORD_OVERHEAD_BYTES,
        done: false,
        windowStart: windowMs > 0 ? Math.floor(arrivalMs / windowMs) * windowMs : 0,
        record: {
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey,
            sequenceNumber: seq,
            data,
            approximateArrivalTimestamp: arrivalMs / 1000,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${this.shardId}:${seq}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn,
          awsRegion: region,
          eventSourceARN: this.streamArn,
        },
      };
      this.unfinished.push(entry);
      this.bufferedBytes += entry.bytes;
      const lane = this.lanes.length === 1 ? this.lanes[0] : this.lanes[laneOf(partitionKey, this.lanes.length)];
      lane?.queue.push(entry);
      this.lastFetchedSeq = seq;
    }
    const last = this.unfinished.peek(this.unfinished.length - 1);
    if (last) this.averageRecordBytes = this.averageRecordBytes * 0.5 + last.bytes * 0.5;
    this.fetched.notify();
  }

  // ---- checkpointing --------------------------------------------------------------------

  /** Marks records finished and advances the checkpoint over the finished prefix. */
  finish(entries: readonly Entry[], window?: OpenWindow): void {
    for (const entry of entries) entry.done = true;
    let advanced = false;
    for (let head = this.unfinished.peek(); head?.done; head = this.unfinished.peek()) {
      this.unfinished.shift();
      this.bufferedBytes -= head.bytes;
      this.checkpointSeq = head.seq;
      advanced = true;
    }
    if (advanced || window) this.saveCheckpoint(window);
    if (advanced) this.consumed.notify();
  }

  saveCheckpoint(window?: OpenWindow): void {
    if (this.checkpointSeq === undefined && this.startTimestampMs === undefined) return;
    this.runner.checkpoints.set(this.key, {
      ...(this.checkpointSeq !== undefined
        ? { sequenceNumber: this.checkpointSeq }
        : { startTimestampMs: this.startTimestampMs as number }),
      ...(window ? { window: { start: window.start, end: window.end, state: window.state } } : {}),
    });
  }

  // ---- invoking -------------------------------------------------------------------------

  async invoke(entries: readonly Entry[], window?: { open: OpenWindow; final: boolean; early: boolean }): Promise<Outcome> {
    const { mapping } = this;
    const event: Record<string, unknown> = { Records: entries.map((e) => e.record) };
    if (window) {
      event.window = { start: new Date(window.open.start).toISOString(), end: new Date(window.open.end).toISOString() };
      // Lambda hands each invocation its own JSON copy: a handler that mutates the state it
      // was given must not change what a retry of the same batch receives.
      event.state = structuredClone(window.open.state);
      event.shardId = this.shardId;
      event.eventSourceARN = this.streamArn;
      event.isFinalInvokeForWindow = window.final;
      event.isWindowTerminatedEarly = window.early;
    }
    const context = createLambdaContext({
      functionName: mapping.functionName,
      region: this.runner.region,
      timeoutSeconds: mapping.timeoutSeconds,
      ...(mapping.memorySize !== undefined ? { memoryLimitInMB: mapping.memorySize } : {}),
    });
    this.runner.invocations += 1;
    let outcome: Outcome;
    let timer: NodeJS.Timeout | undefined;
    const began = performance.now();
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Task timed out after ${mapping.timeoutSeconds.toFixed(2)} seconds`)),
          mapping.timeoutSeconds * 1000,
        );
      });
      const response: unknown = await Promise.race([
        Promise.resolve().then(() => this.handler(event as never, context, undefined as never)),
        timeout,
      ]);
      outcome = this.interpret(response, entries, window !== undefined);
    } catch (error: unknown) {
      outcome = { kind: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    } finally {
      clearTimeout(timer);
    }
    this.runner.options.onInvocation?.({
      functionName: mapping.functionName,
      shardId: this.shardId,
      records: entries.length,
      outcome: outcome.kind,
      durationMs: performance.now() - began,
      ...(outcome.kind === 'error' ? { error: outcome.message } : {}),
      ...(window
        ? {
            window: {
              start: new Date(window.open.start).toISOString(),
              end: new Date(window.open.end).toISOString(),
              final: window.final,
              early: window.early,
            },
          }
        : {}),
    });
    return outcome;
  }

  /** Reads a handler's response the way Lambda does. */
  private interpret(response: unknown, entries: readonly Entry[], windowed: boolean): Outcome {
    let state: WindowState | undefined;
    if (windowed) {
      const candidate = response && typeof response === 'object' ? (response as { state?: unknown }).state : undefined;
      if (!candidate || typeof candidate !== 'object' || Array.isArray(candidate)) {
        return { kind: 'error', message: 'the response carries no state object (required with tumbling windows)' };
      }
      // The response crosses a JSON boundary on Lambda too: keep a serialised copy, so the
      // state is plain JSON and later mutations of the handler's object cannot reach it.
      try {
        state = JSON.parse(JSON.stringify(candidate)) as WindowState;
      } catch (error: unknown) {
        return {
          kind: 'error',
          message: `the state cannot be serialised: ${error instanceof Error ? error.message : String(error)}`,
        };
      }
    }
    const failures =
      this.mapping.reportBatchItemFailures && response && typeof response === 'object'
        ? (response as { batchItemFailures?: unknown }).batchItemFailures
        : undefined;
    if (failures === undefined || failures === null) return state ? { kind: 'success', state } : { kind: 'success' };
    if (!Array.isArray(failures)) return { kind: 'error', message: 'batchItemFailures is not a list' };
    if (failures.length === 0) return state ? { kind: 'success', state } : { kind: 'success' };
    let lowest = Number.POSITIVE_INFINITY;
    for (const failure of failures as unknown[]) {
      const id = failure && typeof failure === 'object' ? (failure as { itemIdentifier?: unknown }).itemIdentifier : undefined;
      if (typeof id !== 'string' || id === '') {
        return { kind: 'error', message: 'a batch item failure has an empty or missing itemIdentifier' };
      }
      const index = entries.findIndex((e) => e.seq === id);
      if (index < 0) return { kind: 'error', message: `batch item failure ${id} is not in the batch` };
      lowest = Math.min(lowest, index);
    }
    return state ? { kind: 'partial', failedIndex: lowest, state } : { kind: 'partial', failedIndex: lowest };
  }

  deadLetter(
    entries: readonly Entry[],
    condition: DeadLetterRecord['requestContext']['condition'],
    invokeCount: number,
    errorMessage?: string,
    window?: OpenWindow,
  ): void {
    const first = entries[0];
    const last = entries[entries.length - 1];
    this.runner.sendToDeadLetter({
      requestContext: {
        requestId: randomUUID(),
        functionArn: this.functionArn,
        condition,
        approximateInvokeCount: invokeCount,
      },
      responseContext: {
        statusCode: 200,
        executedVersion: '$LATEST',
        ...(condition === 'RetryAttemptsExhausted' ? { functionError: 'Unhandled' } : {}),
      },
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId: this.shardId,
        startSequenceNumber: first?.seq ?? this.checkpointSeq ?? '',
        endSequenceNumber: last?.seq ?? this.checkpointSeq ?? '',
        approximateArrivalOfFirstRecord: new Date(first?.arrivalMs ?? Date.now()).toISOString(),
        approximateArrivalOfLastRecord: new Date(last?.arrivalMs ?? Date.now()).toISOString(),
        batchSize: entries.length,
        streamArn: this.streamArn,
      },
      ...(this.mapping.onFailure ? { destinationArn: this.mapping.onFailure.arn } : {}),
      ...(errorMessage ? { errorMessage } : {}),
      ...(window ? { window: { start: new Date(window.start).toISOString(), end: new Date(window.end).toISOString() } } : {}),
      records: entries.map((e) => ({ sequenceNumber: e.seq, partitionKey: e.partitionKey, data: e.data })),
    });
  }

  retryDelay(retries: number): number {
    const base = this.runner.options.retryBaseDelayMs ?? 100;
    return Math.min(base * 2 ** Math.max(0, retries - 1), 2000);
  }
}

/** Stable lane of a partition key (FNV-1a), so one key's records stay in order in one lane. */
function laneOf(partitionKey: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < partitionKey.length; i += 1) {
    hash ^= partitionKey.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % lanes;
}

/** One concurrent invoker of a shard (several with `parallelizationFactor`). */
class Lane {
  readonly queue = new Fifo<Entry>();
  busy = false;
  private loop: Promise<void> | undefined;
  private window: OpenWindow | undefined;
  private closeRequests: Array<() => void> = [];

  constructor(
    private readonly consumer: ShardConsumer,
    saved?: CheckpointEntry['window'],
  ) {
    if (saved) this.window = { start: saved.start, end: saved.end, state: saved.state };
  }

  private get mapping(): RunnerMapping {
    return this.consumer.mapping;
  }

  start(): void {
    this.loop = this.run().catch((error: unknown) => {
      this.consumer.runner.logger.warn('a consumer lane stopped on an unexpected error', {
        function: this.mapping.functionName,
        error: error instanceof Error ? error.stack : String(error),
      });
    });
  }

  async stopped(): Promise<void> {
    await this.loop;
    for (const resolve of this.closeRequests.splice(0)) resolve();
  }

  /** Resolves after the open window (if any) got its final invocation. */
  requestClose(): Promise<void> {
    if (this.mapping.tumblingWindowInSeconds === 0 || !this.window) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeRequests.push(resolve);
      this.consumer.fetched.notify();
    });
  }

  private async run(): Promise<void> {
    const windowed = this.mapping.tumblingWindowInSeconds > 0;
    while (!this.consumer.stopped) {
      if (windowed && (await this.maybeCloseWindow())) continue;
      const batch = this.nextBatch();
      if (batch === 'wait') {
        await this.consumer.fetched.wait(this.waitTime());
        continue;
      }
      this.busy = true;
      try {
        await this.process(batch);
      } finally {
        this.busy = false;
      }
    }
  }

  /** How long to sleep before the batch is due (window expiry or the batching window). */
  private waitTime(): number {
    const now = Date.now();
    const head = this.queue.peek();
    let wait = 250;
    if (head) wait = Math.min(wait, head.fetchedAt + this.mapping.batchWindowSeconds * 1000 - now);
    if (this.window) wait = Math.min(wait, Math.max(5, this.window.end - now));
    return Math.max(1, wait);
  }

  /** The next batch to invoke, or 'wait' while the batching window is still gathering. */
  private nextBatch(): Entry[] | 'wait' {
    const head = this.queue.peek();
    if (!head) return 'wait';
    const windowStart = head.windowStart;
    const windowed = this.mapping.tumblingWindowInSeconds > 0;
    let count = 0;
    let bytes = 0;
    let full = false;
    for (let entry = this.queue.peek(0); entry; entry = this.queue.peek(count)) {
      if (windowed && entry.windowStart !== windowStart) {
        full = true; // the window's records are all here: no reason to wait for more
        break;
      }
      if (count >= this.mapping.batchSize || (count > 0 && bytes + entry.bytes > MAX_INVOKE_PAYLOAD_BYTES)) {
        full = true;
        break;
      }
      count += 1;
      bytes += entry.bytes;
    }
    const due = Date.now() >= head.fetchedAt + this.mapping.batchWindowSeconds * 1000;
    const windowEnded = windowed && Date.now() >= windowStart + this.mapping.tumblingWindowInSeconds * 1000;
    if (!full && !due && !windowEnded && this.closeRequests.length === 0) return 'wait';
    const batch: Entry[] = [];
    for (let i = 0; i < count; i += 1) {
      const entry = this.queue.shift();
      if (entry) batch.push(entry);
    }
    return batch;
  }

  /**
   * Sends the final invocation of the open window when it is over: records of a later window
   * are waiting, or its end has passed and a poll begun after the end found the shard drained,
   * or a close was requested. Returns true when it invoked.
   */
  private async maybeCloseWindow(): Promise<boolean> {
    const open = this.window;
    const head = this.queue.peek();
    if (!open) {
      for (const resolve of this.closeRequests.splice(0)) resolve();
      return false;
    }
    const now = Date.now();
    const laterWindowWaiting = head !== undefined && head.windowStart >= open.end;
    const endedAndDrained = head === undefined && now >= open.end && this.consumer.lastEmptyPollStartedAt >= open.end;
    const closeRequested = head === undefined && this.closeRequests.length > 0;
    if (!laterWindowWaiting && !endedAndDrained && !closeRequested) return false;
    this.busy = true;
    try {
      await this.finalInvoke(open, now < open.end);
    } finally {
      this.busy = false;
    }
    if (this.window === open) this.window = undefined;
    this.consumer.saveCheckpoint();
    if (!this.window) for (const resolve of this.closeRequests.splice(0)) resolve();
    return true;
  }

  private async finalInvoke(open: OpenWindow, early: boolean): Promise<void> {
    let retries = 0;
    for (;;) {
      const outcome = await this.consumer.invoke([], { open, final: true, early });
      if (outcome.kind !== 'error') return;
      if (await this.outageExcused()) {
        if (this.consumer.stopped) return;
        continue;
      }
      if (this.exhausted(retries)) {
        this.consumer.deadLetter([], 'RetryAttemptsExhausted', retries + 1, outcome.message, open);
        return;
      }
      retries += 1;
      await sleep(this.consumer.retryDelay(retries));
      if (this.consumer.stopped) return;
    }
  }

  private exhausted(retries: number): boolean {
    const max = this.mapping.maximumRetryAttempts;
    return max >= 0 && retries >= max;
  }

  /** After a failure: if the endpoint is gone, wait for it and report the attempt as not counted. */
  private async outageExcused(): Promise<boolean> {
    if (await this.consumer.runner.probe(this.consumer.streamName)) return false;
    await this.consumer.runner.waitForEndpoint(this.consumer.streamName, () => this.consumer.stopped);
    return true;
  }

  /** Invokes a batch until every record is finished: done, or sent to the on-failure destination. */
  private async process(batch: Entry[]): Promise<void> {
    const windowed = this.mapping.tumblingWindowInSeconds > 0;
    const work: Attempt[] = [{ entries: batch, retries: 0 }];
    while (work.length > 0) {
      const attempt = work[0] as Attempt;
      const maxAge = this.mapping.maximumRecordAgeInSeconds;
      if (maxAge >= 0) {
        const oldest = Date.now() - maxAge * 1000;
        const expired = attempt.entries.filter((e) => e.arrivalMs < oldest);
        if (expired.length > 0) {
          this.consumer.deadLetter(expired, 'RecordAgeExceeded', attempt.retries, undefined, this.window);
          this.consumer.finish(expired, this.window);
          attempt.entries = attempt.entries.filter((e) => e.arrivalMs >= oldest);
        }
      }
      if (attempt.entries.length === 0) {
        work.shift();
        continue;
      }
      let open: OpenWindow | undefined;
      if (windowed) {
        const head = attempt.entries[0] as Entry;
        if (!this.window || this.window.start !== head.windowStart) {
          this.window = {
            start: head.windowStart,
            end: head.windowStart + this.mapping.tumblingWindowInSeconds * 1000,
            state: {},
          };
        }
        open = this.window;
      }
      const outcome = await this.consumer.invoke(attempt.entries, open ? { open, final: false, early: false } : undefined);
      if (outcome.kind !== 'error' && open && outcome.state) open.state = outcome.state;
      if (outcome.kind === 'success') {
        this.consumer.finish(attempt.entries, open);
        work.shift();
        if (open) await this.checkStateSize(open);
        continue;
      }
      let failed: Entry[];
      if (outcome.kind === 'partial') {
        this.consumer.finish(attempt.entries.slice(0, outcome.failedIndex), open);
        failed = attempt.entries.slice(outcome.failedIndex);
        if (open) await this.checkStateSize(open);
      } else {
        failed = attempt.entries;
      }
      const reason = outcome.kind === 'error' ? outcome.message : 'the function reported batch item failures';
      if (await this.outageExcused()) {
        // Not counted: the endpoint was gone. Stopping leaves the records unfinished, so the
        // checkpoint stays before them.
        if (this.consumer.stopped) return;
        attempt.entries = failed;
        continue;
      }
      if (outcome.kind === 'error' && this.mapping.bisectBatchOnFunctionError && failed.length > 1) {
        // Splitting does not count against the retry quota (Lambda's rule).
        const middle = Math.ceil(failed.length / 2);
        work.splice(
          0,
          1,
          { entries: failed.slice(0, middle), retries: attempt.retries },
          {
            entries: failed.slice(middle),
            retries: attempt.retries,
          },
        );
        continue;
      }
      if (this.exhausted(attempt.retries)) {
        this.consumer.deadLetter(failed, 'RetryAttemptsExhausted', attempt.retries + 1, reason, open);
        this.consumer.finish(failed, open);
        work.shift();
        continue;
      }
      attempt.entries = failed;
      attempt.retries += 1;
      await sleep(this.consumer.retryDelay(attempt.retries));
      if (this.consumer.stopped) return; // unfinished records stay unfinished: the checkpoint holds
    }
  }

  /** Ends the window early when its state outgrew the 1 MB cap; later records open a new one. */
  private async checkStateSize(open: OpenWindow): Promise<void> {
    if (Buffer.byteLength(JSON.stringify(open.state)) <= MAX_WINDOW_STATE_BYTES) return;
    await this.finalInvoke(open, true);
    this.window = { start: open.start, end: open.end, state: {} };
    this.consumer.saveCheckpoint(this.window);
  }
}
