/**
 * Where the pipeline's memory goes, thread by thread: runs `npm start -- --serve` in its own
 * process (as the benchmark does), drains `runs` backlogs of frames through it and prints the
 * resident set after each, then each thread's largest V8 heap (used and reserved) and
 * external memory (buffers) over the whole run, sampled every 0.5 s by bench/thread-heaps.cjs.
 *
 *   npx tsx bench/memory.ts 640 300 1     # kind (28 or 640), frames per backlog, backlogs
 *   npx tsx bench/memory.ts 28 10000 8 0  # ... and --retain-consumed seconds
 *   npx tsx bench/memory.ts 28 10000 3 - --max-semi-space-size=4  # ... and node options after them
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PipelineUnderTest } from './e2e';
import { type FrameKind, framesOf } from './frames';
import { maxOf } from './stats';

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? '640') as FrameKind;
  if (kind !== '28' && kind !== '640') throw new Error('kind must be 28 or 640');
  const count = Number(process.argv[3] ?? (kind === '640' ? 300 : 10_000));
  const runs = Number(process.argv[4] ?? 1);
  const retain = process.argv[5] === undefined || process.argv[5] === '-' ? undefined : Number(process.argv[5]);
  const nodeOptions = process.argv.slice(6);
  const frames = framesOf(kind, kind === '640' ? 48 : 2000);
  const base64 = frames.map((f) => f.png.toString('base64'));
  const dir = mkdtempSync(join(tmpdir(), 'thread-heaps-'));
  const pipeline = await PipelineUnderTest.start({
    transport: 'direct',
    nodeArgs: [...nodeOptions, '--require', join(__dirname, 'thread-heaps.cjs')],
    env: { THREAD_HEAPS_DIR: dir },
    ...(retain !== undefined ? { retainConsumed: retain } : {}),
  });
  try {
    for (let run = 0; run < runs; run += 1) {
      const result = await pipeline.run(frames, base64, `memory-${run}`, count, 0, 4, undefined, kind === '640' ? 'png' : 'json');
      const last = pipeline.samples[pipeline.samples.length - 1];
      console.log(
        `backlog ${run + 1}: ${count} ${kind === '640' ? '640x480' : '28x28'} frames, ${result.fps.toFixed(0)} frames/s, ` +
          `RSS ${last?.rssMb.toFixed(0)} MB at ${last?.frames} frames, peak ${pipeline.peakRssMb().toFixed(0)} MB`,
      );
    }
  } finally {
    await pipeline.stop();
  }
  console.log('thread              heap used  heap reserved  external   (largest sample, MB)');
  for (const name of readdirSync(dir).sort()) {
    const rows = readFileSync(join(dir, name), 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(' ').map(Number));
    const max = (i: number): number => maxOf(rows.map((r) => r[i] ?? 0));
    const role = name
      .replace(/\.log$/, '')
      .split('-')
      .slice(2)
      .join('-');
    console.log(
      `${role.padEnd(20)}${max(0).toFixed(0).padStart(9)}${max(1).toFixed(0).padStart(15)}${max(2).toFixed(0).padStart(10)}`,
    );
  }
  rmSync(dir, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
