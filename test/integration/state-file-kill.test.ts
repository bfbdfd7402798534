/**
 * Crash-consistent state files under SIGKILL: a writer child killed at random instants always
 * leaves a whole value no older than the last write it finished, and its appended lines lose
 * at most a torn last one.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { z } from 'zod';
import { REPO_ROOT } from '../../local/runner/mappings';
import { readStateFile, repairJsonLines } from '../../functions/lib/state-file';

const schema = z.object({ n: z.number() });
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'state-file-kill-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the writer child and resolves with the last value it acknowledged when killed. */
async function killWriterAfter(delayMs: number, stateFile: string, linesFile: string): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'test/helpers/state-writer-child.ts'), stateFile, linesFile],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Wait for the condition (a first acknowledged write), bounded, then for the random instant.
  const deadline = Date.now() + 60_000;
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`the writer ended early:\n${err}`);
    if (Date.now() > deadline) throw new Error(`the writer acknowledged no write within 60 s:\n${err}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  await exited;
  const acknowledged = out.split('\n').filter((l) => l !== '');
  return Number(acknowledged.at(-1));
}

it('property: a writer killed at any instant leaves a readable state no older than its last finished write', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 150 }), async (delayMs) => {
      const run = mkdtempSync(join(dir, 'kill-'));
      const stateFile = join(run, 'state.json');
      const linesFile = join(run, 'lines.jsonl');

      const acknowledged = await killWriterAfter(delayMs, stateFile, linesFile);

      const read = readStateFile(stateFile, schema);
      expect(read.value?.n).toBeGreaterThanOrEqual(acknowledged);
      // The appended lines: a torn last one at most, every whole line in order, none lost.
      repairJsonLines(linesFile);
      const ns = readFileSync(linesFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { n: number }).n);
      expect(ns).toEqual(Array.from({ length: ns.length }, (_, i) => i + 1));
      expect(ns.length).toBeGreaterThanOrEqual(acknowledged);
    }),
    { numRuns: 12 },
  );
}, 300_000);
