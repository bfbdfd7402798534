import { randomUUID } from 'node:crypto';
import {
  ExpiredIteratorException,
  GetShardIteratorCommand,
  InvalidArgumentException,
  ProvisionedThroughputExceededException,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { backoffCeilingMs } from '../../functions/lib/retry';
import { isConnectionError } from './connection-error';
import { GET_RECORDS_TARGET_BYTES, MAX_RETRY_DELAY_MS, POLL_ERROR_BACKOFF, RECORD_OVERHEAD_BYTES } from './constants';
import type { EventSourceMappingRunner } from './event-source-mapping-runner';
import { Fifo } from './fifo';
import { DirectKinesisClient } from '../emulator/direct-client';
import { getRecordsRaw } from './get-records-raw';
import { errorOutcome, interpretResponse, type Outcome } from './handler-response';
import { createLambdaContext, LOCAL_ACCOUNT_ID } from './lambda-context';
import { Lane, laneOf } from './lane';
import { Signal } from './signal';
import {
  type ConsumerPosition,
  type DeadLetterRecord,
  type Entry,
  type OpenWindow,
  type RunnerMapping,
  type StreamHandler,
  takesRecordBytes,
} from './types';

/** A record as read: its data as base64 text (HTTP) or as bytes (the direct path). */
interface ReadRecord {
  SequenceNumber: string;
  PartitionKey: string;
  Data: string | Buffer;
  ApproximateArrivalTimestamp?: number;
}

/** Default of {@link RunnerOptions.maxBufferedBytes}. */
const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** The base64 text of a record's data, as a Lambda event and the on-failure record carry it. */
function base64Of(data: string | Buffer): string {
  return typeof data === 'string' ? data : data.toString('base64');
}

/** Polls one shard for one mapping and feeds its lanes. */
export class ShardConsumer {
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
  /** Polls begun so far, and the number of the latest one that came back empty (0: none). */
  pollsStarted = 0;
  private lastEmptyPoll = 0;
  readonly fetched = new Signal();
  readonly consumed = new Signal();
  readonly maxBuffered: number;
  readonly maxBufferedBytes: number;

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
    this.maxBufferedBytes = runner.options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
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

  /**
   * Nothing buffered, nothing running, and a poll begun after poll number `pollMark` came back
   * empty. Counted in polls, not milliseconds: a poll begun in the same millisecond as the
   * mark, but before it, must not count.
   */
  isQuietAfterPoll(pollMark: number): boolean {
    if (this.unfinished.length > 0) return false;
    if (this.lanes.some((lane) => lane.busy)) return false;
    return this.shardClosed || this.lastEmptyPoll > pollMark;
  }

  // ---- fetching -------------------------------------------------------------------------

  private async runFetchLoop(): Promise<void> {
    let idleDelay = 0;
    let pollErrors = 0;
    while (!this.stopping && !this.shardClosed) {
      if (this.unfinished.length >= this.maxBuffered || this.bufferedBytes >= this.maxBufferedBytes) {
        await this.consumed.wait(100);
        continue;
      }
      const startedAt = Date.now();
      this.pollsStarted += 1;
      const poll = this.pollsStarted;
      try {
        this.iterator ??= await this.getIterator();
        // Few large calls are far cheaper than many small ones; the byte budget keeps a call
        // of large frames near Kinesis' own 10 MB response cap.
        // The page also fits what is left of the byte budget (at least one record).
        const pageBytes = Math.min(GET_RECORDS_TARGET_BYTES, this.maxBufferedBytes - this.bufferedBytes);
        const byBytes = Math.floor(pageBytes / Math.max(1, this.averageRecordBytes));
        const input = {
          ShardIterator: this.iterator,
          Limit: Math.max(1, Math.min(10_000, this.maxBuffered - this.unfinished.length, byBytes)),
        };
        const client = this.runner.options.client;
        const page =
          client instanceof DirectKinesisClient ? await client.getRecordBuffers(input) : await getRecordsRaw(client, input);
        pollErrors = 0;
        const records = page.Records ?? [];
        this.iterator = page.NextShardIterator;
        if (!this.iterator) this.shardClosed = true;
        if (records.length > 0) {
          this.accept(records);
          idleDelay = 0;
        } else {
          this.lastEmptyPollStartedAt = startedAt;
          this.lastEmptyPoll = poll;
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
        pollErrors += 1;
        await this.consumed.wait(backoffCeilingMs(pollErrors, POLL_ERROR_BACKOFF));
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

  private accept(records: readonly ReadRecord[]): void {
    // Bytes go to a handler that takes them (the worker pool makes the base64 in its own
    // thread); any other handler gets the base64 text a Lambda event carries.
    const asBytes = takesRecordBytes(this.handler);
    const now = Date.now();
    const windowMs = this.mapping.tumblingWindowInSeconds * 1000;
    const region = this.runner.region;
    const invokeIdentityArn = `arn:aws:iam::${LOCAL_ACCOUNT_ID}:role/${this.mapping.functionName}-role`;
    for (const r of records) {
      const seq = r.SequenceNumber;
      // Base64 read over HTTP is passed on without decoding; bytes stay bytes where they can.
      const data = asBytes ? r.Data : base64Of(r.Data);
      const arrivalMs = r.ApproximateArrivalTimestamp !== undefined ? r.ApproximateArrivalTimestamp * 1000 : now;
      const partitionKey = r.PartitionKey;
      const entry: Entry = {
        seq,
        arrivalMs,
        fetchedAt: now,
        partitionKey,
        data,
        // What the record weighs in an event: its base64 text.
        bytes: (typeof data === 'string' ? data.length : Math.ceil(data.length / 3) * 4) + RECORD_OVERHEAD_BYTES,
        done: false,
        windowStart: windowMs > 0 ? Math.floor(arrivalMs / windowMs) * windowMs : 0,
        record: {
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey,
            sequenceNumber: seq,
            // Bytes only for a handler marked as taking them, which makes them base64 itself.
            data: data as string,
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
      outcome = interpretResponse(response, entries, {
        windowed: window !== undefined,
        reportBatchItemFailures: this.mapping.reportBatchItemFailures,
      });
    } catch (error: unknown) {
      outcome = errorOutcome(error);
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
      records: entries.map((e) => ({ sequenceNumber: e.seq, partitionKey: e.partitionKey, data: base64Of(e.data) })),
    });
  }

  /** Wait before retry number `retries` (>= 1) of a failed batch. */
  retryDelay(retries: number): number {
    return backoffCeilingMs(retries, { baseMs: this.runner.options.retryBaseDelayMs ?? 100, maxMs: MAX_RETRY_DELAY_MS });
  }
}
