/**
 * Rejected frames: counts per reason over time and the latest few samples of each reason.
 * `rejected.jsonl` keeps one slim line per reject (the record with a short payload preview
 * instead of the 4 KB payload), appended once per batch and compacted at start to the last
 * {@link REJECTS_KEPT} lines.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { rejectedImageSchema, type RejectedImage } from '../../functions/lib/contracts';
import { REJECT_ADVICE, type RejectReason } from '../../functions/lib/errors';
import { AppendFile, readJsonLines, rewriteFile } from './files';

export const REJECTED_FILE = 'rejected.jsonl';
/** Reject lines kept across restarts. */
export const REJECTS_KEPT = 100_000;
/** Reject frame_ids remembered to drop redeliveries. */
export const REJECT_IDS_KEPT = 200_000;
/** Samples shown per reason. */
export const SAMPLES_PER_REASON = 5;
/** Bytes of the payload shown in a preview. */
export const PREVIEW_BYTES = 160;
/** Width of a bucket of the counts over time. */
export const SERIES_BUCKET_MS = 60_000;
/** Buckets served (the most recent ones). */
export const SERIES_BUCKETS = 120;

export const storedRejectSchema = rejectedImageSchema.omit({ payload: true }).extend({ payload_preview: z.string() });
export type StoredReject = z.infer<typeof storedRejectSchema>;

/**
 * The first bytes of a payload as text a person can read: printable ASCII kept, every other
 * byte shown as a dot (a PNG shows as `.PNG....IHDR`, a JSON record as itself).
 */
export function payloadPreview(base64: string): string {
  const bytes = Buffer.from(base64, 'base64').subarray(0, PREVIEW_BYTES);
  let text = '';
  for (const byte of bytes) text += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '.';
  return text;
}

export interface RejectReasonView {
  reason: string;
  count: number;
  hint: string;
  samples: Array<
    Pick<StoredReject, 'frame_id' | 'camera' | 'timestamp' | 'error' | 'received_at' | 'payload_bytes' | 'payload_preview'>
  >;
}

export class RejectStore {
  private readonly counts = new Map<string, number>();
  private readonly samples = new Map<string, StoredReject[]>();
  /** Counts per reason per minute of `received_at`. */
  private readonly series = new Map<number, Record<string, number>>();
  private readonly ids = new Set<string>();
  readonly unreadableLines: number;
  private readonly file: AppendFile;

  constructor(dir: string, options: { readOnly?: boolean } = {}) {
    const path = join(dir, REJECTED_FILE);
    const { values, unreadable } = readJsonLines(path);
    let bad = unreadable;
    const kept: StoredReject[] = [];
    for (const value of values.slice(-REJECTS_KEPT)) {
      const parsed = storedRejectSchema.safeParse(value);
      if (parsed.success && !this.ids.has(parsed.data.frame_id)) {
        this.count(parsed.data);
        kept.push(parsed.data);
      } else {
        bad += 1;
      }
    }
    this.unreadableLines = bad;
    if (!options.readOnly && kept.length !== values.length) rewriteFile(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    this.file = new AppendFile(path, { lines: true, readOnly: options.readOnly ?? false });
  }

  private count(reject: StoredReject): void {
    this.ids.add(reject.frame_id);
    // A redelivery repeats recent records only: the latest ids are enough, and bounded.
    if (this.ids.size > REJECT_IDS_KEPT) {
      const oldest = this.ids.values().next();
      if (!oldest.done) this.ids.delete(oldest.value);
    }
    this.counts.set(reject.reason, (this.counts.get(reject.reason) ?? 0) + 1);
    const samples = this.samples.get(reject.reason) ?? [];
    samples.push(reject);
    if (samples.length > SAMPLES_PER_REASON) samples.shift();
    this.samples.set(reject.reason, samples);
    const at = Date.parse(reject.received_at);
    if (Number.isFinite(at)) {
      const bucket = Math.floor(at / SERIES_BUCKET_MS) * SERIES_BUCKET_MS;
      const counts = this.series.get(bucket) ?? {};
      counts[reject.reason] = (counts[reject.reason] ?? 0) + 1;
      this.series.set(bucket, counts);
    }
  }

  /** Stores a batch of rejects (one append); redeliveries (same frame_id) are dropped. */
  add(records: readonly RejectedImage[]): { added: number; duplicates: number } {
    const lines: string[] = [];
    let duplicates = 0;
    for (const record of records) {
      if (this.ids.has(record.frame_id)) {
        duplicates += 1;
        continue;
      }
      const { payload, ...rest } = record;
      const stored: StoredReject = { ...rest, payload_preview: payloadPreview(payload) };
      this.count(stored);
      lines.push(JSON.stringify(stored));
    }
    if (lines.length > 0) this.file.append(`${lines.join('\n')}\n`);
    return { added: lines.length, duplicates };
  }

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** Reasons by count (highest first) with the advice and the latest samples, and the series. */
  view(): { reasons: RejectReasonView[]; series: Array<{ start: string; counts: Record<string, number> }> } {
    const reasons = [...this.counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([reason, count]) => ({
        reason,
        count,
        hint: REJECT_ADVICE[reason as RejectReason] ?? '',
        samples: (this.samples.get(reason) ?? [])
          .slice()
          .reverse()
          .map((r) => ({
            frame_id: r.frame_id,
            camera: r.camera,
            timestamp: r.timestamp,
            error: r.error,
            received_at: r.received_at,
            payload_bytes: r.payload_bytes,
            payload_preview: r.payload_preview,
          })),
      }));
    const series = [...this.series.entries()]
      .sort((a, b) => a[0] - b[0])
      .slice(-SERIES_BUCKETS)
      .map(([start, counts]) => ({ start: new Date(start).toISOString(), counts }));
    return { reasons, series };
  }

  close(): void {
    this.file.close();
  }
}
