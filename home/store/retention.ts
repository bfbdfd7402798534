/**
 * Retention: the bound on the home's data folder and the choice of what to prune to meet it.
 * Only frames nobody labelled are ever pruned, oldest first: a frame with any entry in the
 * label log is part of the dataset (or of its history) and stays with its images. The choice
 * is pure; {@link ../compaction} carries it out.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The bound: frames older than `keepDays`, and the oldest beyond `maxBytes`, are pruned. */
export interface RetentionSettings {
  /** Unlabelled frames received longer ago than this are pruned; null: no age bound. */
  keepDays: number | null;
  /** The data folder's size the home keeps under (bytes); null: no size bound. */
  maxBytes: number | null;
}

export const DEFAULT_KEEP_DAYS = 30;
export const DEFAULT_MAX_GB = 10;
export const DEFAULT_RETENTION: RetentionSettings = { keepDays: DEFAULT_KEEP_DAYS, maxBytes: DEFAULT_MAX_GB * 1e9 };
/** How often a running home checks its bound. */
export const RETENTION_CHECK_MS = 60_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A retention flag that is not a number the home can use. */
export class RetentionSettingError extends Error {}

function parseBound(flag: string, text: string | undefined, fallback: number | null, max: number): number | null {
  if (text === undefined || text === '') return fallback;
  if (text === 'off') return null;
  const value = Number(text);
  if (!/^[0-9]*\.?[0-9]+$/.test(text.trim()) || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new RetentionSettingError(
      `--${flag} must be a number above 0 and at most ${max}, or "off"; got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/**
 * The bound from `--keep-days` and `--max-gb` (text as given; unset keeps the default).
 * @throws RetentionSettingError with a sentence naming the flag.
 */
export function parseRetention(given: { keepDays?: string | undefined; maxGb?: string | undefined }): RetentionSettings {
  const keepDays = parseBound('keep-days', given.keepDays, DEFAULT_KEEP_DAYS, 36_500);
  const maxGb = parseBound('max-gb', given.maxGb, DEFAULT_MAX_GB, 1_000_000);
  return { keepDays, maxBytes: maxGb === null ? null : Math.round(maxGb * 1e9) };
}

/** What the choice needs to know of a frame. */
export interface RetentionCandidate {
  key: string;
  /** Arrival order in the data folder: lower is older. */
  seq: number;
  received_at: string;
  /** Bytes pruning it frees: its images in the pack and its line in the index. */
  bytes: number;
}

/** Frames to prune and why. */
export interface PrunePlan {
  keys: Set<string>;
  bytes: number;
  /** Pruned for their age, and (beyond those) for the size bound. */
  byAge: number;
  bySize: number;
  /** Bytes still over `maxBytes` once every unlabelled frame is gone (labelled frames stay). */
  overBy: number;
}

/**
 * Chooses the frames to prune: every unlabelled frame received before now - keepDays, then
 * the oldest remaining unlabelled frames until the folder (`folderBytes`) fits in maxBytes.
 * Frames with a label log entry (`labelled`) are never chosen.
 */
export function choosePrune(
  frames: Iterable<RetentionCandidate>,
  labelled: (key: string) => boolean,
  settings: RetentionSettings,
  folderBytes: number,
  now: number,
): PrunePlan {
  const unlabelled = [...frames].filter((f) => !labelled(f.key)).sort((a, b) => a.seq - b.seq);
  const plan: PrunePlan = { keys: new Set(), bytes: 0, byAge: 0, bySize: 0, overBy: 0 };
  const cutoff = settings.keepDays === null ? -Infinity : now - settings.keepDays * DAY_MS;
  const rest: RetentionCandidate[] = [];
  for (const frame of unlabelled) {
    const received = Date.parse(frame.received_at);
    if (Number.isFinite(received) && received < cutoff) {
      plan.keys.add(frame.key);
      plan.bytes += frame.bytes;
      plan.byAge += 1;
    } else {
      rest.push(frame);
    }
  }
  if (settings.maxBytes !== null) {
    for (const frame of rest) {
      if (folderBytes - plan.bytes <= settings.maxBytes) break;
      plan.keys.add(frame.key);
      plan.bytes += frame.bytes;
      plan.bySize += 1;
    }
    plan.overBy = Math.max(0, folderBytes - plan.bytes - settings.maxBytes);
  }
  return plan;
}

/** Bytes of every file under `dir` (exports included: they take the same disk). */
export function folderBytes(dir: string): number {
  let total = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += folderBytes(path);
    else if (entry.isFile()) {
      try {
        total += statSync(path).size;
      } catch {
        // Gone between the listing and the stat (a temporary file): it takes nothing now.
      }
    }
  }
  return total;
}
