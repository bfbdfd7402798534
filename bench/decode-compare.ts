/**
 * Why preparation decodes PNGs itself: the project's decoder (node zlib + typed arrays)
 * against sharp (libvips), side by side in one run, for 28x28 MNIST frames as the original
 * camera rendered them and for 640x480 camera-like frames.
 *
 *   npx tsx bench/decode-compare.ts [--quick]
 *
 * Prints, per frame kind, the median over 3 rounds of: wall time per frame, frames/s and
 * process CPU time per frame (all threads; the fairer figure on a shared machine) for
 * decoding (sequential, and concurrent batches of 50), prepareGray alone, and preparePng
 * (decode + prepare, concurrent batches of 50, as the classify stage calls it).
 */
import sharp from 'sharp';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../functions/lib/mnist';
import { decodePng, decodePngSync, type GrayImage } from '../functions/lib/decode';
import { prepareGray, preparePng } from '../functions/lib/prepare';
import { cameraFrameAt } from '../training/camera-frames';

const quick = process.argv.includes('--quick');
const BATCH = 50;

interface Row {
  what: string;
  msPerFrame: number;
  cpuMsPerFrame: number;
  fps: number;
}

interface Timing {
  wall: number;
  cpu: number;
}

/** Wall time and process CPU time (all threads: main, libuv pool, libvips) per frame. */
async function timeIt(frames: number, run: () => Promise<void> | void): Promise<Timing> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / frames, cpu: (c.user + c.system) / 1000 / frames };
}

async function median3(frames: number, run: () => Promise<void> | void): Promise<Timing> {
  await run(); // warm-up: JIT, thread pool, kernel caches
  const t = [await timeIt(frames, run), await timeIt(frames, run), await timeIt(frames, run)].sort((a, b) => a.wall - b.wall);
  return t[1] as Timing;
}

async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(fn));
}

const sharpGray = (png: Buffer): Promise<Buffer> => sharp(png).flatten({ background: '#ffffff' }).grayscale().raw().toBuffer();

async function measure(kind: string, pngs: Buffer[]): Promise<Row[]> {
  const n = pngs.length;
  const grays: GrayImage[] = pngs.map((p) => decodePngSync(p));
  const rows: Array<[string, Timing]> = [
    [
      'decode: pure decoder, sequential',
      await median3(n, () => {
        for (const p of pngs) decodePngSync(p);
      }),
    ],
    [`decodePng (pure < 64 kB <= sharp), batches of ${BATCH}`, await median3(n, () => inBatches(pngs, (p) => decodePng(p)))],
    [
      'decode: sharp, sequential',
      await median3(n, async () => {
        for (const p of pngs) await sharpGray(p);
      }),
    ],
    [`decode: sharp, batches of ${BATCH} concurrent`, await median3(n, () => inBatches(pngs, sharpGray))],
    [
      'prepareGray alone',
      await median3(n, () => {
        for (const g of grays) prepareGray(g);
      }),
    ],
    [`preparePng (decode + prepare), batches of ${BATCH}`, await median3(n, () => inBatches(pngs, (p) => preparePng(p)))],
  ];
  return rows.map(([what, t]) => ({ what: `${kind} ${what}`, msPerFrame: t.wall, cpuMsPerFrame: t.cpu, fps: 1000 / t.wall }));
}

async function main(): Promise<void> {
  const mnist = loadMnist('t10k');
  const small = Array.from({ length: quick ? 500 : 3000 }, (_, i) => renderOriginalFrameSync(mnistImage(mnist, i)));
  const large = Array.from({ length: quick ? 20 : 100 }, (_, i) => cameraFrameAt(i, { seed: 640, sizes: [[640, 480]] }).png);
  const rows = [...(await measure('28x28', small)), ...(await measure('640x480', large))];
  const width = Math.max(...rows.map((r) => r.what.length));
  process.stdout.write(
    `sharp.concurrency=${sharp.concurrency()} UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}\n`,
  );
  for (const r of rows) {
    process.stdout.write(
      `${r.what.padEnd(width)}  ${r.msPerFrame.toFixed(3).padStart(8)} ms/frame  ${Math.round(r.fps).toString().padStart(7)} frames/s  ${r.cpuMsPerFrame.toFixed(3).padStart(8)} ms CPU/frame\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
