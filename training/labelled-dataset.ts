/**
 * Reads a labelled dataset in the home's export layout (ImageFolder):
 *
 *   DIR/<digit>/<file>.png      the frames, one folder per label 0-9
 *   DIR/metadata.jsonl          one line per frame: { file_name, label, frame_id, camera?, ... }
 *   DIR/dataset.json            { version, counts, created_at } (optional)
 *
 * and sends every frame through the production preparation (preparePng), so a fine-tune
 * sees exactly what the edge will score. Every problem is a DatasetError whose message
 * names the folder or file and says what is wrong.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { preparePng } from '../functions/lib/prepare';

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

export const METADATA_FILE = 'metadata.jsonl';
export const DATASET_FILE = 'dataset.json';

const metadataLine = z.looseObject({
  file_name: z.string().min(1),
  label: z.number().int().min(0).max(9),
  frame_id: z.string().min(1),
  camera: z.string().optional(),
  model_version: z.string().nullable().optional(),
  predicted: z.number().int().min(0).max(9).nullable().optional(),
});

const datasetJson = z.looseObject({ version: z.string().min(1) });

/** One labelled frame, prepared. */
export interface DatasetFrame {
  frameId: string;
  label: number;
  camera: string | null;
  /** Path relative to the dataset folder. */
  file: string;
  /** The 28x28 prepared image (ink 255), as the edge scores it. */
  pixels: Uint8Array;
}

export interface LabelledDataset {
  dir: string;
  version: string;
  /** Digit frames the preparation found ink in: the ones trained on or held out. */
  frames: DatasetFrame[];
  /** Labelled as a digit, but the preparation found no ink (cannot be trained on; counted). */
  preparedBlank: string[];
  perClass: Record<string, number>;
}

/** Share of the labelled frames held out of training (by frame_id hash). */
export const DEFAULT_HELD_OUT_SHARE = 0.2;

/**
 * True when `frameId` belongs to the held-out split: the first 32 bits of
 * sha256("held-out:" + frame_id) below `share` of 2^32. The same frame is held out in
 * every export and every run, however the dataset grows, so it is never trained on.
 */
export function isHeldOut(frameId: string, share = DEFAULT_HELD_OUT_SHARE): boolean {
  const digest = createHash('sha256').update(`held-out:${frameId}`).digest();
  return digest.readUInt32BE(0) < share * 2 ** 32;
}

/** Splits frames into training and held-out by {@link isHeldOut}, keeping their order. */
export function splitByFrameId<T extends { frameId: string }>(
  frames: readonly T[],
  share = DEFAULT_HELD_OUT_SHARE,
): { train: T[]; heldOut: T[] } {
  const train: T[] = [];
  const heldOut: T[] = [];
  for (const frame of frames) (isHeldOut(frame.frameId, share) ? heldOut : train).push(frame);
  return { train, heldOut };
}

/** The export's version when its dataset.json is absent: "sha256:" + 16 hex over sorted (frame_id, label, image sha256). */
export function datasetVersionOf(entries: ReadonlyArray<{ frameId: string; label: number; imageSha256: string }>): string {
  const hash = createHash('sha256');
  for (const e of [...entries].sort((a, b) => (a.frameId < b.frameId ? -1 : a.frameId > b.frameId ? 1 : 0))) {
    hash.update(`${e.frameId}\t${e.label}\t${e.imageSha256}\n`);
  }
  return `sha256:${hash.digest('hex').slice(0, 16)}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads and prepares the dataset in `dir`.
 *
 * @throws DatasetError when the folder or its metadata.jsonl is missing, a line is not a
 *   valid entry, a file is missing, outside the folder, in another label's folder or not a
 *   readable PNG, a frame_id repeats, a PNG in a label folder is not listed, or there is no
 *   labelled frame at all.
 */
export async function readLabelledDataset(dir: string): Promise<LabelledDataset> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new DatasetError(`dataset folder ${root} does not exist`);
  const metadataPath = join(root, METADATA_FILE);
  if (!existsSync(metadataPath)) {
    throw new DatasetError(
      `${metadataPath} is missing: a dataset folder holds <digit>/*.png and a ${METADATA_FILE} line per frame (the home's export writes both)`,
    );
  }

  const entries: Array<{ frameId: string; label: number; camera: string | null; file: string; line: number }> = [];
  const seenIds = new Map<string, number>();
  const lines = readFileSync(metadataPath, 'utf8').split('\n');
  lines.forEach((text, k) => {
    if (text.trim() === '') return;
    const where = `${metadataPath} line ${k + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error: unknown) {
      throw new DatasetError(`${where} is not JSON (${messageOf(error)})`);
    }
    const parsed = metadataLine.safeParse(json);
    if (!parsed.success) {
      throw new DatasetError(
        `${where} is not a dataset entry: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(line)'}: ${i.message}`).join('; ')}`,
      );
    }
    const { file_name, label, frame_id, camera } = parsed.data;
    const earlier = seenIds.get(frame_id);
    if (earlier !== undefined) throw new DatasetError(`${where} repeats frame_id ${frame_id} (first on line ${earlier})`);
    seenIds.set(frame_id, k + 1);
    // file_name is relative to the dataset folder; a bare name lives in its label's folder.
    const relativeName = file_name.includes('/') ? file_name : `${label}/${file_name}`;
    const full = resolve(root, relativeName);
    const rel = relative(root, full);
    if (rel.startsWith('..') || isAbsolute(rel))
      throw new DatasetError(`${where}: file_name ${file_name} points outside the dataset folder`);
    const folder = rel.split(sep)[0];
    if (folder !== String(label))
      throw new DatasetError(`${where}: ${file_name} is labelled ${label} but lies in folder ${folder ?? '(none)'}`);
    if (!existsSync(full)) throw new DatasetError(`${where}: ${rel} does not exist`);
    entries.push({ frameId: frame_id, label, camera: camera ?? null, file: rel, line: k + 1 });
  });

  const listed = new Set(entries.map((e) => e.file));
  for (let digit = 0; digit <= 9; digit++) {
    const folder = join(root, String(digit));
    if (!existsSync(folder)) continue;
    const unlisted = readdirSync(folder).filter(
      (name) => name.toLowerCase().endsWith('.png') && !listed.has(join(String(digit), name)),
    );
    if (unlisted.length > 0) {
      throw new DatasetError(
        `${unlisted.length} image(s) in ${folder} are not in ${METADATA_FILE} (first: ${unlisted[0]}): their frame_id is unknown, so the held-out split cannot place them`,
      );
    }
  }
  if (entries.length === 0)
    throw new DatasetError(`${metadataPath} lists no labelled frame: label some frames (0-9) and export again`);

  const frames: DatasetFrame[] = [];
  const preparedBlank: string[] = [];
  const hashes: Array<{ frameId: string; label: number; imageSha256: string }> = [];
  // Bounded concurrency: large frames go to sharp, whose thread pool does the work.
  const concurrency = 8;
  for (let from = 0; from < entries.length; from += concurrency) {
    const batch = entries.slice(from, from + concurrency);
    const prepared = await Promise.all(
      batch.map(async (e) => {
        const bytes = readFileSync(join(root, e.file));
        hashes.push({ frameId: e.frameId, label: e.label, imageSha256: createHash('sha256').update(bytes).digest('hex') });
        try {
          return await preparePng(bytes);
        } catch (error: unknown) {
          throw new DatasetError(`${join(root, e.file)} (line ${e.line}) cannot be prepared: ${messageOf(error)}`);
        }
      }),
    );
    batch.forEach((e, k) => {
      const p = prepared[k]!;
      if (p.blank) preparedBlank.push(e.frameId);
      else frames.push({ frameId: e.frameId, label: e.label, camera: e.camera, file: e.file, pixels: p.pixels });
    });
  }

  let version = datasetVersionOf(hashes);
  const datasetPath = join(root, DATASET_FILE);
  if (existsSync(datasetPath)) {
    let parsed: ReturnType<typeof datasetJson.safeParse>;
    try {
      parsed = datasetJson.safeParse(JSON.parse(readFileSync(datasetPath, 'utf8')));
    } catch (error: unknown) {
      throw new DatasetError(`${datasetPath} is not JSON (${messageOf(error)})`);
    }
    if (!parsed.success) throw new DatasetError(`${datasetPath} has no version string`);
    version = parsed.data.version;
  }

  const perClass: Record<string, number> = Object.fromEntries(Array.from({ length: 10 }, (_, d) => [String(d), 0]));
  for (const f of frames) perClass[String(f.label)]! += 1;
  return { dir: root, version, frames, preparedBlank, perClass };
}
