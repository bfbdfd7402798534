/**
 * A restart of the whole local pipeline with persistence on: `npm start -- --persist DIR` is
 * killed (SIGKILL, no chance to flush anything) while frames are still flowing, then started
 * again on the same folders. It must resume where it stopped: every frame that went into
 * camera-images ends up predicted or rejected, the home outputs and the metrics documents hold
 * each frame once, and only the records in flight at the kill are processed twice (not the
 * whole stream again).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStateFile, previousCopyPath, writeStateFile } from '../../functions/lib/state-file';
import { metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { balance, countedFramesPerCamera, distinctFramesPerCamera, readStreams } from '../helpers/accounting';
import { fileLines, startCli, waitFor } from '../helpers/cli-process';
import { exitCodeWithin, persistedRunArgs, readPersisted, suiteFolders } from '../helpers/persisted-run';

const FRAMES = 3000;

const folders = suiteFolders('resume');

it('resumes after a SIGKILL where it stopped: nothing lost, home outputs once per frame, no full replay', async () => {
  // Prepare
  const { dir, modelDir } = folders;
  const persist = join(dir, 'state');
  const out = join(dir, 'out');
  // Every record stays in the persisted streams: the ledger below reads them back.
  const homeData = join(dir, 'home');
  const common = [...persistedRunArgs(persist, out), '--home-port', '0', '--data', homeData];

  // Act 1: publish the frames and kill the process once some have come home.
  const first = startCli([...common, '--count', String(FRAMES), '--camera', 'Resume'], { MODEL_DIR: modelDir });
  const predictionsFile = join(out, 'predictions.jsonl');
  // Checkpoints are written a moment after the records they cover: wait for both conditions.
  await waitFor(
    first,
    () => fileLines(predictionsFile).length >= 300 && existsSync(join(persist, 'checkpoints.json')),
    '300 predictions home with the checkpoints on disk',
  );
  first.child.kill('SIGKILL');
  await first.exited;
  const homeAtKill = fileLines(predictionsFile).length;

  // Act 2: the same command again, publishing nothing: it must finish what was left.
  const second = startCli([...common, '--count', '0'], { MODEL_DIR: modelDir });
  const code = await exitCodeWithin(second.exited, 400_000);
  expect({ code, output: code === 0 ? '' : second.output() }).toEqual({ code: 0, output: '' });

  // Assess: the streams, read back from the persisted emulator store.
  const contents = await readPersisted(persist, readStreams);
  const ledger = balance(contents);
  expect(contents.unreadable).toBe(0);
  expect(ledger.framesIn).toBeGreaterThan(homeAtKill);
  expect(ledger.framesIn).toBeLessThanOrEqual(FRAMES);
  expect(ledger.missing).toEqual([]);
  expect(ledger.strangers).toEqual([]);
  expect(ledger.predictedAndRejected).toEqual([]);
  expect(ledger.predicted + ledger.rejected).toBe(ledger.framesIn);
  expect(ledger.uncertainNotPredicted).toEqual([]);
  // Only what was in flight at the kill ran twice; a replay from the start would have
  // duplicated every frame that had come home before it.
  expect(ledger.duplicates.predictions).toBeLessThan(homeAtKill);

  // The home outputs: one line per frame across both runs, every line whole.
  const home = fileLines(predictionsFile).map((l) => JSON.parse(l) as { frame_id: string });
  expect(home).toHaveLength(ledger.predicted);
  expect(new Set(home.map((p) => p.frame_id)).size).toBe(ledger.predicted);
  const uncertainJson = readdirSync(join(out, 'uncertain')).filter((f) => f.endsWith('.json'));
  expect(uncertainJson).toHaveLength(ledger.uncertain);
  // The home application's data folder: every uncertain frame once, though its process was killed too.
  const homeFrames = fileLines(join(homeData, 'frames.jsonl')).map((l) => JSON.parse(l) as { frame_id: string });
  expect(homeFrames).toHaveLength(ledger.uncertain);
  expect(new Set(homeFrames.map((f) => f.frame_id)).size).toBe(ledger.uncertain);
  // The metrics documents: each frame once per camera across every window of both runs.
  const documents = fileLines(join(out, 'metrics.jsonl')).map((l) => metricsDocumentSchema.parse(JSON.parse(l)));
  // Every output written again (in flight at the kill, redelivered after the restart) was caught.
  expect(countedFramesPerCamera(documents)).toEqual({
    ...distinctFramesPerCamera(contents),
    duplicates: ledger.duplicates.predictions + ledger.duplicates.rejected,
  });
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { predicted: number; dead_lettered: number };
  expect(summary).toMatchObject({ predicted: ledger.predicted, dead_lettered: 0 });
}, 600_000);

it('a restart that scores again frames whose metrics windows had closed counts them once in the metrics', async () => {
  // Prepare: a finished run, every metrics window closed and checkpointed.
  const { dir, modelDir } = folders;
  const run = mkdtempSync(join(dir, 'rescore-'));
  const persist = join(run, 'state');
  const out = join(run, 'out');
  const common = [...persistedRunArgs(persist, out, 1), '--no-home'];
  const first = startCli([...common, '--count', '200', '--camera', 'Rescore'], { MODEL_DIR: modelDir });
  expect(await exitCodeWithin(first.exited, 400_000)).toBe(0);
  // What a crash right after the aggregator closed a window, before classify checkpointed the
  // frames in it, leaves behind, made certain: classify's checkpoints are gone (the file's
  // previous copy too), the aggregator's are not. Restarted, classify scores every frame again
  // and writes its prediction again, seconds later, into windows after the original ones.
  const checkpoints = join(persist, 'checkpoints.json');
  const entries = decodeStateFile(readFileSync(checkpoints)) as Record<string, unknown>;
  const rewound = Object.fromEntries(Object.entries(entries).filter(([key]) => !key.includes('|camera-images|')));
  expect(Object.keys(rewound).length).toBeLessThan(Object.keys(entries).length);
  writeStateFile(checkpoints, rewound);
  writeStateFile(previousCopyPath(checkpoints), rewound);

  // Act
  const second = startCli([...common, '--count', '0'], { MODEL_DIR: modelDir });
  const code = await exitCodeWithin(second.exited, 400_000);
  expect({ code, output: code === 0 ? '' : second.output() }).toEqual({ code: 0, output: '' });

  // Assess: every frame predicted twice on the stream, counted once in the metrics.
  const contents = await readPersisted(persist, readStreams);
  const ledger = balance(contents);
  expect(ledger.missing).toEqual([]);
  expect(ledger.duplicates.predictions).toBe(ledger.predicted);
  const documents = fileLines(join(out, 'metrics.jsonl')).map((l) => metricsDocumentSchema.parse(JSON.parse(l)));
  expect(countedFramesPerCamera(documents)).toEqual({
    ...distinctFramesPerCamera(contents),
    duplicates: ledger.duplicates.predictions + ledger.duplicates.rejected,
  });
}, 600_000);
