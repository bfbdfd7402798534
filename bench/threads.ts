/**
 * Where the end-to-end CPU goes, thread by thread: runs `npm start -- --serve` in its own
 * process (as the benchmark does), drains a backlog of frames through it and prints each
 * thread's CPU time per frame from /proc (Linux), by role: the main thread (runner, home
 * readers), the emulator's thread, each function's containers, and `other` (libuv's and V8's
 * own threads). The pipeline says which thread is which in its threads.json.
 *
 *   npx tsx bench/threads.ts 640 300 direct    # kind (28 or 640), frames, transport (direct or http)
 */
import { PipelineUnderTest } from './e2e';
import { type FrameKind, framesOf } from './frames';

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? '640') as FrameKind;
  if (kind !== '28' && kind !== '640') throw new Error('kind must be 28 or 640');
  const count = Number(process.argv[3] ?? (kind === '640' ? 300 : 10_000));
  const transport = process.argv[4] ?? 'direct';
  if (transport !== 'direct' && transport !== 'http') throw new Error('transport must be direct or http');
  const frames = framesOf(kind, kind === '640' ? 48 : 2000);
  const base64 = frames.map((f) => f.png.toString('base64'));
  const format = kind === '640' ? 'png' : 'json';
  const pipeline = await PipelineUnderTest.start({ transport });
  try {
    await pipeline.run(frames, base64, 'threads-warm', kind === '640' ? 30 : 3000, 0, 4, undefined, format);
    const result = await pipeline.run(frames, base64, 'threads', count, 0, 4, undefined, format);
    console.log(
      `${kind === '640' ? '640x480' : '28x28'}, ${format} records, ${transport} path: ${count} frames, ` +
        `${result.fps.toFixed(1)} frames/s end to end, peak RSS ${pipeline.peakRssMb().toFixed(0)} MB, camera throttled ${result.throttled} times`,
    );
    const rows = Object.entries(result.threadCpuMsPerFrame).sort((a, b) => b[1] - a[1]);
    for (const [role, ms] of rows) console.log(`${role.padEnd(20)} ${ms.toFixed(3)} cpu ms/frame`);
    console.log(`${'all threads'.padEnd(20)} ${result.cpuMsPerFrame.toFixed(3)} cpu ms/frame`);
  } finally {
    await pipeline.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
