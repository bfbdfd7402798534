/**
 * The label log: `labels.jsonl`, append-only, each append fsync'd before the caller answers,
 * so an acknowledged label survives a crash. A frame's label is its latest entry's; undo is
 * a later entry that restores the label the undone entry replaced.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { digitSchema } from '../../functions/lib/contracts';
import { AppendFile, readJsonLines } from './files';

export const NOT_A_DIGIT = 'not_a_digit';

/** A label: a digit, or a frame that shows no digit at all. */
export const labelValueSchema = z.union([digitSchema, z.literal(NOT_A_DIGIT)]);
export type LabelValue = z.infer<typeof labelValueSchema>;

export const labelEntrySchema = z.object({
  seq: z.number().int().nonnegative(),
  /** The frame's store key. */
  frame_id: z.string(),
  /** null: back to unlabelled (an undo of the frame's first label). */
  label: labelValueSchema.nullable(),
  /** The label this entry replaced. */
  previous: labelValueSchema.nullable(),
  predicted: digitSchema,
  model_version: z.string(),
  camera: z.string(),
  labelled_at: z.string(),
  /** "accept" took the model's guess; "undo" reverts the entry `undoes`. */
  action: z.enum(['label', 'accept', 'undo']),
  undoes: z.number().int().nonnegative().optional(),
});
export type LabelEntry = z.infer<typeof labelEntrySchema>;

/** What a new entry needs besides what the log assigns (seq, previous, time). */
export type LabelRequest = Pick<
  LabelEntry,
  'frame_id' | 'label' | 'predicted' | 'model_version' | 'camera' | 'action' | 'undoes'
>;

export const LABELS_FILE = 'labels.jsonl';

export class LabelLog {
  /** Every entry, in order. */
  readonly entries: LabelEntry[] = [];
  /** The latest entry per frame. */
  private readonly latest = new Map<string, LabelEntry>();
  /** Seqs of entries an undo has reverted. */
  private readonly undone = new Set<number>();
  readonly unreadableLines: number;
  private readonly file: AppendFile;

  constructor(dir: string, options: { readOnly?: boolean } = {}) {
    const { values, unreadable } = readJsonLines(join(dir, LABELS_FILE));
    let bad = unreadable;
    for (const value of values) {
      const parsed = labelEntrySchema.safeParse(value);
      if (parsed.success) this.apply(parsed.data);
      else bad += 1;
    }
    this.unreadableLines = bad;
    this.file = new AppendFile(join(dir, LABELS_FILE), { lines: true, readOnly: options.readOnly ?? false });
  }

  private apply(entry: LabelEntry): void {
    this.entries.push(entry);
    this.latest.set(entry.frame_id, entry);
    if (entry.undoes !== undefined) this.undone.add(entry.undoes);
  }

  /** The frame's current label entry (its label may be null after an undo). */
  current(frameId: string): LabelEntry | undefined {
    return this.latest.get(frameId);
  }

  /** The frame's current label, or null. */
  labelOf(frameId: string): LabelValue | null {
    return this.latest.get(frameId)?.label ?? null;
  }

  /** Frames and their current entries (label may be null). */
  currentEntries(): IterableIterator<LabelEntry> {
    return this.latest.values();
  }

  /**
   * Appends entries (one write, one fsync) and returns them. Each records the label it
   * replaced, so the log alone tells the whole history.
   */
  append(requests: readonly LabelRequest[], now = new Date()): LabelEntry[] {
    let seq = (this.entries.at(-1)?.seq ?? -1) + 1;
    const previousInBatch = new Map<string, LabelValue | null>();
    const entries = requests.map((request): LabelEntry => {
      const previous = previousInBatch.has(request.frame_id)
        ? (previousInBatch.get(request.frame_id) as LabelValue | null)
        : this.labelOf(request.frame_id);
      previousInBatch.set(request.frame_id, request.label);
      const entry: LabelEntry = {
        seq,
        frame_id: request.frame_id,
        label: request.label,
        previous,
        predicted: request.predicted,
        model_version: request.model_version,
        camera: request.camera,
        labelled_at: now.toISOString(),
        action: request.action,
      };
      if (request.undoes !== undefined) entry.undoes = request.undoes;
      seq += 1;
      return entry;
    });
    if (entries.length === 0) return entries;
    this.file.append(`${entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
    this.file.sync();
    for (const entry of entries) this.apply(entry);
    return entries;
  }

  /**
   * The entry an undo would revert: the most recent label or accept entry not yet undone
   * (of `frameId` when given), or undefined when there is none.
   */
  undoable(frameId?: string): LabelEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i -= 1) {
      const entry = this.entries[i] as LabelEntry;
      if (entry.action === 'undo' || this.undone.has(entry.seq)) continue;
      if (frameId === undefined || entry.frame_id === frameId) return entry;
    }
    return undefined;
  }

  close(): void {
    this.file.close();
  }
}
