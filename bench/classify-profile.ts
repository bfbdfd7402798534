/**
 * Where the classify handler's wall time goes beside the limit's, by V8's CPU profile of this
 * thread: runs the limit (prepare + predict) or the classify stage (bench/classify-stage.ts)
 * on 28x28 or 640x480 frames for a few seconds under the inspector's profiler, and prints the
 * wall time per frame split by what it was for (each sample goes to its nearest frame in our
 * files: preparation, inference, the handler's own parts) and by function, with the time this
 * thread sat idle (waiting for onnxruntime's or libuv's threads) and in the garbage collector.
 *
 *   npx tsx bench/classify-profile.ts 28 limit
 *   npx tsx bench/classify-profile.ts 28 classify json     # record format: json or png
 */
import { Session } from 'node:inspector/promises';
import { loadDigitModel } from '../functions/lib/model';
import { classifyRate } from './classify-stage';
import { type FrameKind, framesOf, kinesisRecords, type RecordFormat } from './frames';
import { prepareAndPredictRate } from './limits';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** What a sample's nearest frame of ours says its time was for, by file. */
const CATEGORIES: ReadonlyArray<readonly [string, RegExp]> = [
  ['preparation (decode, normalise)', /functions\/lib\/(prepare\/|png\.ts|decode\.ts|pixel-budget\.ts)/],
  ['inference (model, onnxruntime)', /functions\/lib\/model\.ts|onnxruntime/],
  ['handler: read and check records', /functions\/lib\/(validate-frame|kinesis-records|contracts)\.ts/],
  ['handler: route and encode outputs', /functions\/lib\/(route|collection)\.ts/],
  ['handler: the batch itself', /functions\/lib\/classify-batch\.ts/],
  ['benchmark harness', /bench\//],
];

/**
 * Self time per sample attributed up its stack: V8's own entries (garbage collector, idle,
 * program) by name; anything else to the category of its nearest frame in one of our files,
 * and the function's own name beside it. Microseconds.
 */
function attributed(profile: Profile): { categories: Map<string, number>; functions: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);
  const categoryOf = (id: number): string => {
    const own = byId.get(id)?.callFrame.functionName ?? '';
    if (['(garbage collector)', '(idle)', '(program)'].includes(own)) return own;
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)?.callFrame.url ?? '';
      for (const [name, pattern] of CATEGORIES) if (pattern.test(url)) return name;
    }
    return 'other';
  };
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i + 1] ?? 0;
    const category = categoryOf(id);
    categories.set(category, (categories.get(category) ?? 0) + us);
    const frame = byId.get(id)?.callFrame;
    const file = (frame?.url ?? '').replace(/^.*\/(node_modules\/[^/]+|functions|bench|local)\//, '$1/');
    const key = `${category}: ${frame?.functionName || '(anonymous)'}${file ? ` ${file}` : ''}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  });
  return { categories, functions };
}

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? '28') as FrameKind;
  const what = process.argv[3] ?? 'limit';
  const format = (process.argv[4] ?? (kind === '28' ? 'json' : 'png')) as RecordFormat;
  if (kind !== '28' && kind !== '640') throw new Error('kind must be 28 or 640');
  if (what !== 'limit' && what !== 'classify') throw new Error('what must be limit or classify');
  const batch = 100;
  const total = kind === '28' ? 20_000 : 200;
  const frames = framesOf(kind, kind === '28' ? 1000 : 24);
  const records = kinesisRecords(frames, 'bench-classify', format);
  const model = await loadDigitModel();
  const run = () =>
    what === 'limit' ? prepareAndPredictRate(model, frames, batch, total) : classifyRate(model, records, batch, total);
  await run(); // warm-up

  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const measured = await run();
  const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
  session.disconnect();

  const { categories, functions } = attributed(profile);
  const all = [...categories.values()].reduce((sum, us) => sum + us, 0);
  const perFrame = (us: number): string => `${(us / 1000 / total).toFixed(4)} ms`;
  const rows = (map: Map<string, number>, top: number): string[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `${perFrame(us).padStart(10)}  ${((100 * us) / all).toFixed(1).padStart(5)}%  ${name}`);
  console.log(
    `${what}, ${kind === '28' ? '28x28' : '640x480'}${what === 'classify' ? `, ${format} records` : ''}: ${measured.fps.toFixed(0)} frames/s, ` +
      `${measured.cpuMsPerFrame.toFixed(4)} ms CPU per frame (all threads); this thread's wall time per frame ${perFrame(all)}`,
  );
  console.log(rows(categories, 20).join('\n'));
  console.log('by function:');
  console.log(rows(functions, Number(process.env.TOP ?? 12)).join('\n'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
