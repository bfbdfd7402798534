/**
 * Sends the backlog home: one PutRecords call at a time, always from the highest-priority
 * stream that has a batch ready (a full batch, or records older than the batch interval),
 * within the bandwidth cap, retrying with capped exponential backoff for as long as it takes.
 * A record leaves the backlog only when the home acknowledged it (a sequence number in the
 * PutRecords response).
 *
 * Order per camera (partition key): batches go out one at a time, in backlog order. When the
 * home rejects some entries of a batch (throughput exceeded), each rejected entry and every
 * later entry of the same partition key in that batch stay in the backlog and go again, in
 * order, so each camera's records are sent again from its first rejected one.
 */
import { type KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { BacklogRecord, UplinkBacklog } from './backlog';
import { backoffDelayMs } from './backoff';
import { ByteRateLimiter, kbpsToBytesPerSecond } from './rate-limiter';
import type { UplinkSettings } from './settings';

/** PutRecords' own bound on a call. */
const MAX_CALL_BYTES = 5 * 1024 * 1024;

export interface ForwarderEvents {
  /** A call succeeded (fully or in part) after the link was down or unknown. */
  onUp?: (downMs: number) => void;
  /** A call failed as a whole while the link was up or unknown. */
  onDown?: (error: string) => void;
}

/** Which records of a sent batch the home kept, from PutRecords' per-entry results. */
export function acknowledged(
  batch: readonly BacklogRecord[],
  results: ReadonlyArray<{ SequenceNumber?: string; ErrorCode?: string }>,
): {
  acked: number[];
  retried: number;
} {
  const failedKeys = new Set<string>();
  const acked: number[] = [];
  let retried = 0;
  batch.forEach((record, i) => {
    const result = results[i];
    const ok = result !== undefined && !result.ErrorCode && typeof result.SequenceNumber === 'string';
    // After a camera's first rejected record, its later ones go again too (in order).
    if (ok && !failedKeys.has(record.partitionKey)) {
      acked.push(record.seq);
    } else {
      if (!ok) failedKeys.add(record.partitionKey);
      retried += 1;
    }
  });
  return { acked, retried };
}

/** Counters the status reports. */
export interface ForwarderStats {
  link: 'up' | 'down' | 'unknown';
  linkSince: number;
  lastSuccess: number | undefined;
  lastError: { at: number; message: string } | undefined;
  consecutiveFailures: number;
  nextAttemptAt: number | undefined;
  sent: Map<string, { records: number; bytes: number }>;
  bytesAttempted: number;
}

export class UplinkForwarder {
  readonly stats: ForwarderStats;
  private readonly limiter: ByteRateLimiter;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  /** Ignore the batch interval (draining at the end of a run). */
  private flushing = false;

  constructor(
    private readonly backlog: UplinkBacklog,
    private readonly client: KinesisClient,
    private readonly settings: UplinkSettings,
    private readonly events: ForwarderEvents = {},
    private readonly random: () => number = Math.random,
  ) {
    const rate = kbpsToBytesPerSecond(settings.kbps);
    this.limiter = new ByteRateLimiter(rate, rate);
    this.stats = {
      link: 'unknown',
      linkSince: Date.now(),
      lastSuccess: undefined,
      lastError: undefined,
      consecutiveFailures: 0,
      nextAttemptAt: undefined,
      sent: new Map(backlog.streamNames.map((s) => [s, { records: 0, bytes: 0 }])),
      bytesAttempted: 0,
    };
  }

  start(): void {
    if (this.loop) return;
    this.unsubscribe = this.backlog.onAdded(() => this.wake?.());
    this.loop = this.run();
  }

  /** Sends whatever is waiting without waiting for the batch interval. */
  flush(): void {
    this.flushing = true;
    this.wake?.();
  }

  /** Stops after the call in flight (if any) finishes. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.wake?.();
    await this.loop;
  }

  /** Sleeps up to `ms`, or until woken (new records, flush, stop). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** The stream to send from now, or how long until one is ready. */
  private next(now: number): { stream: string } | { waitMs: number } {
    let soonest = Number.POSITIVE_INFINITY;
    for (const stream of this.backlog.streamNames) {
      const pending = this.backlog.pending(stream);
      if (pending.records === 0 || pending.oldestAt === undefined) continue;
      const dueAt = pending.oldestAt + this.settings.intervalMs;
      if (this.flushing || pending.records >= this.settings.batchSize || now >= dueAt) return { stream };
      soonest = Math.min(soonest, dueAt - now);
    }
    return { waitMs: Number.isFinite(soonest) ? Math.max(1, soonest) : 60_000 };
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const choice = this.next(Date.now());
      if ('waitMs' in choice) {
        await this.sleep(choice.waitMs);
        continue;
      }
      const { stream } = choice;
      // A batch never larger than the bandwidth bucket, so the cap holds call by call.
      const maxBytes = this.limiter.unlimited
        ? MAX_CALL_BYTES
        : Math.min(MAX_CALL_BYTES, Math.max(1, this.limiter.capacityBytes));
      const batch = this.backlog.take(stream, this.settings.batchSize, maxBytes);
      const bytes = batch.reduce((sum, r) => sum + r.bytes, 0);
      const delay = this.limiter.delayMs(bytes);
      if (delay > 0) {
        this.backlog.release(stream);
        await this.sleep(delay);
        continue;
      }
      this.limiter.take(bytes);
      this.stats.bytesAttempted += bytes;
      try {
        const response = await this.client.send(
          new PutRecordsCommand({
            StreamName: `${this.settings.streamPrefix}${stream}`,
            Records: batch.map((r) => ({ PartitionKey: r.partitionKey, Data: r.data })),
          }),
        );
        const { acked, retried } = acknowledged(batch, response.Records ?? []);
        const settled = this.backlog.settle(stream, acked);
        const sent = this.stats.sent.get(stream) ?? { records: 0, bytes: 0 };
        sent.records += settled.length;
        sent.bytes += settled.reduce((sum, r) => sum + r.bytes, 0);
        this.stats.sent.set(stream, sent);
        if (settled.length > 0) this.succeeded();
        if (retried > 0) {
          // Throughput exceeded at home: back off as for a failed call, keep the link state.
          const codes = [...new Set((response.Records ?? []).map((r) => r.ErrorCode).filter(Boolean))].join(', ');
          await this.failed(
            `${retried} of ${batch.length} records refused by the home (${codes}); sending them again`,
            settled.length > 0,
          );
        }
      } catch (error: unknown) {
        this.backlog.release(stream);
        await this.failed(describe(error), false);
      }
    }
  }

  private succeeded(): void {
    const now = Date.now();
    this.stats.lastSuccess = now;
    this.stats.consecutiveFailures = 0;
    this.stats.nextAttemptAt = undefined;
    if (this.stats.link !== 'up') {
      const downMs = this.stats.link === 'down' ? now - this.stats.linkSince : 0;
      const wasDown = this.stats.link === 'down';
      this.stats.link = 'up';
      this.stats.linkSince = now;
      if (wasDown) this.events.onUp?.(downMs);
    }
  }

  private async failed(message: string, partly: boolean): Promise<void> {
    const now = Date.now();
    this.stats.lastError = { at: now, message };
    this.stats.consecutiveFailures = partly ? 1 : this.stats.consecutiveFailures + 1;
    const wait = backoffDelayMs(
      this.stats.consecutiveFailures,
      { baseMs: this.settings.retryBaseMs, maxMs: this.settings.retryMaxMs },
      this.random,
    );
    this.stats.nextAttemptAt = now + wait;
    if (!partly && this.stats.link !== 'down') {
      this.stats.link = 'down';
      this.stats.linkSince = now;
      this.events.onDown?.(message);
    }
    const until = now + wait;
    // Woken early only to stop: new records do not cut a backoff short.
    while (!this.stopped && Date.now() < until) await this.sleep(until - Date.now());
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const name = error.name && error.name !== 'Error' ? `${error.name}: ` : '';
  return `${name}${error.message || (typeof code === 'string' ? code : 'error')}`;
}
