/**
 * Deletes records from the embedded emulator once every in-process consumer of their shard has
 * finished them and a grace period has passed.
 *
 * The embedded kinesalite keeps each record for the stream's 24 h retention, so a long local run
 * would hold every frame it ever saw in memory (several times over: camera-images, uncertain
 * images, predictions). Locally the pipeline knows every reader of its streams: the functions'
 * event source mappings and the home readers, all run by one {@link EventSourceMappingRunner}.
 * A record at or before the lowest checkpoint of its shard is finished for all of them (handled,
 * or in the dead-letter file) and none of them reads it again, even after a restart from
 * persisted checkpoints. Such records are deleted after `retainSeconds`, so a person can still
 * read the recent ones with the AWS CLI.
 *
 * Safety rules: a shard is only trimmed when every consumer of it has a checkpoint (one that has
 * finished nothing yet holds the whole shard); shards no consumer reads are never touched;
 * sequence numbers are compared as numbers (BigInt), never as text.
 */
import type { ConsumerPosition, RunnerLogger } from '../runner';

/** Where the deleting happens (the embedded emulator). */
export interface TrimTarget {
  /** Deletes the shard's records below `upToExclusive`; resolves with how many were deleted. */
  trim(stream: string, shardId: string, upToExclusive: string): Promise<number>;
  /**
   * True when a bounded stream holds half its bound or more: finished records are then deleted
   * at once, retention or not, so the bound holds back the camera only for records not yet
   * finished.
   */
  underPressure?(): Promise<boolean>;
}

/** Who reads the streams (the event source mapping runner). */
export interface PositionSource {
  positions(): ConsumerPosition[];
}

/**
 * Time between checks of a bounded store's pressure, and between passes while it is under
 * pressure, ms. Checked between the regular passes too: a backlog of large frames fills its
 * bound in well under a regular interval, and until a pass deletes what the pipeline has
 * finished the camera stays refused, so the pipeline ran dry waiting for the next pass
 * (640x480 frames went at 37-39 frames/s in that rhythm, about 70 otherwise).
 */
const PRESSURE_INTERVAL_MS = 100;

/** Seconds a finished record stays readable by default in `npm start`. */
export const DEFAULT_RETAIN_CONSUMED_SECONDS = 10;

export interface TrimmerOptions {
  /** Seconds a record stays after the last consumer of its shard finished it; 0 trims at once. */
  retainSeconds: number;
  /**
   * Time between passes, ms. Default: a fifth of the retention, within 0.5-5 s, so records stay
   * at most about 20% longer than asked.
   */
  intervalMs?: number;
  logger?: RunnerLogger;
}

/** The lowest position of each shard at one moment. */
interface Sample {
  at: number;
  /** `stream\0shardId` -> lowest finished sequence number of every consumer of the shard. */
  floors: Map<string, bigint>;
}

const shardKey = (stream: string, shardId: string): string => `${stream}\u0000${shardId}`;

/**
 * The lowest finished sequence number per shard over all consumers, leaving out every shard with
 * a consumer that has not finished any record yet.
 */
export function shardFloors(positions: readonly ConsumerPosition[]): Map<string, bigint> {
  const floors = new Map<string, bigint>();
  const blocked = new Set<string>();
  for (const position of positions) {
    const key = shardKey(position.stream, position.shardId);
    if (blocked.has(key)) continue;
    if (position.sequenceNumber === undefined || !/^\d+$/.test(position.sequenceNumber)) {
      blocked.add(key);
      floors.delete(key);
      continue;
    }
    const seq = BigInt(position.sequenceNumber);
    const floor = floors.get(key);
    if (floor === undefined || seq < floor) floors.set(key, seq);
  }
  return floors;
}

/** Trims finished records from the emulator, pass by pass (see the module comment). */
export class ConsumedRecordTrimmer {
  /** Records deleted by this trimmer, per stream. */
  readonly trimmed = new Map<string, number>();
  private readonly samples: Sample[] = [];
  /** Per shard, the exclusive bound already trimmed to. */
  private readonly trimmedTo = new Map<string, bigint>();
  private readonly retainMs: number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  private stopped = false;
  private warned = false;
  /** Whether the last pass found the store under pressure. */
  private pressed = false;
  /** When the last pass ran (ms since the epoch; 0 before the first). */
  private lastPassAt = 0;
  /** Passes that deleted finished records before their retention because of pressure. */
  pressurePasses = 0;

  constructor(
    private readonly target: TrimTarget,
    private readonly source: PositionSource,
    private readonly options: TrimmerOptions,
  ) {
    if (!(options.retainSeconds >= 0) || !Number.isFinite(options.retainSeconds)) {
      throw new RangeError(`retainSeconds must be a finite number >= 0, got ${options.retainSeconds}`);
    }
    this.retainMs = options.retainSeconds * 1000;
    this.intervalMs = options.intervalMs ?? Math.min(5000, Math.max(500, this.retainMs / 5));
  }

  /** Total records deleted so far. */
  get total(): number {
    let sum = 0;
    for (const n of this.trimmed.values()) sum += n;
    return sum;
  }

  /**
   * Starts the periodic passes (the timer does not keep the process alive): one every
   * `intervalMs`, and with a bounded store one as soon as a check finds it under pressure.
   */
  start(): void {
    if (this.timer || this.stopped) return;
    // The first regular pass comes an interval after the start, as every later one.
    this.lastPassAt = Date.now();
    const tickMs = this.target.underPressure ? Math.min(PRESSURE_INTERVAL_MS, this.intervalMs) : this.intervalMs;
    const schedule = (): void => {
      this.timer = setTimeout(() => {
        void this.tick().finally(() => {
          if (!this.stopped) schedule();
        });
      }, tickMs);
      this.timer.unref();
    };
    schedule();
  }

  /** A timer tick: a pass when the regular one is due or the store is under pressure. */
  private async tick(now = Date.now()): Promise<void> {
    if (now - this.lastPassAt >= this.intervalMs) return this.trimNow();
    // The check's answer goes to the pass, which need not ask the store again.
    if (await this.underPressure()) await this.exclusive(() => this.runPass(Date.now(), true));
  }

  private async underPressure(): Promise<boolean> {
    return (await this.target.underPressure?.().catch(() => false)) === true;
  }

  /**
   * One pass now (after the one in progress, if any): notes where every shard stands at `now`
   * and deletes, per shard, what was finished by all its consumers at least `retainSeconds`
   * before `now`. A failed deletion is logged and tried again on the next pass.
   */
  trimNow(now = Date.now()): Promise<void> {
    return this.exclusive(() => this.runPass(now));
  }

  /** Runs `task` with no pass in progress and none starting until it settles. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const previous = this.pass?.catch(() => undefined) ?? Promise.resolve();
    const result = previous.then(task);
    this.pass = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** @param pressed the store's pressure when the caller has just asked; asked here otherwise. */
  private async runPass(now: number, pressed?: boolean): Promise<void> {
    if (this.stopped) return;
    this.lastPassAt = now;
    this.samples.push({ at: now, floors: shardFloors(this.source.positions()) });
    this.pressed = pressed ?? (await this.underPressure());
    if (this.pressed) this.pressurePasses += 1;
    // The newest sample old enough: everything at or before its floors was finished by then.
    // Under pressure, what is finished now goes at once.
    const oldest = this.pressed ? now : now - this.retainMs;
    let due: Sample | undefined;
    while (this.samples.length > 0 && (this.samples[0] as Sample).at <= oldest) {
      due = this.samples.shift();
    }
    if (!due) return;
    // It stays first: the next pass may still trim to it if this one fails.
    this.samples.unshift(due);
    const current = this.samples[this.samples.length - 1] as Sample;
    for (const [key, floor] of due.floors) {
      // Checkpoints only move forward; the lower of both is the cautious choice regardless.
      const latest = current.floors.get(key);
      if (latest === undefined) continue;
      const bound = (floor < latest ? floor : latest) + 1n;
      const done = this.trimmedTo.get(key);
      if (done !== undefined && bound <= done) continue;
      const [stream, shardId] = key.split('\u0000') as [string, string];
      try {
        const deleted = await this.target.trim(stream, shardId, bound.toString());
        this.trimmedTo.set(key, bound);
        if (deleted > 0) this.trimmed.set(stream, (this.trimmed.get(stream) ?? 0) + deleted);
      } catch (error: unknown) {
        if (this.stopped) return;
        if (!this.warned) {
          this.warned = true;
          (this.options.logger?.warn ?? defaultWarn)(
            'deleting consumed records from the emulator failed; retrying on the next pass',
            {
              stream,
              shard: shardId,
              error: error instanceof Error ? error.message : String(error),
            },
          );
        }
      }
    }
  }

  /** Stops the passes and waits for the one in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.pass?.catch(() => undefined);
  }
}

function defaultWarn(message: string, context?: Record<string, unknown>): void {
  process.stderr.write(`trimmer: ${message} ${context ? JSON.stringify(context) : ''}\n`);
}
