/**
 * The home's compaction killed with SIGKILL at a random instant (while copying, fsyncing,
 * switching or appending), then the data folder opened again: a property over the kill point.
 * Whatever the instant, the folder opens as one whole store (the old or the new, never a mix):
 * every frame it lists serves its own images, every acknowledged label and its frame are
 * there, and no compaction file is left behind.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { HomeStore } from '../../home/store';
import { preparedPng } from '../../home/store/frames';
import { folderBytes } from '../../home/store/retention';
import { REPO_ROOT } from '../../local/runner/mappings';
import { pixelsOf, uncertainRecord } from '../helpers/home-fixtures';

const FIRST_FRAMES = 1500;
const ID_BASE = 4960000000000000000000n;

/** The fixture index a frame_id was made from. */
const indexOf = (key: string): number => Number(BigInt(key.split('-').at(-1) as string) - ID_BASE);

let root: string;
let prepared: string;
let bound: number;
const preLabelled = [0, 7, 300, 1499].map((i) => uncertainRecord(i).frame_id);

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'home-compact-kill-'));
  prepared = join(root, 'prepared');
  const store = new HomeStore(prepared, { retention: { keepDays: null, maxBytes: null } });
  store.addFrames(Array.from({ length: FIRST_FRAMES }, (_, i) => uncertainRecord(i)));
  store.label(preLabelled, 'accept');
  store.close();
  // Each round of the child adds 100 frames, so every round prunes about 100 old ones.
  bound = Math.round(folderBytes(prepared) * 0.9);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Starts the child on `dir`, kills it `delayMs` after it is ready; resolves with the keys it acknowledged. */
async function killChildAfter(dir: string, delayMs: number): Promise<{ labelled: string[]; prunes: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'test/helpers/compacting-home-child.ts'), dir, String(bound), String(FIRST_FRAMES)],
    { cwd: REPO_ROOT, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
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
  const deadline = Date.now() + 60_000;
  while (!out.startsWith('ready\n')) {
    if (child.exitCode !== null) throw new Error(`the child ended early:\n${err}`);
    if (Date.now() > deadline) throw new Error(`the child was not ready within 60 s:\n${err}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  await exited;
  expect(err).toBe('');
  const lines = out.split('\n');
  // Only whole lines: a line cut by the kill was not acknowledged.
  const whole = out.endsWith('\n') ? lines : lines.slice(0, -1);
  return {
    labelled: whole.filter((l) => l.startsWith('labelled ')).flatMap((l) => l.split(' ').slice(1)),
    prunes: whole.filter((l) => /^pruned [1-9]/.test(l)).length,
  };
}

it('property: killed at any instant of a compaction, the data folder opens whole and loses nothing labelled', async () => {
  let prunesSeen = 0;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 3000 }), async (delayMs) => {
      const dir = mkdtempSync(join(root, 'run-'));
      cpSync(prepared, dir, { recursive: true });
      rmSync(join(dir, 'home.lock'), { force: true });
      const { labelled, prunes } = await killChildAfter(dir, delayMs);
      prunesSeen += prunes;

      const store = new HomeStore(dir, { retention: { keepDays: null, maxBytes: bound } });
      try {
        expect(readdirSync(dir).filter((name) => name.includes('compact'))).toEqual([]);
        // Every acknowledged label, and its frame with its own images.
        for (const key of [...preLabelled, ...labelled]) {
          expect(store.labels.current(key)).toBeDefined();
          expect(store.frames.get(key)).toBeDefined();
        }
        for (const entry of store.labels.entries) expect(store.frames.get(entry.frame_id)).toBeDefined();
        // Every frame listed serves its own images: no line points into another pack.
        const seqs = store.frames.list.map((f) => f.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        for (const frame of store.frames.list) {
          const i = indexOf(frame.key);
          expect(store.frames.original(frame)?.equals(Buffer.from(uncertainRecord(i).image, 'base64'))).toBe(true);
          expect(store.frames.prepared(frame).equals(preparedPng(Uint8Array.from(pixelsOf(i).flat())))).toBe(true);
        }
        // A kill mid-append leaves at most one torn line, cut off here.
        expect(store.frames.unreadableLines).toBeLessThanOrEqual(1);
        // And the recovered store compacts again.
        const prune = await store.enforceRetention();
        expect(prune === null || prune.pruned > 0).toBe(true);
        for (const key of [...preLabelled, ...labelled]) expect(store.frames.get(key)).toBeDefined();
      } finally {
        store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: 8 },
  );
  // The kills landed after compactions had finished too, not only before the first one.
  expect(prunesSeen).toBeGreaterThan(0);
}, 600_000);
