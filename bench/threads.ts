/**
 * Where the end-to-end CPU goes, thread by thread: runs `npm start -- --serve` in its own
 * process (as the benchmark does), drains a backlog of frames through it and prints each
 * thread's CPU time per frame from /proc (Linux). The main thread's id is the process id;
 * Node's worker threads are all named "node", so the busiest one in a 640x480 run is the
 * emulator's (a CPU profile, `--cpu-prof` via PipelineSettings.nodeArgs, tells them apart).
 *
 *   npx tsx bench/threads.ts 640 300     # kind (28 or 640), frames
 */
import { readdirSync, readFileSync } from 'node:fs';
import { PipelineUnderTest, processCpuSeconds } from './e2e';
import { type FrameKind, framesOf } from './frames';

/** CPU seconds of every thread of `pid`, keyed by "tid name". */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const cpu = processCpuSeconds(pid, Number(tid));
    if (Number.isNaN(cpu)) continue; // the thread ended between listing and reading
    let name = '?';
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      // as above
    }
    out.set(`${tid} ${name}${Number(tid) === pid ? ' (main)' : ''}`, cpu);
  }
  return out;
}

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? '640') as FrameKind;
  if (kind !== '28' && kind !== '640') throw new Error('kind must be 28 or 640');
  const count = Number(process.argv[3] ?? (kind === '640' ? 300 : 10_000));
  const frames = framesOf(kind, kind === '640' ? 48 : 2000);
  const base64 = frames.map((f) => f.png.toString('base64'));
  const format = kind === '640' ? 'png' : 'json';
  const pipeline = await PipelineUnderTest.start();
  try {
    await pipeline.run(frames, base64, 'threads-warm', kind === '640' ? 30 : 3000, 0, 4, undefined, format);
    const before = threadCpu(pipeline.pid);
    const result = await pipeline.run(frames, base64, 'threads', count, 0, 4, undefined, format);
    const after = threadCpu(pipeline.pid);
    console.log(
      `${kind === '640' ? '640x480' : '28x28'}, ${format} records: ${count} frames, ${result.fps.toFixed(1)} frames/s end to end`,
    );
    const rows = [...after]
      .map(([thread, cpu]) => [thread, ((cpu - (before.get(thread) ?? 0)) * 1000) / count] as const)
      .filter(([, ms]) => ms >= 0.001)
      .sort((a, b) => b[1] - a[1]);
    for (const [thread, ms] of rows) console.log(`${thread.padEnd(32)} ${ms.toFixed(3)} cpu ms/frame`);
  } finally {
    await pipeline.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
