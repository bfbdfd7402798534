/**
 * How long pruning takes and how long it holds the home: stores N uncertain 28x28 frames,
 * labels 1 in 100, sets the data folder's bound to half its size and prunes. Prints the
 * compaction's wall and CPU time, the longest single hold of the event loop (a step or the
 * commit: the longest a request arriving then waits), how many of the page's requests were
 * answered meanwhile (a frame's image, back to back), and the bytes before and after.
 *
 *   npx tsx bench/home-compact.ts [frames]      (default 50,000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHomeApp } from '../home/server';
import { HomeStore } from '../home/store';
import { folderBytes } from '../home/store/retention';
import { uncertainRecord } from '../test/helpers/home-fixtures';

const MB = 1e6;

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 50_000);
  const dir = mkdtempSync(join(tmpdir(), 'home-compact-bench-'));
  try {
    const filling = new HomeStore(dir, { retention: { keepDays: null, maxBytes: null } });
    for (let start = 0; start < total; start += 10_000) {
      const n = Math.min(10_000, total - start);
      filling.addFrames(Array.from({ length: n }, (_, i) => uncertainRecord(start + i)));
    }
    const labelled = Array.from({ length: Math.floor(total / 100) }, (_, i) => uncertainRecord(i * 100).frame_id);
    for (let i = 0; i < labelled.length; i += 1000) filling.label(labelled.slice(i, i + 1000), 'accept');
    filling.close();

    const before = folderBytes(dir);
    const bound = Math.round(before / 2);
    const store = new HomeStore(dir, { retention: { keepDays: null, maxBytes: bound } });
    const app = createHomeApp(store);
    const image = `/api/frames/${labelled[1]}/prepared.png`;
    const cpuBefore = process.cpuUsage();
    let running = true;
    const pruning = store.enforceRetention().finally(() => {
      running = false;
    });
    // Requests back to back while it runs: the home keeps answering between the steps.
    let answered = 0;
    while (running) {
      const response = await app.request(image);
      if (response.status !== 200) throw new Error(`${image} answered ${response.status} during the compaction`);
      await response.arrayBuffer();
      answered += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const prune = await pruning;
    const cpu = process.cpuUsage(cpuBefore);
    const after = folderBytes(dir);
    if (!prune) throw new Error('nothing was pruned: the bound was not passed');
    const lost = labelled.filter((key) => store.frames.get(key) === undefined).length;
    store.close();
    console.log(`frames           ${total} stored, ${labelled.length} labelled; bound ${(bound / MB).toFixed(1)} MB`);
    console.log(`pruned           ${prune.pruned} frames (${lost} labelled lost)`);
    console.log(`data folder      ${(before / MB).toFixed(1)} MB before, ${(after / MB).toFixed(1)} MB after`);
    console.log(
      `pack + index     ${(prune.bytes_before / MB).toFixed(1)} MB before, ${(prune.bytes_after / MB).toFixed(1)} MB after`,
    );
    console.log(`compaction       ${prune.ms} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms cpu`);
    console.log(`longest hold     ${prune.longest_step_ms} ms (the slowest step of the copy, or the commit)`);
    console.log(`requests         ${answered} image requests answered meanwhile (each 200)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
