/**
 * The edge's store-and-forward uplink to a home Kinesis endpoint (another emulator, or AWS).
 *
 * It reads the edge's output streams like any other local consumer (through the event source
 * mapping runner, so the emulator's trimmer keeps every record until the uplink has stored it),
 * stores each record in its backlog (on disk with a directory) and only then lets the runner
 * checkpoint; the forwarder sends the backlog home and drops a record from it only once the
 * home acknowledged it. So a record is, at every moment, in the edge stream, in the backlog,
 * at home, or in the dropped-records file.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent } from 'aws-lambda';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { shardIdOf } from '../../functions/lib/kinesis-records';
import { type DroppedRecord, type IncomingRecord, UplinkBacklog } from './backlog';
import { writeFileAtomic } from '../../functions/lib/state-file';
import { UplinkForwarder } from './forwarder';
import type { UplinkSettings } from './settings';
import { downLine, type UplinkStatus, upLine } from './status';
import { sleep } from '../../functions/lib/retry';

export interface UplinkOptions {
  settings: UplinkSettings;
  /** Persist the backlog here (survives restarts and SIGKILL); unset keeps it in memory. */
  dir?: string;
  /** Every dropped record is appended here as one JSON line. */
  droppedFile?: string;
  /** Write the status here (atomically, about once a second while it changes). */
  statusFile?: string;
  /** Client for the home endpoint (default: one for `settings.endpoint`). */
  client?: KinesisClient;
  /** Where the down / up lines go (default stderr). */
  log?: (line: string) => void;
  random?: () => number;
}

/** Recent ids remembered per stream to skip records the edge wrote twice (a retried batch). */
const RECENT_IDS = 50_000;

/** The `frame_id` (or a metrics document's `id`) of a JSON record; undefined when it has none. */
export function recordId(data: Buffer): string | undefined {
  try {
    const value: unknown = JSON.parse(data.toString('utf8'));
    if (value && typeof value === 'object') {
      const { frame_id: frameId, id } = value as { frame_id?: unknown; id?: unknown };
      if (typeof frameId === 'string') return frameId;
      if (typeof id === 'string') return id;
    }
  } catch {
    // Not JSON: forwarded all the same, without an id.
  }
  return undefined;
}

export class Uplink {
  readonly backlog: UplinkBacklog;
  readonly forwarder: UplinkForwarder;
  private readonly client: KinesisClient;
  private readonly ownsClient: boolean;
  private readonly recent = new Map<string, Set<string>>();
  private duplicatesSkipped = 0;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly log: (line: string) => void;

  /** Opens the backlog (recovering a persisted one); call `start` to begin sending. */
  constructor(private readonly options: UplinkOptions) {
    const { settings } = options;
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    if (options.droppedFile) mkdirSync(dirname(options.droppedFile), { recursive: true });
    this.backlog = new UplinkBacklog({
      streams: settings.streams,
      maxBytes: settings.maxBytes,
      policy: settings.policy,
      ...(options.dir ? { dir: options.dir } : {}),
      onDrop: (dropped) => this.dropped(dropped),
      onProblem: (message) => this.log(message),
    });
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? createKinesisClient(settings.endpoint === 'aws' ? {} : { endpoint: settings.endpoint });
    this.forwarder = new UplinkForwarder(
      this.backlog,
      this.client,
      settings,
      {
        onDown: () => this.log(downLine(this.status())),
        onUp: (downMs) => this.log(upLine(this.status(), downMs / 1000)),
      },
      options.random,
    );
    for (const stream of settings.streams) this.recent.set(stream, new Set());
  }

  /** The streams it forwards (base names). */
  get streams(): readonly string[] {
    return this.options.settings.streams;
  }

  private dropped(dropped: DroppedRecord): void {
    if (!this.options.droppedFile) return;
    appendFileSync(
      this.options.droppedFile,
      `${JSON.stringify({
        at: new Date().toISOString(),
        stream: dropped.stream,
        reason: dropped.reason,
        id: dropped.id ?? null,
        partition_key: dropped.partitionKey,
        bytes: dropped.bytes,
        queued_at: dropped.queuedAt === undefined ? null : new Date(dropped.queuedAt).toISOString(),
      })}\n`,
    );
  }

  /**
   * A runner handler that stores a stream's records in the backlog. It fails the batch only if
   * the backlog cannot be written (the runner then retries: nothing is checkpointed unstored).
   */
  handler(stream: string): (event: KinesisStreamEvent) => Promise<void> {
    return async (event) => {
      const recent = this.recent.get(stream) as Set<string>;
      const incoming: IncomingRecord[] = [];
      for (const record of event.Records) {
        const data = Buffer.from(record.kinesis.data, 'base64');
        const id = recordId(data);
        if (id !== undefined) {
          if (recent.has(id)) {
            this.duplicatesSkipped += 1;
            continue;
          }
          recent.add(id);
          if (recent.size > RECENT_IDS) recent.delete(recent.values().next().value as string);
        }
        const shardId = shardIdOf(record.eventID);
        incoming.push({
          partitionKey: record.kinesis.partitionKey,
          data,
          id,
          source: { shardId, sequenceNumber: record.kinesis.sequenceNumber },
        });
      }
      this.backlog.add(stream, incoming);
    };
  }

  start(): void {
    this.forwarder.start();
    if (this.options.statusFile) {
      const write = (): void => {
        this.writeStatus();
        this.statusTimer = setTimeout(write, 1000);
        this.statusTimer.unref();
      };
      write();
    }
  }

  private writeStatus(): void {
    const file = this.options.statusFile;
    if (!file) return;
    writeFileAtomic(file, `${JSON.stringify(this.status(), null, 2)}\n`);
  }

  /**
   * Sends what is waiting without waiting for the batch interval, until the backlog is empty
   * or no record has been acknowledged for `stallMs` (the home is down); resolves with the
   * records still owed. A slow but working link is waited for as long as it makes progress.
   */
  async drain(stallMs: number, signal?: AbortSignal): Promise<number> {
    this.forwarder.flush();
    let owed = this.backlog.records;
    let progressAt = Date.now();
    while (this.backlog.records > 0 && Date.now() - progressAt < stallMs && !signal?.aborted) {
      await sleep(50);
      if (this.backlog.records < owed) {
        owed = this.backlog.records;
        progressAt = Date.now();
      }
    }
    return this.backlog.records;
  }

  /**
   * Stops sending and writes the last status. A persisted backlog stays on disk for the next
   * start; an in-memory one cannot outlive the process, so what it still holds is reported as
   * dropped (`not-sent-before-exit`), never lost silently.
   */
  async stop(): Promise<void> {
    if (this.statusTimer) clearTimeout(this.statusTimer);
    await this.forwarder.stop();
    if (!this.options.dir) this.backlog.abandonAll();
    this.writeStatus();
    if (this.ownsClient) this.client.destroy();
  }

  /** The uplink's state as a plain JSON-able object (see {@link UplinkStatus}). */
  status(): UplinkStatus {
    const now = Date.now();
    const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
    const stats = this.forwarder.stats;
    const streams: UplinkStatus['streams'] = {};
    for (const stream of this.backlog.streamNames) {
      const pending = this.backlog.pending(stream);
      const sent = stats.sent.get(stream) ?? { records: 0, bytes: 0 };
      streams[stream] = {
        records: pending.records,
        bytes: pending.bytes,
        oldest_age_seconds: pending.oldestAt === undefined ? null : Math.max(0, (now - pending.oldestAt) / 1000),
        sent_records: sent.records,
        sent_bytes: sent.bytes,
        dropped: { ...this.backlog.dropped[stream] },
      };
    }
    const { settings } = this.options;
    return {
      endpoint: settings.endpoint,
      stream_prefix: settings.streamPrefix,
      link: stats.link,
      link_since: new Date(stats.linkSince).toISOString(),
      last_success: iso(stats.lastSuccess),
      last_error: stats.lastError ? { at: new Date(stats.lastError.at).toISOString(), message: stats.lastError.message } : null,
      consecutive_failures: stats.consecutiveFailures,
      next_attempt_at: iso(stats.nextAttemptAt),
      backlog: {
        records: this.backlog.records,
        bytes: this.backlog.bytes,
        max_bytes: settings.maxBytes,
        policy: settings.policy,
        persisted: this.options.dir !== undefined,
      },
      streams,
      duplicates_skipped: this.duplicatesSkipped,
      bytes_attempted: stats.bytesAttempted,
      kbps: settings.kbps,
    };
  }
}
