/**
 * What the tests of whole runs as processes share: a model and a scratch folder per suite,
 * the arguments of a run persisted on disk whose streams keep every record, a bounded wait for
 * a run to end, and reading back what the persisted emulator store holds once it is over.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { KinesisEmulator } from '../../local/emulator';
import { writeCentroidModel } from './centroid-model';

export interface SuiteFolders {
  /** The suite's scratch folder. */
  readonly dir: string;
  /** A small centroid model (MODEL_DIR), quick to load in every process the suite starts. */
  readonly modelDir: string;
}

/**
 * Registers the hooks that make the folders before the suite's tests and remove them after;
 * `cleanUp` (stopping the suite's processes) runs first.
 */
export function suiteFolders(prefix: string, cleanUp: () => Promise<void> | void = () => undefined): SuiteFolders {
  const folders = { dir: '', modelDir: '' };
  beforeAll(() => {
    folders.modelDir = writeCentroidModel(3000);
    folders.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  });
  afterAll(async () => {
    await cleanUp();
    if (folders.dir) rmSync(folders.dir, { recursive: true, force: true });
    if (folders.modelDir) rmSync(folders.modelDir, { recursive: true, force: true });
  });
  return folders;
}

/**
 * `npm start` arguments of a run persisted in `persist` and writing to `out`, on a free port,
 * quiet, with metrics windows of `windowSeconds`; every record stays in the streams, so a test
 * can read back all that entered.
 */
export const persistedRunArgs = (persist: string, out: string, windowSeconds = 2): string[] => [
  ...['--persist', persist, '--out', out, '--port', '0', '--quiet'],
  ...['--window', String(windowSeconds), '--retain-consumed', 'all'],
];

/**
 * The exit code once `exited` resolves, or `still running after <s> s` when it has not within
 * `timeoutMs`: a hung run then fails the test's exit-code assertion with its own message.
 */
export async function exitCodeWithin(exited: Promise<number | null>, timeoutMs: number): Promise<number | null | string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`still running after ${timeoutMs / 1000} s`), timeoutMs);
  });
  try {
    return await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts an emulator on the store a run persisted under `persist`, reads it with `read`, stops it. */
export async function readPersisted<T>(persist: string, read: (client: KinesisClient) => Promise<T>): Promise<T> {
  const emulator = await KinesisEmulator.start({ port: 0, persistPath: join(persist, 'kinesis') });
  const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
  try {
    return await read(client);
  } finally {
    client.destroy();
    await emulator.stop();
  }
}
