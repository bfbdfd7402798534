/**
 * The uncertain frames sent home: one line per frame in `frames.jsonl` (the record without
 * its images) and the images in the append-only pack `images.bin` (original PNG, then the
 * 28x28 prepared pixels), both appended once per stream batch. The index lives in memory;
 * a request never re-reads `frames.jsonl`, and an image is one positioned read of the pack.
 *
 * Store keys. A stream's `frame_id` is `<shard id>-<sequence number>`, unique within one
 * stream, but two in-memory emulators whose streams were created in the same second hand out
 * the same sequence numbers, and the data folder outlives emulators. So a frame is known by
 * its `frame_id` plus a fingerprint of its content (camera, capture time, image hash): the
 * same id with the same fingerprint is a redelivery and dropped; the same id with another
 * fingerprint is a different frame and gets the key `<frame_id>~<12 hex of its fingerprint>`.
 * Keys are also safe file names (ids that are not get a key made of their hash), so an
 * export can name files after them.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { uncertainImageSchema, type UncertainImage } from '../../functions/lib/contracts';
import { encodePng } from '../../functions/lib/png';
import { COMMIT_MARKER, Compaction, livePath, recoverCompaction } from './compaction';
import { AppendFile, readJsonLines } from './files';

export const PREPARED_SIZE = 28;

/** A store key: a safe file name on every common file system. */
export const STORE_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$/;

const span = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]);

/** One line of `frames.jsonl`: the uncertain record without its images, plus where they are. */
export const storedFrameSchema = uncertainImageSchema.omit({ image: true, prepared_image: true }).extend({
  /** The store key (see the module comment); the API calls it `frame_id`. */
  key: z.string().regex(STORE_KEY_PATTERN),
  /** Arrival order in this data folder. */
  seq: z.number().int().nonnegative(),
  fingerprint: z.string(),
  /** sha256 of the image an export writes (the original PNG, or the prepared one without it). */
  image_sha256: z.string(),
  /** Byte offset and length in the pack: the original PNG (null when omitted) and the pixels. */
  original: span.nullable(),
  pixels: span,
  margin: z.number(),
  entropy: z.number(),
});
export type StoredFrame = z.infer<typeof storedFrameSchema>;

export const FRAME_FILES = { index: 'frames.jsonl', pack: 'images.bin' } as const;
/** Pruned keys remembered to answer 410 rather than 404 (about 100 bytes each). */
export const PRUNED_KEYS_KEPT = 200_000;

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** Top probability minus the second: small means the model hesitated between two digits. */
export function marginOf(probabilities: readonly number[]): number {
  let first = 0;
  let second = 0;
  for (const p of probabilities) {
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) {
      second = p;
    }
  }
  return first - second;
}

/** Shannon entropy in bits: 0 for a sure answer, log2(10) ~ 3.32 for a uniform one. */
export function entropyOf(probabilities: readonly number[]): number {
  let h = 0;
  for (const p of probabilities) if (p > 0) h -= p * Math.log2(p);
  return h;
}

/** The 28x28 prepared pixels as an 8-bit grey PNG. */
export function preparedPng(pixels: Uint8Array): Buffer {
  return encodePng(pixels, PREPARED_SIZE, PREPARED_SIZE, 1);
}

/** The 28x28 rows as one byte array (a loop: `flat()` allocates an array per frame). */
function pixelsOf(rows: readonly (readonly number[])[]): Uint8Array {
  const pixels = new Uint8Array(PREPARED_SIZE * PREPARED_SIZE);
  let i = 0;
  for (const row of rows) for (const value of row) pixels[i++] = value;
  return pixels;
}

/** Which files the frame store is made of now: changes when a compaction switches them. */
function filesIdentity(dir: string): string {
  const inode = (name: string): string => {
    try {
      return String(statSync(join(dir, name)).ino);
    } catch {
      return 'none';
    }
  };
  return [inode(FRAME_FILES.pack), inode(FRAME_FILES.index), existsSync(join(dir, COMMIT_MARKER))].join(':');
}

export interface AddResult {
  added: StoredFrame[];
  duplicates: number;
}

/** The frames of one data folder. */
export class FrameStore {
  private readonly byKey = new Map<string, StoredFrame>();
  /** Keys per stream frame_id (more than one only after an id repeated across emulators). */
  private readonly byFrameId = new Map<string, string[]>();
  /** Every frame in arrival order. */
  readonly list: StoredFrame[] = [];
  readonly models = new Set<string>();
  /** Lines of `frames.jsonl` that could not be read back (torn or edited by hand). */
  readonly unreadableLines: number;
  private index: AppendFile;
  private pack!: AppendFile;
  private nextSeq = 0;
  /** Keys pruned by this process and when (the latest {@link PRUNED_KEYS_KEPT}), for a 410. */
  private readonly prunedAt = new Map<string, string>();
  private compaction: Compaction | undefined;

  constructor(
    readonly dir: string,
    options: { readOnly?: boolean } = {},
  ) {
    const readOnly = options.readOnly ?? false;
    // A compaction a crash interrupted is finished or undone before anything is read.
    if (!readOnly) recoverCompaction(dir, [FRAME_FILES.pack, FRAME_FILES.index]);
    let loaded = this.load(readOnly);
    // A reader beside a running home reads again if the home switched files while it read.
    for (let attempt = 0; readOnly && loaded.identity !== filesIdentity(dir) && attempt < 5; attempt += 1) {
      this.pack.close();
      this.byKey.clear();
      this.byFrameId.clear();
      this.list.length = 0;
      loaded = this.load(readOnly);
    }
    this.unreadableLines = loaded.unreadable;
    // A compaction writes frames labelled during it after the others: arrival order again.
    if (this.list.some((frame, i) => i > 0 && (this.list[i - 1] as StoredFrame).seq > frame.seq)) {
      this.list.sort((a, b) => a.seq - b.seq);
    }
    this.index = new AppendFile(loaded.indexPath, { lines: true, readOnly });
  }

  /** Opens the pack and reads the index into memory (a reader takes a switch's new files). */
  private load(readOnly: boolean): { identity: string; indexPath: string; unreadable: number } {
    const identity = filesIdentity(this.dir);
    const packPath = readOnly ? livePath(this.dir, FRAME_FILES.pack) : join(this.dir, FRAME_FILES.pack);
    const indexPath = readOnly ? livePath(this.dir, FRAME_FILES.index) : join(this.dir, FRAME_FILES.index);
    this.pack = new AppendFile(packPath, { lines: false, readOnly });
    const { values, unreadable } = readJsonLines(indexPath);
    let bad = unreadable;
    for (const value of values) {
      const parsed = storedFrameSchema.safeParse(value);
      // A line whose images lie past the pack's end was written after a crash lost the images.
      if (!parsed.success || !this.inPack(parsed.data) || this.byKey.has(parsed.data.key)) {
        bad += 1;
        continue;
      }
      this.insert(parsed.data);
    }
    return { identity, indexPath, unreadable: bad };
  }

  private inPack(frame: StoredFrame): boolean {
    const end = (s: [number, number] | null): number => (s ? s[0] + s[1] : 0);
    return Math.max(end(frame.original), end(frame.pixels)) <= this.pack.size;
  }

  private insert(frame: StoredFrame): void {
    this.byKey.set(frame.key, frame);
    const keys = this.byFrameId.get(frame.frame_id);
    if (keys) keys.push(frame.key);
    else this.byFrameId.set(frame.frame_id, [frame.key]);
    this.list.push(frame);
    this.models.add(frame.model_version);
    this.nextSeq = Math.max(this.nextSeq, frame.seq + 1);
  }

  get size(): number {
    return this.list.length;
  }

  /** The frame stored under `key`; undefined for any other string (never a file lookup). */
  get(key: string): StoredFrame | undefined {
    return this.byKey.get(key);
  }

  private keyFor(frameId: string, fingerprint: string): string | 'duplicate' {
    const keys = this.byFrameId.get(frameId) ?? [];
    for (const key of keys) if (this.byKey.get(key)?.fingerprint === fingerprint) return 'duplicate';
    const base = STORE_KEY_PATTERN.test(frameId) && frameId.length <= 160 ? frameId : `f-${sha256(frameId).slice(0, 32)}`;
    if (keys.length === 0 && !this.byKey.has(base)) return base;
    let key = `${base}~${fingerprint.slice(0, 12)}`;
    for (let n = 2; this.byKey.has(key); n += 1) key = `${base}~${fingerprint.slice(0, 12)}-${n}`;
    return key;
  }

  /**
   * Stores a batch of uncertain records: one append to the pack (their images), then one to
   * `frames.jsonl`. Records already stored (same frame_id and content) are counted, not kept.
   */
  addBatch(records: readonly UncertainImage[]): AddResult {
    const added: StoredFrame[] = [];
    const chunks: Buffer[] = [];
    let duplicates = 0;
    let offset = this.pack.size;
    const pending = new Map<string, StoredFrame>();
    for (const record of records) {
      const original = record.image ? Buffer.from(record.image, 'base64') : undefined;
      const pixels = pixelsOf(record.prepared_image);
      const imageSha = sha256(original && original.length > 0 ? original : preparedPng(pixels));
      const fingerprint = sha256(`${record.camera}\n${record.timestamp}\n${imageSha}`);
      const key = this.keyFor(record.frame_id, fingerprint);
      if (key === 'duplicate' || pending.has(`${record.frame_id}\n${fingerprint}`)) {
        duplicates += 1;
        continue;
      }
      const { image: _image, prepared_image: _prepared, ...fields } = record;
      let originalSpan: [number, number] | null = null;
      if (original && original.length > 0) {
        originalSpan = [offset, original.length];
        chunks.push(original);
        offset += original.length;
      }
      const pixelSpan: [number, number] = [offset, pixels.length];
      chunks.push(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength));
      offset += pixels.length;
      const frame: StoredFrame = {
        ...fields,
        key,
        seq: this.nextSeq + added.length,
        fingerprint,
        image_sha256: imageSha,
        original: originalSpan,
        pixels: pixelSpan,
        margin: marginOf(record.predictions),
        entropy: entropyOf(record.predictions),
      };
      pending.set(`${record.frame_id}\n${fingerprint}`, frame);
      // Reserve the key at once: a later record of this batch may carry the same id.
      this.byKey.set(key, frame);
      added.push(frame);
    }
    if (added.length === 0) return { added, duplicates };
    try {
      // Images first: a crash between the two appends leaves images no line points at
      // (harmless), never a line pointing past the pack.
      this.pack.append(Buffer.concat(chunks));
      this.index.append(`${added.map((f) => JSON.stringify(f)).join('\n')}\n`);
    } catch (error: unknown) {
      for (const frame of added) this.byKey.delete(frame.key);
      throw error;
    }
    for (const frame of added) {
      this.byKey.delete(frame.key);
      this.insert(frame);
    }
    return { added, duplicates };
  }

  /** The original PNG of a frame; undefined when it arrived without one. */
  original(frame: StoredFrame): Buffer | undefined {
    return frame.original ? this.pack.read(frame.original[0], frame.original[1]) : undefined;
  }

  /** The prepared 28x28 image as a PNG. */
  prepared(frame: StoredFrame): Buffer {
    return preparedPng(this.pack.read(frame.pixels[0], frame.pixels[1]));
  }

  /** The image an export writes: the original PNG, or the prepared one when there is none. */
  exportImage(frame: StoredFrame): Buffer {
    return this.original(frame) ?? this.prepared(frame);
  }

  /** When `key` was pruned, if this process pruned it (recently enough to remember). */
  prunedWhen(key: string): string | undefined {
    return this.prunedAt.get(key);
  }

  /** Bytes of the pack and the index: what pruning frames can shrink. */
  get bytes(): number {
    return this.pack.size + this.index.size;
  }

  /** Bytes a frame takes: its images, plus the average index line. */
  bytesOf(frame: StoredFrame): number {
    const line = this.list.length > 0 ? this.index.size / this.list.length : 0;
    return (frame.original?.[1] ?? 0) + frame.pixels[1] + Math.round(line);
  }

  /**
   * Starts a compaction that drops the frames `prune` names (those still unlabelled at the
   * commit). Only one at a time.
   */
  startCompaction(prune: ReadonlySet<string>, isLabelled: (key: string) => boolean): Compaction {
    if (this.compaction) throw new Error('a compaction of this store is already under way');
    const store = this;
    this.compaction = new Compaction(
      {
        dir: this.dir,
        get list() {
          return store.list;
        },
        readSpan: (span) => this.pack.read(span[0], span[1]),
        adopt: (result) => this.adopt(result),
      },
      FRAME_FILES,
      prune,
      isLabelled,
      this.bytes,
    );
    return this.compaction;
  }

  /** Ends the compaction under way without switching (the new files are deleted). */
  abandonCompaction(): void {
    this.compaction?.abandon();
    this.compaction = undefined;
  }

  private adopt(result: {
    kept: Map<StoredFrame, { original: [number, number] | null; pixels: [number, number] }>;
    pruned: StoredFrame[];
  }): void {
    this.compaction = undefined;
    this.pack.close();
    this.index.close();
    this.pack = new AppendFile(join(this.dir, FRAME_FILES.pack), { lines: false });
    this.index = new AppendFile(join(this.dir, FRAME_FILES.index), { lines: true });
    for (const [frame, spans] of result.kept) {
      frame.original = spans.original;
      frame.pixels = spans.pixels;
    }
    const now = new Date().toISOString();
    const gone = new Set(result.pruned);
    for (const frame of result.pruned) {
      this.byKey.delete(frame.key);
      const keys = this.byFrameId.get(frame.frame_id);
      if (keys === undefined || keys.length <= 1) this.byFrameId.delete(frame.frame_id);
      else
        this.byFrameId.set(
          frame.frame_id,
          keys.filter((key) => key !== frame.key),
        );
      this.prunedAt.set(frame.key, now);
    }
    for (const key of this.prunedAt.keys()) {
      if (this.prunedAt.size <= PRUNED_KEYS_KEPT) break;
      this.prunedAt.delete(key);
    }
    if (gone.size > 0) {
      let write = 0;
      for (const frame of this.list) if (!gone.has(frame)) this.list[write++] = frame;
      this.list.length = write;
    }
  }

  close(): void {
    this.abandonCompaction();
    this.index.close();
    this.pack.close();
  }
}
