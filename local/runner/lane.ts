import { sleep } from '../../functions/lib/retry';
import type { CheckpointEntry } from './checkpoint-store';
import { MAX_INVOKE_PAYLOAD_BYTES, MAX_WINDOW_STATE_BYTES } from './constants';
import { Fifo } from './fifo';
import { bisect, failureReason, failureStep, retriesExhausted, splitAtFailure } from './handler-response';
import type { ShardConsumer } from './shard-consumer';
import type { Attempt, Entry, OpenWindow, RunnerMapping } from './types';

/** Stable lane of a partition key (FNV-1a), so one key's records stay in order in one lane. */
export function laneOf(partitionKey: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < partitionKey.length; i += 1) {
    hash ^= partitionKey.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % lanes;
}

/** One concurrent invoker of a shard (several with `parallelizationFactor`). */
export class Lane {
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
      if (retriesExhausted(retries, this.mapping.maximumRetryAttempts)) {
        this.consumer.deadLetter([], 'RetryAttemptsExhausted', retries + 1, outcome.message, open);
        return;
      }
      retries += 1;
      await sleep(this.consumer.retryDelay(retries));
      if (this.consumer.stopped) return;
    }
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
      const { finished, failed } = splitAtFailure(attempt.entries, outcome);
      if (outcome.kind === 'partial') {
        this.consumer.finish(finished, open);
        if (open) await this.checkStateSize(open);
      }
      if (await this.outageExcused()) {
        // Not counted: the endpoint was gone. Stopping leaves the records unfinished, so the
        // checkpoint stays before them.
        if (this.consumer.stopped) return;
        attempt.entries = failed;
        continue;
      }
      const step = failureStep(outcome, failed.length, attempt.retries, this.mapping);
      if (step === 'bisect') {
        const [first, second] = bisect(failed);
        work.splice(0, 1, { entries: first, retries: attempt.retries }, { entries: second, retries: attempt.retries });
        continue;
      }
      if (step === 'dead-letter') {
        this.consumer.deadLetter(failed, 'RetryAttemptsExhausted', attempt.retries + 1, failureReason(outcome), open);
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
