/**
 * The dataset version: a content hash of what an export holds, so two exports with the same
 * version hold the same images under the same labels.
 */
import { createHash } from 'node:crypto';
import type { StoredFrame } from './store/frames';
import type { LabelEntry, LabelValue } from './store/labels';

export interface LabelledFrame {
  frame: StoredFrame;
  entry: LabelEntry & { label: LabelValue };
}

/**
 * "sha256:" + the first 16 hex digits of the sha256 over the labelled frames sorted by
 * store key, one `<key> <label> <image sha256>` line each.
 */
export function datasetVersion(labelled: readonly LabelledFrame[]): string {
  const hash = createHash('sha256');
  const lines = labelled.map(({ frame, entry }) => `${frame.key} ${String(entry.label)} ${frame.image_sha256}\n`).sort();
  for (const line of lines) hash.update(line);
  return `sha256:${hash.digest('hex').slice(0, 16)}`;
}
