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
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DescribeStreamSummaryCommand, ListShardsCommand, type Shard } from '@aws-sdk/client-kinesis';
import { backoffCeilingMs, sleep } from '../../functions/lib/retry';
import { CheckpointStore } from './checkpoint-store';
import { isConnectionError } from './connection-error';
import { POLL_ERROR_BACKOFF } from './constants';
import { ShardConsumer } from './shard-consumer';
import type { ConsumerPosition, DeadLetterRecord, RunnerLogger, RunnerMapping, RunnerOptions, StreamHandler } from './types';

const quietLogger: RunnerLogger = {
  debug: () => undefined,
  warn: (message, context) => process.stderr.write(`runner: ${message} ${context ? JSON.stringify(context) : ''}\n`),
};

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
      // Records already on the stream arrived at or before now. AT_TIMESTAMP includes its own
      // millisecond, so the saved start is the next one, and start() returns (and this run
      // publishes) only once the clock has reached it: a restart then resumes with exactly
      // this run's records, even when earlier ones arrived in the same millisecond.
      const runStartMs = Date.now() + 1;
      await Promise.all(this.consumers.map((consumer) => consumer.startAtRunStart(runStartMs)));
      // On disk before anything is published, so a crash before the first finished record
      // resumes at this run's start.
      this.checkpoints.flush();
      while (Date.now() < runStartMs) await sleep(1);
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
      const marks = this.consumers.map((c) => c.pollsStarted);
      const before = this.invocations;
      while (!this.consumers.every((c, i) => c.isQuietAfterPoll(marks[i] ?? 0))) {
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
      for (let attempt = 1; !isStopping() && !(await this.probe(stream)); attempt += 1) {
        const delay = backoffCeilingMs(attempt, POLL_ERROR_BACKOFF);
        await sleep(delay + Math.random() * delay * 0.2);
      }
      if (this.endpointDown) this.logger.warn('kinesis endpoint reachable again', {});
      this.endpointDown = false;
      this.reconnect = undefined;
    })();
    return this.reconnect;
  }
}
