/**
 * Writes labelled datasets in the home's export layout (DIR/<digit>/<frame>.png,
 * DIR/metadata.jsonl) for the retraining tests, from MNIST digits rendered as the original
 * camera rendered them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadMnist, mnistImage, renderOriginalFrameSync, type MnistSet } from '../../functions/lib/mnist';

export interface DatasetEntry {
  frameId: string;
  label: number;
  png: Buffer;
}

/** MNIST images `from`..`from+count-1` of `set` as labelled frames; `relabel` changes the label written. */
export function mnistEntries(
  set: MnistSet,
  from: number,
  count: number,
  relabel: (label: number) => number = (l) => l,
): DatasetEntry[] {
  const mnist = loadMnist(set);
  return Array.from({ length: count }, (_, k) => ({
    frameId: `shardId-000000000000-${set}-${from + k}`,
    label: relabel(mnist.labels[from + k]!),
    png: renderOriginalFrameSync(mnistImage(mnist, from + k)),
  }));
}

/** Writes `entries` into `dir` as an export would; returns `dir`. */
export function writeDataset(dir: string, entries: readonly DatasetEntry[]): string {
  const lines = entries.map((e) => {
    const fileName = `${e.label}/${e.frameId}.png`;
    mkdirSync(join(dir, String(e.label)), { recursive: true });
    writeFileSync(join(dir, fileName), e.png);
    return JSON.stringify({
      file_name: fileName,
      label: e.label,
      camera: 'Test-cam',
      frame_id: e.frameId,
      model_version: '1.0.0',
      predicted: e.label,
      probabilities: null,
      labelled_at: '2026-12-06T00:00:00.000Z',
    });
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metadata.jsonl'), `${lines.join('\n')}\n`);
  return dir;
}
