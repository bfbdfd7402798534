/**
 * The local pipeline killed with SIGKILL at a random instant, sometimes with the damage a power
 * cut can add (a torn checkpoint file, half a line at the end of an output), then started again
 * on the same folders: a property over the kill point. Whatever the instant, every frame that
 * went into camera-images ends up predicted or rejected, the home outputs hold each frame once,
 * and the metrics documents count each frame exactly once per camera, although the restart
 * writes the predictions of the frames after the last checkpoint again, into later windows.
 */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { balance, countedFramesPerCamera, distinctFramesPerCamera, readStreams } from '../helpers/accounting';
import { fileLines, startCli, waitFor } from '../helpers/cli-process';
import { exitCodeWithin, persistedRunArgs, readPersisted, suiteFolders } from '../helpers/persisted-run';

const FRAMES = 600;

const folders = suiteFolders('kill-anywhere');

it('property: killed at any instant (and torn like a power cut), a restart loses and double-counts nothing', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: FRAMES - 1 }),
      fc.integer({ min: 0, max: 400 }),
      fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
      async (homeBeforeKill, extraMs, tearAt) => {
        // Prepare
        const run = mkdtempSync(join(folders.dir, 'run-'));
        const persist = join(run, 'state');
        const out = join(run, 'out');
        const common = [...persistedRunArgs(persist, out), '--no-home'];
        const env = { MODEL_DIR: folders.modelDir };
        const predictionsFile = join(out, 'predictions.jsonl');

        // Act 1: kill once `homeBeforeKill` predictions are home, plus a random moment.
        const first = startCli([...common, '--count', String(FRAMES), '--camera', 'Kill'], env);
        await waitFor(first, () => fileLines(predictionsFile).length >= homeBeforeKill, `${homeBeforeKill} predictions home`);
        await new Promise((resolve) => setTimeout(resolve, extraMs));
        first.child.kill('SIGKILL');
        await first.exited;
        // A power cut can also tear a file whose rename was not yet durable, and leave half a line.
        const checkpoints = join(persist, 'checkpoints.json');
        if (tearAt !== undefined && existsSync(checkpoints) && existsSync(`${checkpoints}.prev`)) {
          truncateSync(checkpoints, Math.floor(statSync(checkpoints).size * tearAt));
          if (existsSync(predictionsFile)) appendFileSync(predictionsFile, '{"frame_id":"shardId-0000');
        }

        // Act 2: the same command, publishing nothing: it finishes what was left.
        const second = startCli([...common, '--count', '0'], env);
        const code = await exitCodeWithin(second.exited, 400_000);
        expect({ code, output: code === 0 ? '' : second.output() }).toEqual({ code: 0, output: '' });

        // Assess: the streams, read back from the persisted store.
        try {
          const contents = await readPersisted(persist, readStreams);
          const ledger = balance(contents);
          expect(ledger.missing).toEqual([]);
          expect(ledger.strangers).toEqual([]);
          expect(ledger.predictedAndRejected).toEqual([]);
          expect(ledger.predicted + ledger.rejected).toBe(ledger.framesIn);

          // Home outputs: every predicted frame once, every line whole.
          const home = fileLines(predictionsFile).map((l) => JSON.parse(l) as { frame_id: string });
          expect(home).toHaveLength(ledger.predicted);
          expect(new Set(home.map((p) => p.frame_id)).size).toBe(ledger.predicted);
          if (ledger.uncertain > 0) {
            expect(readdirSync(join(out, 'uncertain')).filter((f) => f.endsWith('.json'))).toHaveLength(ledger.uncertain);
          }

          // Metrics: every frame counted once per camera, though a redelivered frame's second
          // prediction arrived in a later window (and, after the restart, in another process).
          const documents = fileLines(join(out, 'metrics.jsonl')).map((l) => metricsDocumentSchema.parse(JSON.parse(l)));
          expect(new Set(documents.map((d) => d.id)).size).toBe(documents.length);
          expect(countedFramesPerCamera(documents)).toEqual({
            ...distinctFramesPerCamera(contents),
            duplicates: ledger.duplicates.predictions + ledger.duplicates.rejected,
          });
          const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
            predicted: number;
            unaccounted: number;
          };
          expect(summary).toMatchObject({ predicted: ledger.predicted, unaccounted: 0 });
        } finally {
          rmSync(run, { recursive: true, force: true });
        }
      },
    ),
    { numRuns: 3 },
  );
}, 1_500_000);
