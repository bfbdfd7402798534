/**
 * Runs against an external Kinesis endpoint (a second emulator process stands in for AWS or
 * kinesis-mock): the checkpoints are kept in the state folder per endpoint, so a second run
 * never scores the first run's frames again, a run killed with SIGKILL is finished by the
 * next, and `--from trim-horizon` re-scores on purpose after saying how much. Every summary
 * counts only its own run's frames.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { KinesisEmulator } from '../../local/emulator';
import { balance, readStreams } from '../helpers/accounting';
import { writeCentroidModel } from '../helpers/centroid-model';
import { fileLines, runCli, startCli, waitFor } from '../helpers/cli-process';

interface Summary {
  frames_in: number;
  predicted: number;
  rejected: number;
  unaccounted: number;
  earlier_records: number;
  earlier_finished: number;
  earlier_skipped: number;
  state_file: string;
}

let emulator: KinesisEmulator;
let client: KinesisClient;
let modelDir: string;
let dir: string;

beforeAll(async () => {
  modelDir = writeCentroidModel(3000);
  dir = mkdtempSync(join(tmpdir(), 'endpoint-runs-'));
  emulator = await KinesisEmulator.start({ port: 0 });
  client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
});
afterAll(async () => {
  client.destroy();
  await emulator.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});

const out = (): string => join(dir, 'out');
const args = (...extra: string[]): string[] => [
  '--endpoint',
  emulator.endpoint,
  '--state',
  join(dir, 'state'),
  '--out',
  out(),
  '--quiet',
  '--window',
  '2',
  '--no-home',
  ...extra,
];
const summary = (): Summary => JSON.parse(readFileSync(join(out(), 'summary.json'), 'utf8')) as Summary;
const env = (): Record<string, string> => ({ MODEL_DIR: modelDir });

it('a second run continues where the first stopped: nothing scored twice, each summary counts its own frames', async () => {
  // Act
  const first = await runCli(args('--count', '60', '--camera', 'First'), env());
  const afterFirst = summary();
  const second = await runCli(args('--count', '60', '--camera', 'Second'), env());
  const afterSecond = summary();

  // Assess
  expect({ code: first.code, output: first.code === 0 ? '' : first.output }).toEqual({ code: 0, output: '' });
  expect({ code: second.code, output: second.code === 0 ? '' : second.output }).toEqual({ code: 0, output: '' });
  expect(afterFirst).toMatchObject({ frames_in: 60, predicted: 60, unaccounted: 0, earlier_records: 0 });
  expect(afterSecond).toMatchObject({
    frames_in: 60,
    predicted: 60,
    unaccounted: 0,
    earlier_records: 60,
    earlier_finished: 0,
    earlier_skipped: 60,
  });
  expect(afterSecond.state_file.startsWith(join(dir, 'state'))).toBe(true);
  expect(second.output).toContain('60 records already in camera-images from earlier runs');
  const ledger = balance(await readStreams(client));
  expect(ledger).toMatchObject({ framesIn: 120, predicted: 120, missing: [], strangers: [] });
  // No frame of the first run was classified again by the second.
  expect(ledger.duplicates).toEqual({ predictions: 0, uncertain: 0, rejected: 0 });
}, 600_000);

it('a run killed with SIGKILL is finished by the next one, which counts those frames apart', async () => {
  // Prepare
  const before = balance(await readStreams(client)).framesIn;

  // Act: kill once some frames came home and the checkpoints are on disk.
  const killed = startCli(args('--count', '400', '--camera', 'Killed'), env());
  const stateFolder = join(dir, 'state');
  await waitFor(
    killed,
    () =>
      fileLines(join(out(), 'predictions.jsonl')).length >= 50 &&
      readdirSync(stateFolder, { recursive: true }).some((f) => String(f).endsWith('checkpoints.json')),
    '50 predictions home with checkpoints on disk',
  );
  killed.child.kill('SIGKILL');
  await killed.exited;
  const next = await runCli(args('--count', '0'), env());

  // Assess: every frame the killed run published is predicted; the next run's own count is 0.
  expect({ code: next.code, output: next.code === 0 ? '' : next.output }).toEqual({ code: 0, output: '' });
  const ledger = balance(await readStreams(client));
  expect(ledger.missing).toEqual([]);
  expect(ledger.predicted + ledger.rejected).toBe(ledger.framesIn);
  const published = ledger.framesIn - before;
  const s = summary();
  expect(s).toMatchObject({ frames_in: 0, predicted: 0, unaccounted: 0, earlier_records: ledger.framesIn });
  expect(s.earlier_finished + s.earlier_skipped).toBe(ledger.framesIn);
  expect(s.earlier_finished).toBeLessThanOrEqual(published);
}, 600_000);

it('--from trim-horizon re-scores on purpose, after a warning naming how many records', async () => {
  const held = balance(await readStreams(client)).framesIn;

  const run = await runCli(args('--count', '0', '--from', 'trim-horizon'), env());

  expect({ code: run.code, output: run.code === 0 ? '' : run.output }).toEqual({ code: 0, output: '' });
  expect(run.output).toContain(
    `warning: --from trim-horizon: the ${held} records already in camera-images will be classified again`,
  );
  expect(summary()).toMatchObject({
    frames_in: 0,
    predicted: 0,
    earlier_records: held,
    earlier_finished: held,
    earlier_skipped: 0,
  });
}, 600_000);

it('refuses to start on a damaged state file with no good copy, naming it', async () => {
  const stateFile = summary().state_file;
  rmSync(`${stateFile}.prev`, { force: true });
  writeFileSync(stateFile, 'garbage');

  const run = await runCli(args('--count', '0'), env());

  expect(run.code).toBe(1);
  expect(run.output).toContain(`no readable copy of ${stateFile}`);
}, 600_000);
