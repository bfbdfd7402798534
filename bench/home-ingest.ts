/**
 * How fast the home stores what the streams bring and answers the page: feeds N uncertain
 * 28x28 frames through the home's stream handlers in Kinesis batches of 10,000 (JSON decode,
 * contract check, one append per batch), then times the API on that many frames.
 *
 *   npx tsx bench/home-ingest.ts [frames]      (default 50,000)
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { homeHandlers } from '../home/feed';
import { HOME_BATCH_SIZE } from '../home/reader';
import { createHomeApp } from '../home/server';
import { HomeStore } from '../home/store';
import { kinesisEvent, uncertainRecord } from '../test/helpers/home-fixtures';

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/** Median wall and CPU milliseconds of `run` over `n` calls (CPU time does not grow when the machine is busy). */
async function timed(n: number, run: () => Promise<unknown>): Promise<string> {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    await run();
    const used = process.cpuUsage(cpuStart);
    cpu.push((used.user + used.system) / 1000);
    wall.push(performance.now() - start);
  }
  return `${median(wall).toFixed(2)} ms (cpu ${median(cpu).toFixed(2)} ms)`;
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 50_000);
  const dir = mkdtempSync(join(tmpdir(), 'home-bench-'));
  const store = new HomeStore(dir);
  try {
    const handlers = homeHandlers(store);
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    // Events built first: the figure is the home's work, not the fixture's.
    const events = [];
    for (let start = 0; start < total; start += HOME_BATCH_SIZE) {
      const n = Math.min(HOME_BATCH_SIZE, total - start);
      events.push(
        kinesisEvent(
          'uncertain-images',
          Array.from({ length: n }, (_, i) => uncertainRecord(start + i)),
        ),
      );
    }
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    for (const event of events) await handlers['uncertain-images'](event);
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const seconds = (performance.now() - started) / 1000;
    events.length = 0;
    global.gc?.();
    const heapAfter = process.memoryUsage().heapUsed;
    const onDisk = statSync(join(dir, 'frames.jsonl')).size + statSync(join(dir, 'images.bin')).size;
    console.log(
      `ingest     ${total} frames in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} frames/s (batches of ${HOME_BATCH_SIZE})`,
    );
    // CPU time does not depend on what else the machine runs: the figure to compare.
    console.log(
      `cpu        ${((cpuSeconds * 1000) / total).toFixed(3)} ms/frame = ${Math.round(total / cpuSeconds)} frames/s per core`,
    );
    console.log(`disk       ${(onDisk / total).toFixed(0)} bytes/frame (frames.jsonl + images.bin)`);
    if (global.gc) console.log(`memory     ${((heapAfter - heapBefore) / total).toFixed(0)} heap bytes/frame in the index`);

    const app = createHomeApp(store);
    const newest = await timed(20, async () => app.request('/api/frames?limit=60'));
    const confidence = await timed(20, async () => app.request('/api/frames?sort=confidence&limit=60'));
    const filtered = await timed(20, async () => app.request('/api/frames?sort=entropy&predicted=3&camera=Test-edge1&limit=60'));
    const image = await timed(50, async () =>
      (await app.request(`/api/frames/${store.frames.list[12_345 % total]?.key}/prepared.png`)).arrayBuffer(),
    );
    let i = 0;
    const label = await timed(50, async () =>
      app.request('/api/labels', { method: 'POST', body: JSON.stringify({ frame_id: store.frames.list[i++]?.key, label: 4 }) }),
    );
    const dataset = await timed(20, async () => app.request('/api/dataset'));
    console.log(
      `GET /api/frames (median, ${total} frames): newest ${newest}, by confidence ${confidence}, filtered by entropy ${filtered}`,
    );
    console.log(`GET prepared.png ${image}; POST /api/labels ${label} (fsync included); GET /api/dataset ${dataset}`);
    const reopenStart = performance.now();
    store.close();
    const reopened = new HomeStore(dir);
    console.log(
      `restart    ${((performance.now() - reopenStart) / 1000).toFixed(2)} s to read ${reopened.frames.size} frames back`,
    );
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
