import { z } from 'zod';
import { previousCopyPath, readStateFile, type StateFileRead, writeStateFile } from '../../functions/lib/state-file';
import type { WindowState } from './types';

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
 * (functions/lib/state-file.ts: at most every {@link CHECKPOINT_WRITE_INTERVAL_MS} and at stop) so a
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
