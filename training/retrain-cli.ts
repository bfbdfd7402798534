/**
 * `npm run retrain`: fine-tunes the current model on labelled frames and writes a
 * candidate with its gates.
 *
 *   npm run retrain                                  export the home data folder (./home-data, --home-data DIR) first
 *   npm run retrain -- --dataset DIR                 an exported dataset folder (ImageFolder + metadata.jsonl)
 *   npm run retrain -- --dataset DIR --epochs 3 --out models/candidates --parent models
 *
 * Prints a progress bar (epoch, loss, held-out accuracy), then the gates as a table. Exit
 * code 0 when every gate passed, 1 when a gate failed (the candidate is written, marked
 * as failed), 2 on an error (nothing written).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_DATA_DIR, exportDataset } from '../home/dataset';
import { HomeStore } from '../home/store';
import { formatGateTable } from './gates';
import { retrain, RETRAIN_DEFAULTS, type RetrainOptions, type RetrainProgress } from './retrain';

const USAGE = `usage: npm run retrain -- [--dataset DIR | --home-data DIR] [--epochs N] [--out DIR] [--parent DIR]
  [--replay N] [--learning-rate X] [--labelled-repeat N] [--distill-weight X] [--batch-size N] [--seed N]
  [--mnist-test-limit N] [--root DIR] [--version V]`;

interface CliOptions extends Omit<RetrainOptions, 'datasetDir'> {
  datasetDir?: string;
  homeData?: string;
}

const NUMBER_FLAGS = {
  '--epochs': 'epochs',
  '--replay': 'replay',
  '--learning-rate': 'learningRate',
  '--labelled-repeat': 'labelledRepeat',
  '--seed': 'seed',
  '--mnist-test-limit': 'mnistTestLimit',
  '--batch-size': 'batchSize',
  '--distill-weight': 'distillWeight',
} as const;
const STRING_FLAGS = {
  '--dataset': 'datasetDir',
  '--home-data': 'homeData',
  '--out': 'out',
  '--parent': 'parentDir',
  '--root': 'root',
  '--version': 'version',
} as const;

/** Parses the command line; throws with the usage on anything it does not know. */
export function parseRetrainArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = {};
  for (let k = 0; k < argv.length; k += 2) {
    const flag = argv[k]!;
    const value = argv[k + 1];
    if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value\n${USAGE}`);
    if (flag in NUMBER_FLAGS) {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`${flag} needs a number, got ${value}\n${USAGE}`);
      options[NUMBER_FLAGS[flag as keyof typeof NUMBER_FLAGS]] = n;
    } else if (flag in STRING_FLAGS) {
      options[STRING_FLAGS[flag as keyof typeof STRING_FLAGS]] = value;
    } else {
      throw new Error(`unknown option ${flag}\n${USAGE}`);
    }
  }
  return options;
}

/**
 * Exports the labelled frames of a home data folder (read-only: a home may be running on
 * it) to `<data>/exports/<version>/`, as the page's export button does, and returns the folder.
 *
 * @throws Error when the data folder does not exist, or the export cannot be written.
 */
export function exportHomeData(data: string): string {
  if (!existsSync(data)) {
    throw new Error(
      `no --dataset given and the home data folder ${data} does not exist: pass --dataset DIR (an exported dataset) or --home-data DIR (the folder npm start or npm run home wrote)`,
    );
  }
  const store = new HomeStore(data, { readOnly: true });
  try {
    const name = store.dataset().version.replace(':', '-');
    const result = exportDataset(store, join(data, 'exports', name));
    console.log(`exported ${result.counts.total} labelled frames of ${data} (dataset ${result.version}) to ${result.dir}`);
    return result.dir;
  } finally {
    store.close();
  }
}

/**
 * One progress line: a bar over all steps, the epoch, the running loss, and after each
 * epoch the accuracy on the held-out labelled frames and on the MNIST slice training held out.
 */
export function progressLine(p: Extract<RetrainProgress, { phase: 'train' }>, width = 24): string {
  const filled = Math.round((p.step / Math.max(1, p.steps)) * width);
  const heldOut = p.heldOutAccuracy === null ? '   -  ' : `${(p.heldOutAccuracy * 100).toFixed(1)}%`;
  const mnist = p.mnistAccuracy === null ? '' : `  MNIST ${(p.mnistAccuracy * 100).toFixed(2)}%`;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] epoch ${p.epoch}/${p.epochs}  step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}  held-out ${heldOut}${mnist}`;
}

async function main(): Promise<number> {
  let cli: CliOptions;
  try {
    cli = parseRetrainArgs(process.argv.slice(2));
  } catch (error: unknown) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  let datasetDir = cli.datasetDir;
  if (datasetDir === undefined) {
    try {
      datasetDir = exportHomeData(resolve(cli.homeData ?? process.env.HOME_DATA ?? DEFAULT_DATA_DIR));
    } catch (error: unknown) {
      console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
      return 2;
    }
  }
  const tty = process.stdout.isTTY === true;
  const started = Date.now();
  const stamp = () => `[+${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s]`;
  const onProgress = (p: RetrainProgress) => {
    if (p.phase !== 'train') {
      if (tty) process.stdout.write('\n');
      console.log(`${stamp()} ${p.message}`);
      return;
    }
    const line = `${stamp()} ${progressLine(p)}`;
    if (tty) process.stdout.write(`\r${line}${p.epochEnd ? '\n' : ''}`);
    else if (p.epochEnd) console.log(line);
  };
  const { homeData: _unused, datasetDir: _given, ...rest } = cli;
  try {
    const result = await retrain({ ...rest, datasetDir, onProgress });
    console.log('');
    console.log(formatGateTable(result.gates));
    console.log(`candidate ${result.version}: ${result.dir}`);
    return result.gates.passed ? 0 : 1;
  } catch (error: unknown) {
    console.error(`\nretrain failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    return 2;
  }
}

export { RETRAIN_DEFAULTS };

if (require.main === module) {
  main().then((code) => {
    process.exitCode = code;
  });
}
