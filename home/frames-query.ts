/**
 * `GET /api/frames`: the query string checked with zod, then filter, sort and keyset paging
 * over the in-memory frames. A cursor names the last frame of the previous page by its sort
 * value and arrival number, so frames arriving between two pages neither repeat nor vanish.
 */
import { z } from 'zod';
import { digitSchema } from '../functions/lib/contracts';
import type { HomeStore, LabelEntry, StoredFrame } from './store';
import { NOT_A_DIGIT } from './store/labels';

export const SORTS = ['newest', 'oldest', 'confidence', 'margin', 'entropy'] as const;
export const STATUSES = ['unlabelled', 'labelled', 'all'] as const;
export const DEFAULT_LIMIT = 60;
export const MAX_LIMIT = 500;

const digitParam = z
  .string()
  .regex(/^[0-9]$/, 'must be a digit 0-9')
  .transform(Number)
  .pipe(digitSchema);

export const framesQuerySchema = z.object({
  status: z.enum(STATUSES).default('unlabelled'),
  camera: z.string().min(1).optional(),
  predicted: digitParam.optional(),
  reason: z.string().min(1).optional(),
  model_version: z.string().min(1).optional(),
  label: z.union([z.literal(NOT_A_DIGIT), digitParam]).optional(),
  sort: z.enum(SORTS).default('newest'),
  limit: z
    .string()
    .regex(/^[0-9]+$/, `must be a whole number from 1 to ${MAX_LIMIT}`)
    .transform(Number)
    .pipe(z.number().int().min(1, `must be from 1 to ${MAX_LIMIT}`).max(MAX_LIMIT, `must be from 1 to ${MAX_LIMIT}`))
    .default(DEFAULT_LIMIT),
  cursor: z.string().optional(),
});
export type FramesQuery = z.infer<typeof framesQuerySchema>;

/** A frame as the API returns it. */
export interface FrameView {
  frame_id: string;
  camera: string;
  timestamp: string;
  received_at: string;
  result_class: number;
  result_probability: number;
  probabilities: number[];
  margin: number;
  entropy: number;
  reason: string;
  model_version: string;
  image_url: string | null;
  prepared_url: string;
  image_omitted?: boolean;
  /** The label the camera sent with the frame (test sets), not a person's. */
  camera_label?: number;
  label?: number | typeof NOT_A_DIGIT;
  labelled_at?: string;
}

/** The API shape of a stored frame with its current label. */
export function frameView(frame: StoredFrame, label: LabelEntry | undefined): FrameView {
  const id = encodeURIComponent(frame.key);
  const view: FrameView = {
    frame_id: frame.key,
    camera: frame.camera,
    timestamp: frame.timestamp,
    received_at: frame.received_at,
    result_class: frame.result_class,
    result_probability: frame.result_probability,
    probabilities: frame.predictions,
    margin: frame.margin,
    entropy: frame.entropy,
    reason: frame.reason,
    model_version: frame.model_version,
    image_url: frame.original ? `/api/frames/${id}/image.png` : null,
    prepared_url: `/api/frames/${id}/prepared.png`,
  };
  if (frame.image_omitted) view.image_omitted = true;
  if (frame.label !== undefined) view.camera_label = frame.label;
  if (label && label.label !== null) {
    view.label = label.label;
    view.labelled_at = label.labelled_at;
  }
  return view;
}

/** The cursor was not made by this server (or was edited). */
export class CursorError extends Error {}

type Cursor = [number, number];

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

function decodeCursor(text: string): Cursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && value.every((n) => typeof n === 'number' && Number.isFinite(n))) {
      return value as Cursor;
    }
  } catch {
    // Falls through to the error below.
  }
  throw new CursorError('cursor is not one this server gave out: pass the "next" value of the previous page unchanged');
}

/** Sort value per frame; frames are ordered by it ascending, then by arrival newest first. */
function sortValue(sort: FramesQuery['sort'], frame: StoredFrame): number {
  switch (sort) {
    case 'newest':
      return -frame.seq;
    case 'oldest':
      return frame.seq;
    case 'confidence':
      return frame.result_probability;
    case 'margin':
      return frame.margin;
    case 'entropy':
      return -frame.entropy;
  }
}

function after(a: Cursor, b: Cursor): boolean {
  return a[0] > b[0] || (a[0] === b[0] && a[1] < b[1]);
}

/**
 * One page of frames matching the query, the cursor of the next page (null at the end)
 * and how many match in all.
 * @throws CursorError for a cursor this server did not make.
 */
export function queryFrames(store: HomeStore, query: FramesQuery): { frames: FrameView[]; next: string | null; total: number } {
  const start = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
  const labelOf = (frame: StoredFrame): LabelEntry | null | undefined => {
    if (query.camera !== undefined && frame.camera !== query.camera) return null;
    if (query.predicted !== undefined && frame.result_class !== query.predicted) return null;
    if (query.reason !== undefined && frame.reason !== query.reason) return null;
    if (query.model_version !== undefined && frame.model_version !== query.model_version) return null;
    const label = store.labels.current(frame.key);
    const labelled = label !== undefined && label.label !== null;
    if (query.status === 'labelled' && !labelled) return null;
    if (query.status === 'unlabelled' && labelled) return null;
    if (query.label !== undefined && label?.label !== query.label) return null;
    return label;
  };
  const list = store.frames.list;
  if (query.sort === 'newest' || query.sort === 'oldest') {
    // Arrival order needs no sort and no list of matches: count them, keep one page.
    const page: FrameView[] = [];
    let total = 0;
    let more = false;
    let last: Cursor | undefined;
    const newest = query.sort === 'newest';
    for (let i = 0; i < list.length; i += 1) {
      const frame = list[newest ? list.length - 1 - i : i] as StoredFrame;
      const label = labelOf(frame);
      if (label === null) continue;
      total += 1;
      const key: Cursor = [sortValue(query.sort, frame), frame.seq];
      if (start !== undefined && !after(key, start)) continue;
      if (page.length < query.limit) {
        page.push(frameView(frame, label));
        last = key;
      } else {
        more = true;
      }
    }
    return { frames: page, next: more && last ? encodeCursor(last) : null, total };
  }
  const matching: Array<{ frame: StoredFrame; label: LabelEntry | undefined; key: Cursor }> = [];
  for (const frame of list) {
    const label = labelOf(frame);
    if (label !== null) matching.push({ frame, label, key: [sortValue(query.sort, frame), frame.seq] });
  }
  matching.sort((a, b) => (after(a.key, b.key) ? 1 : after(b.key, a.key) ? -1 : 0));
  const from = start === undefined ? 0 : matching.findIndex((m) => after(m.key, start));
  const page = from < 0 ? [] : matching.slice(from, from + query.limit);
  const last = page.at(-1);
  const more = from >= 0 && from + query.limit < matching.length;
  return {
    frames: page.map((m) => frameView(m.frame, m.label)),
    next: more && last ? encodeCursor(last.key) : null,
    total: matching.length,
  };
}
