/**
 * Where the aggregator keeps each shard's {@link CountedFrames}: in the container's memory
 * (module scope of the handler, so it lives as long as the Lambda container or the local
 * worker), and, when `METRICS_COUNTED_FRAMES_DIR` is set, also in one crash-consistent state
 * file per shard in that folder, so a restarted process (or another container of the same
 * function on the same machine) starts from what the last closed window left.
 *
 * The local pipeline sets the variable (a folder beside its checkpoints); on AWS it is unset:
 * a container remembers the windows it closed itself, which covers a redelivery when the
 * shard's later window runs in the same warm container, and misses it after a cold start or
 * when another container takes the shard. A durable store (a DynamoDB table keyed by shard
 * and digest, written at each window's end, with a TTL) would close that gap at the cost of a
 * read per batch and a write per window; it is not built.
 *
 * Bounded: {@link MAX_COUNTED_FRAMES} digests per shard, {@link MAX_COUNTED_SHARDS} shards per
 * container (the least recently used shard is forgotten first).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { readStateFile, writeStateFile } from '../state-file';
import { CountedFrames, countedFramesStateSchema, MAX_COUNTED_FRAMES } from './counted-frames';

/** Shards (of predictions, rejects and shadow scores) remembered per container. */
/** Folder of the counted-frames files a local runtime keeps beside its checkpoints. */
export const COUNTED_FRAMES_FOLDER = 'counted-frames';

export const MAX_COUNTED_SHARDS = 4;

/** Reports a memory that could not be read or written; the window goes on without it. */
export type CountedFramesProblem = (message: string, details: Record<string, unknown>) => void;

/** Each shard's memory of the frames its written documents counted. */
export interface CountedFramesStore {
  /** The shard's memory, as fresh as the store can make it. Never throws. */
  forShard(shard: string): CountedFrames;
  /**
   * Adds a written document's frames to the shard's memory and, with a folder, saves it before
   * returning (so before the runner may checkpoint past the window). Never throws.
   */
  remember(shard: string, documentId: string, digests: string): void;
}

/** The state file of a shard's memory (shard names hold `:` for rejects and shadow windows). */
export function countedFramesFile(dir: string, shard: string): string {
  return join(dir, `${shard.replace(/[^A-Za-z0-9._-]/g, '+')}.json`);
}

interface Entry {
  memory: CountedFrames;
  /** Identity of the file this memory was last read from or written to ('' when none). */
  fileVersion: string;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Inode, size and mtime: a rename over the file (every write) changes the inode. */
function fileVersion(path: string): string {
  const stat = statSync(path, { throwIfNoEntry: false });
  return stat ? `${stat.ino}:${stat.size}:${stat.mtimeMs}` : '';
}

/**
 * Creates the store: memory only without `dir`, memory backed by state files with it.
 *
 * @param dir `METRICS_COUNTED_FRAMES_DIR`; undefined on AWS.
 * @param problem called when a file cannot be read or written (the memory then carries on
 *   without it: a repeat may be counted again, a frame is never dropped for it).
 */
export function createCountedFramesStore(
  dir: string | undefined,
  problem: CountedFramesProblem,
  maxFrames: number = MAX_COUNTED_FRAMES,
): CountedFramesStore {
  const shards = new Map<string, Entry>();

  const touch = (shard: string, entry: Entry): void => {
    // Map order is insertion order: re-inserting makes this shard the most recently used.
    shards.delete(shard);
    shards.set(shard, entry);
    for (const oldest of shards.keys()) {
      if (shards.size <= MAX_COUNTED_SHARDS) break;
      shards.delete(oldest);
    }
  };

  const load = (shard: string): Entry => {
    const known = shards.get(shard);
    if (!dir) return known ?? { memory: new CountedFrames(maxFrames), fileVersion: '' };
    const path = countedFramesFile(dir, shard);
    const version = fileVersion(path);
    if (known && known.fileVersion === version) return known;
    try {
      const read = readStateFile(path, countedFramesStateSchema);
      if (read.problems.length > 0)
        problem('counted frames file damaged, its previous copy used', { path, problems: read.problems });
      const memory = read.value ? CountedFrames.fromState(read.value, maxFrames) : new CountedFrames(maxFrames);
      return { memory, fileVersion: version };
    } catch (error: unknown) {
      problem('counted frames file unreadable, starting this shard without it', { path, error: describe(error) });
      return { memory: known?.memory ?? new CountedFrames(maxFrames), fileVersion: version };
    }
  };

  return {
    forShard(shard) {
      const entry = load(shard);
      touch(shard, entry);
      return entry.memory;
    },
    remember(shard, documentId, digests) {
      const entry = load(shard);
      try {
        entry.memory.remember(documentId, digests);
      } catch (error: unknown) {
        problem('counted frames not remembered', { shard, documentId, error: describe(error) });
        return;
      }
      if (dir) {
        const path = countedFramesFile(dir, shard);
        try {
          writeStateFile(path, entry.memory.toState());
          entry.fileVersion = fileVersion(path);
        } catch (error: unknown) {
          problem('counted frames file not written', { path, error: describe(error) });
        }
      }
      touch(shard, entry);
    },
  };
}
