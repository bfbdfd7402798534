/**
 * Where the camera source's frames come from: the MNIST test set rendered as the original
 * ImageSource rendered it, or a folder of PNG files. Both are lazy async generators, so a
 * `repeat` of 0 (forever) costs no memory.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../mnist';

export interface SourceFrame {
  /** PNG file bytes. */
  png: Buffer;
  /** The true digit when the source knows it. */
  label?: number;
}

/** Passes over a source: a positive count, or 0 for forever (the original's `repeat`). */
export type Repeat = number;

/**
 * The MNIST test set (10,000 frames per pass), each rendered as the original did: inverted
 * (black digit on white paper), 28x28 RGB PNG, with its label.
 */
export async function* mnistFrames(repeat: Repeat = 1): AsyncGenerator<SourceFrame> {
  const data = loadMnist('t10k');
  for (let pass = 0; repeat === 0 || pass < repeat; pass++) {
    for (let i = 0; i < data.count; i++) {
      yield { png: renderOriginalFrameSync(mnistImage(data, i)), label: data.labels[i] as number };
    }
  }
}

/**
 * The label a file name states: a single digit followed by `_`, `-` or `.` at the start
 * (`7.png`, `3_0001.png`, `0-scan.png`). Any other name is unlabelled.
 */
export function labelFromFileName(name: string): number | undefined {
  const match = /^([0-9])[_.-]/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** Sorted `*.png` file names (case-insensitive extension) in a folder. */
export async function pngFilesIn(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.toLowerCase().endsWith('.png'))
    .map((entry) => entry.name)
    .sort();
}

/**
 * The `*.png` files of a folder in name order, each read when its turn comes, labelled per
 * {@link labelFromFileName}. The files are sent as they are: the contract is PNG, and the
 * classify stage rejects anything else with a reason.
 *
 * @throws Error when the folder is missing or holds no PNG file.
 */
export async function* folderFrames(folder: string, repeat: Repeat = 1): AsyncGenerator<SourceFrame> {
  const names = await pngFilesIn(folder);
  if (names.length === 0) throw new Error(`no *.png files in ${folder}`);
  for (let pass = 0; repeat === 0 || pass < repeat; pass++) {
    for (const name of names) {
      const label = labelFromFileName(name);
      const png = await readFile(join(folder, name));
      yield label === undefined ? { png } : { png, label };
    }
  }
}

/** `mnist` (the default) or a folder path, as the original's `source` parameter. */
export function framesFrom(source: string, repeat: Repeat): AsyncGenerator<SourceFrame> {
  return source === 'mnist' ? mnistFrames(repeat) : folderFrames(source, repeat);
}
