/**
 * The uplink's store-and-forward backlog: every record waiting to be acknowledged by the home,
 * per stream, in arrival order, bounded in bytes with a policy when full. With a directory it
 * is persisted like a Stream Manager stream in File mode: records are appended to segment
 * files before they are accepted, what became of them (acknowledged or dropped) is written to
 * a small state file, and a restarted process (even after SIGKILL) recovers exactly the
 * records still owed to the home. A segment file is deleted once none of its records is owed.
 *
 * Nothing leaves the backlog silently: a record is either acknowledged by the home or dropped,
 * and every drop is counted per stream and reason and reported to `onDrop` (the uplink writes
 * each one to a file).
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { KINESIS_LIMITS } from '../../functions/lib/kinesis-records';
import { previousCopyPath, readStateFile, writeStateFile } from '../../functions/lib/state-file';
import { priorityOf, type UplinkPolicy } from './settings';

/** One record owed to the home. */
export interface BacklogRecord {
  /** Position in its stream's backlog, increasing from 1; never reused. */
  seq: number;
  partitionKey: string;
  data: Buffer;
  /** `frame_id` of the record (a metrics document's `id`), for de-duplication and drop reports. */
  id: string | undefined;
  /** Wall-clock ms when the backlog accepted it. */
  at: number;
  /** Kinesis size: data plus partition key. */
  bytes: number;
}

/** A record offered to the backlog. */
export interface IncomingRecord {
  partitionKey: string;
  data: Buffer;
  id: string | undefined;
  /** Where it came from on the edge (shard and sequence number), so a re-read is not stored twice. */
  source?: { shardId: string; sequenceNumber: string };
}

/** Why a record was dropped. */
export type DropReason = 'backlog-full-reject-new' | 'backlog-full-drop-oldest' | 'too-large' | 'not-sent-before-exit';

export interface DroppedRecord {
  stream: string;
  reason: DropReason;
  id: string | undefined;
  partitionKey: string;
  bytes: number;
  /** When it entered the backlog (ms), or undefined if it never did. */
  queuedAt: number | undefined;
}

export interface BacklogOptions {
  streams: readonly string[];
  maxBytes: number;
  policy: UplinkPolicy;
  /** Persist here; unset keeps the backlog in memory (lost with the process). */
  dir?: string;
  /** Largest record accepted (Kinesis: 1 MiB including the key). */
  maxRecordBytes?: number;
  /** Segment files roll over past this size (Stream Manager's default segment is 16 MB). */
  segmentBytes?: number;
  onDrop?: (dropped: DroppedRecord) => void;
  /** A damaged state file was found at start-up and its previous copy used instead. */
  onProblem?: (message: string) => void;
  now?: () => number;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;

/** A queue with O(1) removal at the front (Array.shift is O(n) on large arrays). */
class RecordQueue {
  private items: BacklogRecord[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  at(index: number): BacklogRecord | undefined {
    return this.items[this.head + index];
  }
  first(): BacklogRecord | undefined {
    return this.items[this.head];
  }
  push(record: BacklogRecord): void {
    this.items.push(record);
    this.bytes += record.bytes;
  }
  /** Removes the record at `index` (0 = front). */
  removeAt(index: number): BacklogRecord {
    const record = this.items[this.head + index] as BacklogRecord;
    if (index === 0) {
      this.items[this.head] = undefined as unknown as BacklogRecord;
      this.head += 1;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    } else {
      this.items.splice(this.head + index, 1);
    }
    this.bytes -= record.bytes;
    return record;
  }
  /** Removes the records whose seq is in `seqs`, among the first `within`; returns them. */
  removeSeqs(seqs: ReadonlySet<number>, within: number): BacklogRecord[] {
    const removed: BacklogRecord[] = [];
    for (let i = Math.min(within, this.length) - 1; i >= 0; i -= 1) {
      const record = this.at(i) as BacklogRecord;
      if (seqs.has(record.seq)) removed.push(this.removeAt(i));
    }
    return removed.reverse();
  }
}

/** A persisted stream's settled records: all up to `through`, plus `above` (gaps past it). */
const stateSchema = z.object({
  version: z.literal(1),
  streams: z.record(
    z.string(),
    z.object({
      through: z.number().int().min(0),
      above: z.array(z.number().int()),
      /** Highest edge sequence number stored, per edge shard. */
      sources: z.record(z.string(), z.string()).default({}),
    }),
  ),
  dropped: z.record(z.string(), z.record(z.string(), z.number().int().min(0))).default({}),
});
type PersistedState = z.infer<typeof stateSchema>;

/** One journal line: a record as stored in a segment file. */
const lineSchema = z.object({
  s: z.number().int().min(1),
  k: z.string(),
  d: z.string(),
  t: z.number(),
  i: z.string().optional(),
  /** Edge shard and sequence number. */
  src: z.tuple([z.string(), z.string()]).optional(),
});

interface StreamState {
  queue: RecordQueue;
  nextSeq: number;
  /** Settled seqs above the lowest owed one (acknowledged out of order, or dropped). */
  holes: Set<number>;
  /** Highest edge sequence number stored, per edge shard (BigInt compare). */
  sources: Map<string, bigint>;
  /** Records at the front being sent now: never evicted. */
  inFlight: number;
  segments: Array<{ file: string; lastSeq: number; bytes: number }>;
}

export class UplinkBacklog {
  private readonly streams = new Map<string, StreamState>();
  /** Dropped records per stream and reason, since the backlog was first created. */
  readonly dropped: Record<string, Partial<Record<DropReason, number>>> = {};
  private totalBytes = 0;
  private readonly now: () => number;
  private readonly listeners = new Set<() => void>();

  /** Opens the backlog, recovering what a persisted one still owes. Throws on an unreadable state file. */
  constructor(private readonly options: BacklogOptions) {
    this.now = options.now ?? Date.now;
    for (const stream of options.streams) {
      this.streams.set(stream, {
        queue: new RecordQueue(),
        nextSeq: 1,
        holes: new Set(),
        sources: new Map(),
        inFlight: 0,
        segments: [],
      });
      this.dropped[stream] = {};
    }
    if (options.dir) this.recover(options.dir);
  }

  /** Streams in the backlog, highest priority first. */
  get streamNames(): string[] {
    return [...this.streams.keys()].sort((a, b) => priorityOf(a) - priorityOf(b));
  }

  /** Bytes held, all streams. */
  get bytes(): number {
    return this.totalBytes;
  }

  get records(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.queue.length;
    return n;
  }

  /** Called after records are added (the forwarder wakes up). */
  onAdded(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private state(stream: string): StreamState {
    const state = this.streams.get(stream);
    if (!state) throw new Error(`the uplink does not forward stream ${stream}`);
    return state;
  }

  /**
   * Stores records for the home, in order. A record too large for Kinesis is dropped; when
   * the backlog is full, `reject-new` drops the newcomer and `drop-oldest` drops the oldest
   * records of the lowest-priority stream that has any (never one being sent) until it fits.
   * A record the edge already delivered here (same shard, sequence number not newer) is
   * skipped. Persisted, the records are on disk when this returns. Returns how many were
   * stored and how many dropped.
   */
  add(stream: string, incoming: readonly IncomingRecord[]): { stored: number; dropped: number; skipped: number } {
    const state = this.state(stream);
    const accepted: BacklogRecord[] = [];
    const sources: Array<IncomingRecord['source']> = [];
    let dropped = 0;
    let skipped = 0;
    const stateDirty = { value: false };
    const at = this.now();
    for (const record of incoming) {
      if (record.source) {
        const seen = state.sources.get(record.source.shardId);
        const seq = BigInt(record.source.sequenceNumber);
        if (seen !== undefined && seq <= seen) {
          skipped += 1;
          continue;
        }
        state.sources.set(record.source.shardId, seq);
        stateDirty.value = true;
      }
      const bytes = record.data.byteLength + Buffer.byteLength(record.partitionKey, 'utf8');
      const drop = (reason: DropReason): void => {
        dropped += 1;
        this.countDrop({ stream, reason, id: record.id, partitionKey: record.partitionKey, bytes, queuedAt: undefined });
        stateDirty.value = true;
      };
      if (bytes > (this.options.maxRecordBytes ?? KINESIS_LIMITS.maxRecordBytes)) {
        drop('too-large');
        continue;
      }
      if (this.totalBytes + bytes > this.options.maxBytes) {
        if (this.options.policy === 'drop-oldest' && this.evict(this.totalBytes + bytes - this.options.maxBytes) > 0) {
          stateDirty.value = true;
        }
        if (this.totalBytes + bytes > this.options.maxBytes) {
          drop('backlog-full-reject-new');
          continue;
        }
      }
      const stored: BacklogRecord = {
        seq: state.nextSeq,
        partitionKey: record.partitionKey,
        data: record.data,
        id: record.id,
        at,
        bytes,
      };
      state.nextSeq += 1;
      state.queue.push(stored);
      this.totalBytes += bytes;
      accepted.push(stored);
      sources.push(record.source);
    }
    if (this.options.dir && accepted.length > 0) this.journal(stream, state, accepted, sources);
    // Evictions, drops and edge positions are written before the edge's reader moves on.
    if (this.options.dir && (stateDirty.value || dropped > 0)) this.saveState();
    if (accepted.length > 0) for (const listener of this.listeners) listener();
    return { stored: accepted.length, dropped, skipped };
  }

  /**
   * Drops the oldest records of the lowest-priority streams until `bytes` are freed (or
   * nothing more can go); returns how many records it dropped.
   */
  private evict(bytes: number): number {
    let freed = 0;
    let count = 0;
    const byLowestPriority = this.streamNames.reverse();
    for (const stream of byLowestPriority) {
      const state = this.state(stream);
      while (freed < bytes && state.queue.length > state.inFlight) {
        const record = state.queue.removeAt(state.inFlight);
        this.totalBytes -= record.bytes;
        freed += record.bytes;
        count += 1;
        if (state.inFlight > 0) state.holes.add(record.seq);
        this.countDrop({
          stream,
          reason: 'backlog-full-drop-oldest',
          id: record.id,
          partitionKey: record.partitionKey,
          bytes: record.bytes,
          queuedAt: record.at,
        });
      }
      this.normalise(state);
      if (freed >= bytes) break;
    }
    return count;
  }

  private countDrop(dropped: DroppedRecord): void {
    const counts = this.dropped[dropped.stream] ?? {};
    counts[dropped.reason] = (counts[dropped.reason] ?? 0) + 1;
    this.dropped[dropped.stream] = counts;
    this.options.onDrop?.(dropped);
  }

  /**
   * The next records to send from a stream: up to `maxRecords` from the front, at most
   * `maxBytes` together (the first always, however large). They are marked in flight until
   * `settle` or `release`.
   */
  take(stream: string, maxRecords: number, maxBytes: number): BacklogRecord[] {
    const state = this.state(stream);
    const out: BacklogRecord[] = [];
    let bytes = 0;
    for (let i = 0; i < state.queue.length && out.length < maxRecords; i += 1) {
      const record = state.queue.at(i) as BacklogRecord;
      if (out.length > 0 && bytes + record.bytes > maxBytes) break;
      out.push(record);
      bytes += record.bytes;
    }
    state.inFlight = out.length;
    return out;
  }

  /** The records of the last `take` are no longer in flight (the send failed as a whole). */
  release(stream: string): void {
    this.state(stream).inFlight = 0;
  }

  /**
   * The home acknowledged these records (seqs from the last `take`): they leave the backlog
   * and, persisted, the state file says so before this returns. The rest of the batch is no
   * longer in flight.
   */
  settle(stream: string, seqs: readonly number[]): BacklogRecord[] {
    const state = this.state(stream);
    const set = new Set(seqs);
    const removed = state.queue.removeSeqs(set, state.inFlight);
    state.inFlight = 0;
    for (const record of removed) {
      this.totalBytes -= record.bytes;
      state.holes.add(record.seq);
    }
    this.normalise(state);
    if (this.options.dir && removed.length > 0) {
      this.saveState();
      this.deleteSettledSegments(state);
    }
    return removed;
  }

  /** The lowest seq still owed, minus one: everything up to it is settled. */
  private through(state: StreamState): number {
    const first = state.queue.first();
    return first ? first.seq - 1 : state.nextSeq - 1;
  }

  private normalise(state: StreamState): void {
    const through = this.through(state);
    for (const seq of state.holes) if (seq <= through) state.holes.delete(seq);
  }

  /**
   * Gives up every record still owed (an in-memory backlog when its process ends): each is
   * counted and reported as dropped. Returns how many.
   */
  abandonAll(): number {
    let n = 0;
    for (const [stream, state] of this.streams) {
      while (state.queue.length > 0) {
        const record = state.queue.removeAt(0);
        this.totalBytes -= record.bytes;
        n += 1;
        this.countDrop({
          stream,
          reason: 'not-sent-before-exit',
          id: record.id,
          partitionKey: record.partitionKey,
          bytes: record.bytes,
          queuedAt: record.at,
        });
      }
      state.inFlight = 0;
      state.holes.clear();
    }
    if (this.options.dir && n > 0) this.saveState();
    return n;
  }

  /** Records waiting in a stream, and how long the oldest has waited (ms). */
  pending(stream: string): { records: number; bytes: number; oldestAt: number | undefined } {
    const state = this.state(stream);
    return { records: state.queue.length, bytes: state.queue.bytes, oldestAt: state.queue.first()?.at };
  }

  /** Every record still owed, per stream, in order (tests and status pages). */
  snapshot(stream: string): BacklogRecord[] {
    const state = this.state(stream);
    return Array.from({ length: state.queue.length }, (_, i) => state.queue.at(i) as BacklogRecord);
  }

  // ---- persistence ----

  private streamDir(stream: string): string {
    return join(this.options.dir as string, stream);
  }

  private journal(stream: string, state: StreamState, records: BacklogRecord[], sources: Array<IncomingRecord['source']>): void {
    const dir = this.streamDir(stream);
    let segment = state.segments[state.segments.length - 1];
    if (!segment || segment.bytes >= (this.options.segmentBytes ?? SEGMENT_BYTES)) {
      mkdirSync(dir, { recursive: true });
      segment = { file: join(dir, `segment-${String(records[0]?.seq).padStart(12, '0')}.jsonl`), lastSeq: 0, bytes: 0 };
      state.segments.push(segment);
    }
    const text = records
      .map((r, i) => {
        const src = sources[i];
        return JSON.stringify({
          s: r.seq,
          k: r.partitionKey,
          d: r.data.toString('base64'),
          t: r.at,
          ...(r.id !== undefined ? { i: r.id } : {}),
          ...(src ? { src: [src.shardId, src.sequenceNumber] } : {}),
        });
      })
      .join('\n');
    const fd = openSync(segment.file, 'a');
    try {
      appendFileSync(fd, `${text}\n`);
      // On disk before the edge's reader checkpoints past these records.
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    segment.bytes += Buffer.byteLength(text) + 1;
    segment.lastSeq = records[records.length - 1]?.seq ?? segment.lastSeq;
  }

  private statePath(): string {
    return join(this.options.dir as string, 'state.json');
  }

  private saveState(): void {
    const streams: PersistedState['streams'] = {};
    for (const [name, state] of this.streams) {
      streams[name] = {
        through: this.through(state),
        above: [...state.holes],
        sources: Object.fromEntries([...state.sources].map(([shard, seq]) => [shard, seq.toString()])),
      };
    }
    const body: PersistedState = { version: 1, streams, dropped: this.dropped as PersistedState['dropped'] };
    // Durable before the edge's reader checkpoints past what it settles (see state-file.ts).
    writeStateFile(this.statePath(), body);
  }

  private deleteSettledSegments(state: StreamState): void {
    const through = this.through(state);
    // The last segment is still being written to: kept even when everything in it is settled.
    while (state.segments.length > 1 && (state.segments[0]?.lastSeq ?? Infinity) <= through) {
      const segment = state.segments.shift() as { file: string };
      rmSync(segment.file, { force: true });
    }
  }

  private recover(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const file = this.statePath();
    // A damaged copy falls back to the previous one and says so; none readable throws.
    const read = readStateFile(file, stateSchema);
    for (const problem of read.problems)
      this.options.onProblem?.(`uplink backlog state: ${problem}; using ${previousCopyPath(file)}`);
    const saved: PersistedState | undefined = read.value;
    if (saved) {
      for (const [stream, counts] of Object.entries(saved.dropped)) {
        if (this.dropped[stream]) this.dropped[stream] = counts as Partial<Record<DropReason, number>>;
      }
    }
    for (const [stream, state] of this.streams) {
      const settled = saved?.streams[stream];
      const through = settled?.through ?? 0;
      const above = new Set(settled?.above ?? []);
      for (const [shard, seq] of Object.entries(settled?.sources ?? {})) state.sources.set(shard, BigInt(seq));
      let maxSeq = through;
      const streamDir = this.streamDir(stream);
      if (!existsSync(streamDir)) {
        state.nextSeq = maxSeq + 1;
        continue;
      }
      const files = readdirSync(streamDir)
        .filter((f) => /^segment-\d+\.jsonl$/.test(f))
        .sort();
      for (const name of files) {
        const path = join(streamDir, name);
        let lastSeq = 0;
        const text = readFileSync(path, 'utf8');
        // A crash cut the last line short: end it, so the next record starts a line of its own.
        if (text !== '' && !text.endsWith('\n')) appendFileSync(path, '\n');
        for (const line of text.split('\n')) {
          if (line === '') continue;
          let value: unknown;
          try {
            value = JSON.parse(line);
          } catch {
            // A line cut short by a crash: its records were never accepted (the edge re-reads them).
            continue;
          }
          const parsed = lineSchema.safeParse(value);
          if (!parsed.success) continue;
          const r = parsed.data;
          lastSeq = Math.max(lastSeq, r.s);
          maxSeq = Math.max(maxSeq, r.s);
          if (r.src) {
            const seq = BigInt(r.src[1]);
            const seen = state.sources.get(r.src[0]);
            if (seen === undefined || seq > seen) state.sources.set(r.src[0], seq);
          }
          if (r.s <= through || above.has(r.s)) continue;
          const data = Buffer.from(r.d, 'base64');
          const record: BacklogRecord = {
            seq: r.s,
            partitionKey: r.k,
            data,
            id: r.i,
            at: r.t,
            bytes: data.byteLength + Buffer.byteLength(r.k, 'utf8'),
          };
          state.queue.push(record);
          this.totalBytes += record.bytes;
        }
        state.segments.push({ file: path, lastSeq, bytes: statSync(path).size });
      }
      state.nextSeq = maxSeq + 1;
      for (const seq of above) if (seq > this.through(state)) state.holes.add(seq);
      this.deleteSettledSegments(state);
    }
  }
}
