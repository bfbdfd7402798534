/**
 * The labelled dataset: its version and its export in the layout torchvision `ImageFolder`,
 * Keras `image_dataset_from_directory` and Hugging Face `imagefolder` read.
 *
 *   DIR/<digit>/<frame_id>.png          the original frames labelled 0-9
 *   DIR/metadata.jsonl                  { file_name, label, camera, frame_id, model_version,
 *                                          predicted, probabilities, labelled_at } per image
 *   DIR/dataset.json                    { version, counts, created_at }
 *   DIR.not_a_digit/<frame_id>.png      frames labelled not-a-digit, outside DIR because those
 *   DIR.not_a_digit/metadata.jsonl      readers take every folder of DIR for a class
 *
 * Only classes with frames get a folder (torchvision refuses an empty class folder); read
 * the class from the folder name or the metadata's `label`, not from a folder's position.
 *
 *   npm run dataset -- export DIR [--data DIR]    write the export (replacing DIR)
 *   npm run dataset -- status [--data DIR]        print the counts and the version
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { datasetVersion } from './dataset-version';
import { DIGITS, type HomeStore, NOT_A_DIGIT } from './store';

export { datasetVersion };

/** Default data folder of `npm start`, `npm run home` and this command. */
export const DEFAULT_DATA_DIR = './home-data';

export interface ExportResult {
  dir: string;
  not_a_digit_dir: string;
  version: string;
  counts: { per_class: Record<string, number>; not_a_digit: number; total: number };
}

/** The sibling folder of an export that holds its not-a-digit frames. */
export function notADigitDir(dir: string): string {
  return `${dir}.${NOT_A_DIGIT}`;
}

/**
 * Writes the labelled frames of `store` to `dir` (replacing what is there) and its
 * not-a-digit frames to `<dir>.not_a_digit`. Both are written aside and renamed into place,
 * so a reader never sees half an export.
 */
export function exportDataset(store: HomeStore, target: string, now = new Date()): ExportResult {
  const dir = resolve(target);
  const other = notADigitDir(dir);
  checkTarget(store, dir, 'dataset.json');
  checkTarget(store, other, 'metadata.jsonl');
  const labelled = store.labelledFrames().sort((a, b) => (a.frame.key < b.frame.key ? -1 : 1));
  const version = datasetVersion(labelled);
  const perClass: Record<string, number> = Object.fromEntries(DIGITS.map((d) => [d, 0]));
  let notADigit = 0;
  const stage = join(dirname(dir), `.${basename(dir)}.${process.pid}.tmp`);
  const stageOther = `${stage}.${NOT_A_DIGIT}`;
  rmSync(stage, { recursive: true, force: true });
  rmSync(stageOther, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  mkdirSync(stageOther, { recursive: true });
  const lines: string[] = [];
  const otherLines: string[] = [];
  for (const { frame, entry } of labelled) {
    const name = `${frame.key}.png`;
    const isDigit = entry.label !== NOT_A_DIGIT;
    const folder = isDigit ? join(stage, String(entry.label)) : stageOther;
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, name), store.frames.exportImage(frame));
    const line = JSON.stringify({
      file_name: isDigit ? `${String(entry.label)}/${name}` : name,
      label: entry.label,
      camera: frame.camera,
      frame_id: frame.key,
      model_version: frame.model_version,
      predicted: frame.result_class,
      probabilities: frame.predictions,
      labelled_at: entry.labelled_at,
    });
    if (isDigit) {
      perClass[String(entry.label)] = (perClass[String(entry.label)] ?? 0) + 1;
      lines.push(line);
    } else {
      notADigit += 1;
      otherLines.push(line);
    }
  }
  const counts = { per_class: perClass, not_a_digit: notADigit, total: lines.length + notADigit };
  writeFileSync(join(stage, 'metadata.jsonl'), lines.map((l) => `${l}\n`).join(''));
  writeFileSync(join(stageOther, 'metadata.jsonl'), otherLines.map((l) => `${l}\n`).join(''));
  writeFileSync(join(stage, 'dataset.json'), `${JSON.stringify({ version, counts, created_at: now.toISOString() }, null, 2)}\n`);
  for (const [from, to] of [
    [stage, dir],
    [stageOther, other],
  ] as const) {
    if (existsSync(to)) rmSync(to, { recursive: true, force: true });
    renameSync(from, to);
  }
  return { dir, not_a_digit_dir: other, version, counts };
}

/** The export would replace something that is not an earlier export. */
export class ExportTargetError extends Error {}

/** Refuses to replace a folder holding anything but an earlier export (or the data itself). */
function checkTarget(store: HomeStore, dir: string, marker: string): void {
  if (dir === store.dir || store.dir.startsWith(`${dir}/`)) {
    throw new ExportTargetError(`cannot export into ${dir}: it holds the home data folder; pick another folder`);
  }
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, marker))) {
    throw new ExportTargetError(`${dir} exists and is not an earlier export (no ${marker}): pick an empty or new folder`);
  }
}

const USAGE = [
  'usage: npm run dataset -- <command> [--data DIR]',
  '  export DIR     write the labelled frames to DIR (ImageFolder layout; not-a-digit to DIR.not_a_digit)',
  '  status         print the counts per class and the dataset version',
  `  --data DIR     the home data folder (default ${DEFAULT_DATA_DIR}, variable HOME_DATA)`,
].join('\n');

function parseDatasetArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: { data: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
}

/** `npm run dataset`: returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseDatasetArgs>;
  try {
    parsed = parseDatasetArgs(argv);
  } catch (error: unknown) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  const [command, target, ...rest] = parsed.positionals;
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (
    (command !== 'export' && command !== 'status') ||
    (command === 'export' && !target) ||
    rest.length > 0 ||
    (command === 'status' && target)
  ) {
    console.error(
      `${command === undefined ? 'a command is missing' : `cannot read ${JSON.stringify(parsed.positionals.join(' '))}`}\n\n${USAGE}`,
    );
    return 2;
  }
  const data = resolve(parsed.values.data ?? process.env.HOME_DATA ?? DEFAULT_DATA_DIR);
  if (!existsSync(data)) {
    console.error(`the data folder ${data} does not exist: pass --data DIR (the folder npm start or npm run home wrote)`);
    return 1;
  }
  // Read-only: a home may be running on this folder right now.
  const { HomeStore } = await import('./store');
  const store = new HomeStore(data, { readOnly: true });
  try {
    if (command === 'status') {
      console.log(JSON.stringify(store.dataset(), null, 2));
      return 0;
    }
    const result = exportDataset(store, target as string);
    console.log(JSON.stringify(result, null, 2));
    return 0;
  } finally {
    store.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
