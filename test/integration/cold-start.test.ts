/**
 * A classify container that cannot load its model must fail its cold start, naming the path
 * and the problem, before any frame is read: the local pipeline refuses to start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KinesisEmulator } from '../../local/emulator';
import { LocalPipeline } from '../../local/pipeline';

let emulator: KinesisEmulator;
let outDir: string;
let emptyModelDir: string;

beforeAll(async () => {
  emulator = await KinesisEmulator.start({ port: 0 });
  outDir = mkdtempSync(join(tmpdir(), 'cold-start-out-'));
  emptyModelDir = mkdtempSync(join(tmpdir(), 'no-model-'));
}, 60_000);

afterAll(async () => {
  await emulator?.stop();
  rmSync(outDir, { recursive: true, force: true });
  rmSync(emptyModelDir, { recursive: true, force: true });
});

describe.each(['worker', 'in-process'] as const)('with %s isolation', (isolation) => {
  it('refuses to start when the model folder is empty, naming the path', async () => {
    // Prepare
    const start = LocalPipeline.start({
      endpoint: emulator.endpoint,
      outDir,
      isolation,
      env: { MODEL_DIR: emptyModelDir, LOG_LEVEL: 'CRITICAL', AWS_REGION: 'us-east-1' },
      logger: { debug: () => undefined, warn: () => undefined },
    });

    // Act + Assess
    await expect(start).rejects.toThrow(emptyModelDir);
  }, 120_000);
});
