/**
 * Compaction of the frame store: the pack is append-only, so pruning frames means writing the
 * kept images to a new pack and the index lines pointing into it to a new index, then
 * switching both at once. A SIGKILL or power cut at any instant leaves the old store or the
 * new one, never a mix:
 *
 *   1. `images.bin.compact` and `frames.jsonl.compact` are written (in bounded steps while the
 *      home goes on serving and appending), then fsynced;
 *   2. the commit marker `compaction.commit` is written atomically (fsync, rename, folder
 *      fsync): from this instant the new store is the store;
 *   3. both `.compact` files are renamed over the live ones, the folder fsynced, the marker
 *      removed.
 *
 * Opening a folder finishes step 3 when it finds the marker (roll forward), and deletes the
 * `.compact` files when it does not (roll back: the old files were never touched).
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncFolder, removeTemporaryFiles, writeFileAtomic } from '../../functions/lib/state-file';
import { AppendFile } from './files';
import type { StoredFrame } from './frames';

export const COMPACTION_SUFFIX = '.compact';
export const COMMIT_MARKER = 'compaction.commit';

/** The files a reader should open: the new ones when a committed switch is half done. */
export function livePath(dir: string, name: string): string {
  const pending = join(dir, name + COMPACTION_SUFFIX);
  return existsSync(join(dir, COMMIT_MARKER)) && existsSync(pending) ? pending : join(dir, name);
}

/**
 * Brings a folder a compaction was interrupted in back to one whole store: rolls a committed
 * switch forward, discards an uncommitted one. Returns what it did.
 */
export function recoverCompaction(dir: string, names: readonly string[]): 'none' | 'rolled-forward' | 'rolled-back' {
  const marker = join(dir, COMMIT_MARKER);
  // A kill while the marker was being written leaves its temporary file and no marker: rolled back.
  removeTemporaryFiles(marker);
  const pending = names.filter((name) => existsSync(join(dir, name + COMPACTION_SUFFIX)));
  if (existsSync(marker)) {
    for (const name of pending) renameSync(join(dir, name + COMPACTION_SUFFIX), join(dir, name));
    fsyncFolder(dir);
    rmSync(marker, { force: true });
    fsyncFolder(dir);
    return 'rolled-forward';
  }
  if (pending.length === 0) return 'none';
  for (const name of pending) rmSync(join(dir, name + COMPACTION_SUFFIX), { force: true });
  fsyncFolder(dir);
  return 'rolled-back';
}

type Span = [number, number];

/** What a compaction needs of the frame store it compacts. */
export interface CompactionSource {
  readonly dir: string;
  readonly list: readonly StoredFrame[];
  readSpan(span: Span): Buffer;
  /** Swaps in the new files and forgets the pruned frames (called inside the commit). */
  adopt(result: { kept: Map<StoredFrame, { original: Span | null; pixels: Span }>; pruned: StoredFrame[] }): void;
}

/** How a finished compaction went. */
export interface CompactionResult {
  pruned: StoredFrame[];
  kept: number;
  /** Bytes of pack + index before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** The longest the event loop was held by one step or the commit (ms). */
  longestStepMs: number;
  steps: number;
}

/**
 * One compaction of a frame store: construct, call {@link step} until it returns true (each
 * call copies at most `framesPerStep` frames), then {@link commit}. Frames added meanwhile are
 * kept; a frame chosen for pruning that gets a label before the commit is kept too.
 */
export class Compaction {
  private readonly snapshot: readonly StoredFrame[];
  private readonly pack: AppendFile;
  private readonly index: AppendFile;
  private readonly copied = new Map<StoredFrame, { original: Span | null; pixels: Span }>();
  /** Frames of the snapshot left out as chosen for pruning (kept after all if labelled by the commit). */
  private readonly skipped: StoredFrame[] = [];
  private position = 0;
  private closed = false;
  private longestStepMs = 0;
  private steps = 0;

  constructor(
    private readonly source: CompactionSource,
    private readonly files: { pack: string; index: string },
    private readonly prune: ReadonlySet<string>,
    private readonly isLabelled: (key: string) => boolean,
    private readonly bytesBefore: number,
  ) {
    // A marker left by a switch that failed half way in this process: only a restart may finish
    // it (this process's memory still points into the old files).
    if (existsSync(join(source.dir, COMMIT_MARKER))) {
      throw new Error(`a compaction of ${source.dir} was committed but not finished: restart the home to finish it`);
    }
    recoverCompaction(source.dir, [files.pack, files.index]);
    this.snapshot = [...source.list];
    this.pack = new AppendFile(join(source.dir, files.pack + COMPACTION_SUFFIX), { lines: false });
    this.index = new AppendFile(join(source.dir, files.index + COMPACTION_SUFFIX), { lines: true });
  }

  private timed<T>(work: () => T): T {
    const started = performance.now();
    try {
      return work();
    } finally {
      this.steps += 1;
      this.longestStepMs = Math.max(this.longestStepMs, performance.now() - started);
    }
  }

  /** Copies the images and lines of `frames` to the new files (one append each). */
  private copy(frames: readonly StoredFrame[]): void {
    if (frames.length === 0) return;
    const chunks: Buffer[] = [];
    const lines: string[] = [];
    let offset = this.pack.size;
    for (const frame of frames) {
      let original: Span | null = null;
      if (frame.original) {
        const bytes = this.source.readSpan(frame.original);
        chunks.push(bytes);
        original = [offset, bytes.length];
        offset += bytes.length;
      }
      const pixels = this.source.readSpan(frame.pixels);
      chunks.push(pixels);
      const pixelSpan: Span = [offset, pixels.length];
      offset += pixels.length;
      this.copied.set(frame, { original, pixels: pixelSpan });
      lines.push(JSON.stringify({ ...frame, original, pixels: pixelSpan }));
    }
    this.pack.append(Buffer.concat(chunks));
    this.index.append(`${lines.join('\n')}\n`);
  }

  /** Copies the kept ones of the next `framesPerStep` frames; true when all are copied. */
  step(framesPerStep: number): boolean {
    if (this.position >= this.snapshot.length) return true;
    return this.timed(() => {
      const batch: StoredFrame[] = [];
      const end = Math.min(this.snapshot.length, this.position + framesPerStep);
      for (; this.position < end; this.position += 1) {
        const frame = this.snapshot[this.position] as StoredFrame;
        if (this.prune.has(frame.key)) this.skipped.push(frame);
        else batch.push(frame);
      }
      this.copy(batch);
      return this.position >= this.snapshot.length;
    });
  }

  /**
   * Makes the copied bulk durable off the event loop (the file system's thread pool), so the
   * commit only fsyncs what arrived since.
   */
  async flush(): Promise<void> {
    await Promise.all([this.pack.syncInBackground(), this.index.syncInBackground()]);
  }

  /**
   * Copies what arrived (or was labelled) since the steps, makes the new files durable,
   * writes the commit marker and switches the store over. Synchronous: nothing is appended or
   * labelled in between.
   */
  commit(): CompactionResult {
    while (!this.step(Number.MAX_SAFE_INTEGER));
    const { pruned, bytesAfter } = this.timed(() => {
      const pruned: StoredFrame[] = [];
      // Late: frames chosen for pruning that got a label since, and frames that arrived since
      // the snapshot (the list only grows at its end while a compaction runs).
      const late: StoredFrame[] = [];
      for (const frame of this.skipped) {
        if (this.isLabelled(frame.key)) late.push(frame);
        else pruned.push(frame);
      }
      for (let i = this.snapshot.length; i < this.source.list.length; i += 1) late.push(this.source.list[i] as StoredFrame);
      this.copy(late);
      this.pack.sync();
      this.index.sync();
      const bytesAfter = this.pack.size + this.index.size;
      this.closeFiles();
      const dir = this.source.dir;
      writeFileAtomic(join(dir, COMMIT_MARKER), `${JSON.stringify({ at: new Date().toISOString() })}\n`);
      recoverCompaction(dir, [this.files.pack, this.files.index]);
      this.source.adopt({ kept: this.copied, pruned });
      return { pruned, bytesAfter };
    });
    return {
      pruned,
      kept: this.copied.size,
      bytesBefore: this.bytesBefore,
      bytesAfter,
      longestStepMs: this.longestStepMs,
      steps: this.steps,
    };
  }

  /** Gives up (the home is closing): the new files go, the old store was never touched. */
  abandon(): void {
    this.closeFiles();
    // Once the marker is written the new store is the store: the next start finishes the switch.
    if (existsSync(join(this.source.dir, COMMIT_MARKER))) return;
    recoverCompaction(this.source.dir, [this.files.pack, this.files.index]);
  }

  private closeFiles(): void {
    if (this.closed) return;
    this.closed = true;
    this.pack.close();
    this.index.close();
  }
}
