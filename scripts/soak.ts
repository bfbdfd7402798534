/**
 * `npm run soak -- --minutes N --rate R`: the served pipeline (`npm start -- --serve`, in its
 * own process, on 127.0.0.1 only) under a steady camera load for a bounded time, reporting:
 *
 * - throughput and put-to-home latency (p50 / p99 / max), per interval and overall;
 * - memory over time: the pipeline process's resident set (every 250 ms) and each thread's
 *   heap after a full collection (every 5 s), with a growth verdict from a least-squares
 *   slope over the steady part of the run;
 * - the loss/duplicate ledger read back from the streams: frames in = predicted + rejected,
 *   uncertain within predicted, no frame missing, and how many duplicates were written.
 *
 * The load is MNIST test frames from several cameras, with one corrupt PNG in 100 (so the
 * reject path is loaded too). Bounded in time (at most 120 minutes) and count (rate x time,
 * at most 5,000 frames/s); nothing but loopback is used.
 *
 *   npm run soak -- --minutes 5 --rate 100
 *   npm run soak -- --minutes 1 --rate 50 --json soak.json
 *   npm run soak -- --minutes 8 --rate 400 --trim   # memory as npm start holds it: no ledger
 *   npm run soak -- --minutes 8 --rate 400 --trim --memory --snapshots /tmp/heaps  # what grows, by thread
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PipelineUnderTest, type RunResult } from '../bench/e2e';
import { type BenchFrame, mnistFrames } from '../bench/frames';
import { describeGrowth } from '../bench/heap-snapshot-diff';
import { maxOf, percentile } from '../bench/stats';
import { boundedMemoriesFull, minutesToJudge, steadyFrom } from '../bench/steady-part';
import { loadConfig } from '../functions/lib/config';
import { createKinesisClient } from '../functions/lib/kinesis';
import { balance, type Ledger, readStreams } from '../test/helpers/accounting';

interface Options {
  minutes: number;
  rate: number;
  cameras: number;
  intervalSeconds: number;
  persist: boolean;
  transport: 'direct' | 'http';
  /** Let the emulator trim finished records as npm start does, and read no ledger. */
  trim: boolean;
  /** Write two heap snapshots per thread here (after the warm-up, near the end) and compare them. */
  snapshots: string | undefined;
  json: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      rate: { type: 'string' },
      cameras: { type: 'string' },
      interval: { type: 'string' },
      memory: { type: 'boolean' },
      transport: { type: 'string' },
      trim: { type: 'boolean' },
      snapshots: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      [
        'usage: npm run soak -- [--minutes N] [--rate R] [--cameras C] [--interval S] [--memory] [--transport T] [--trim] [--snapshots DIR] [--json FILE]',
        '  --minutes N   how long the load lasts (0.5-120, default 5)',
        '  --rate R      frames per second offered (1-5000, default 100)',
        '  --cameras C   cameras the frames come from (1-100, default 4)',
        '  --interval S  seconds per reporting interval (10-600, default 30)',
        '  --memory      keep the emulator in memory (default: LevelDB in a temporary folder, as',
        '                with --persist, so the resident set is the pipeline and not the data)',
        '  --transport T how the pipeline reaches its emulator: direct (default, as npm start) or http',
        '  --trim        the emulator deletes finished records as npm start does (by default it keeps',
        '                every record for the ledger); no ledger then, only frames back home are counted',
        '  --snapshots DIR  each thread writes a heap snapshot into DIR after the warm-up and another',
        '                near the end; the soak prints what each thread holds more of in the second',
        '  --json FILE   also write the figures as JSON',
      ].join('\n'),
    );
    process.exit(0);
  }
  const num = (name: string, value: string | undefined, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new Error(`--${name} must be a number from ${min} to ${max}, got ${value}`);
    return n;
  };
  return {
    minutes: num('minutes', values.minutes, 5, 0.5, 120),
    rate: num('rate', values.rate, 100, 1, 5000),
    cameras: Math.round(num('cameras', values.cameras, 4, 1, 100)),
    intervalSeconds: num('interval', values.interval, 30, 10, 600),
    persist: values.memory !== true,
    transport: transportOf(values.transport),
    trim: values.trim === true,
    snapshots: values.snapshots,
    json: values.json,
  };
}

function transportOf(value: string | undefined): 'direct' | 'http' {
  if (value === undefined || value === 'direct' || value === 'http') return value ?? 'direct';
  throw new Error(`--transport must be direct or http, got ${value}`);
}

interface HeapSample {
  t: number;
  at: number;
  thread: string;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/**
 * The process's memory by kind at each of the main thread's samples, summed over its threads
 * (each thread's latest sample): V8 heaps as reserved and as used after a full collection, and
 * external memory (buffers, typed arrays). The resident set less these is native memory: the
 * allocator's, the model's, code.
 */
function memoryByKind(
  samples: ReadonlyArray<HeapSample>,
): Array<{ t: number; heapTotal: number; heapUsed: number; external: number; rss: number }> {
  const latest = new Map<string, HeapSample>();
  const rows: Array<{ t: number; heapTotal: number; heapUsed: number; external: number; rss: number }> = [];
  for (const sample of [...samples].sort((a, b) => a.at - b.at)) {
    latest.set(sample.thread, sample);
    if (sample.thread !== 'main') continue;
    const all = [...latest.values()];
    const sum = (pick: (h: HeapSample) => number): number => all.reduce((total, h) => total + pick(h), 0);
    rows.push({
      t: sample.t,
      heapTotal: sum((h) => h.heapTotal),
      heapUsed: sum((h) => h.heapUsed),
      external: sum((h) => h.external),
      rss: sample.rss,
    });
  }
  return rows;
}

/** Least-squares slope of y over x, units of y per unit of x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** One frame in this many of the soak's load is a corrupt PNG (rejected, not predicted). */
const CORRUPT_EVERY = 100;

/** The soak's bounded memory that fills last. */
function memoriesFull(options: Options): { seconds: number; what: string } {
  return boundedMemoriesFull(options.rate, loadConfig({}).metricsWindowSeconds, 1 - 1 / CORRUPT_EVERY);
}

interface Growth {
  /** MB at the start and end of the steady part (fitted line), and the slope per 10 minutes. */
  fromMb: number;
  toMb: number;
  mbPer10Min: number;
  mbPer10kFrames: number;
  verdict: string;
}

/**
 * Growth of a series over the steady part (after the warm-up): the fitted line's rise. "flat"
 * when it rises less than 2 MB (or 2% of its level) over the steady part; otherwise "grows"
 * with the rate, so a reader can tell a leak from a bounded cost per frame.
 */
function growth(points: ReadonlyArray<readonly [number, number]>, framesPerSecond: number): Growth {
  const mb = points.map(([t, bytes]) => [t, bytes / 1024 / 1024] as const);
  const span = (mb[mb.length - 1]?.[0] ?? 0) - (mb[0]?.[0] ?? 0);
  if (mb.length < 3 || span < 60) {
    return {
      fromMb: Number.NaN,
      toMb: Number.NaN,
      mbPer10Min: Number.NaN,
      mbPer10kFrames: Number.NaN,
      verdict: 'too short to tell (needs a minute of samples past the warm-up)',
    };
  }
  const s = slope(mb);
  const t0 = mb[0]?.[0] ?? 0;
  const t1 = mb[mb.length - 1]?.[0] ?? 0;
  const mean = mb.reduce((sum, [, y]) => sum + y, 0) / Math.max(1, mb.length);
  const mt = mb.reduce((sum, [t]) => sum + t, 0) / Math.max(1, mb.length);
  const fromMb = mean + s * (t0 - mt);
  const toMb = mean + s * (t1 - mt);
  const rise = toMb - fromMb;
  const flat = !(rise > Math.max(2, 0.02 * mean));
  return {
    fromMb,
    toMb,
    mbPer10Min: s * 600,
    mbPer10kFrames: framesPerSecond > 0 ? (s / framesPerSecond) * 10_000 : Number.NaN,
    verdict: flat ? 'flat (no growth)' : `grows ${(s * 600).toFixed(1)} MB per 10 min`,
  };
}

const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
const ms = (seconds: number): string => (Number.isFinite(seconds) ? `${Math.round(seconds * 1000)} ms` : '-');

/** A one-in-a-hundred corrupt frame: the PNG cut in half (its camera and time stay valid). */
function withCorruptFrames(frames: BenchFrame[]): BenchFrame[] {
  return frames.map((frame, i) =>
    i % CORRUPT_EVERY === CORRUPT_EVERY - 1 ? { png: frame.png.subarray(0, frame.png.length >> 1), label: null } : frame,
  );
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'soak-'));
  if (options.snapshots) mkdirSync(options.snapshots, { recursive: true });
  // The probe writes its snapshots next to the heap file.
  const heapFile = join(options.snapshots ?? work, 'heap.jsonl');
  if (options.snapshots) rmSync(heapFile, { force: true });
  const probe = join(__dirname, 'soak-heap-probe.cjs');
  const frames = withCorruptFrames(mnistFrames(10_000));
  const base64 = frames.map((f) => f.png.toString('base64'));
  const totalFrames = Math.round(options.minutes * 60 * options.rate);
  const perInterval = Math.max(1, Math.round(options.intervalSeconds * options.rate));

  console.error(
    `soak: ${options.minutes} min at ${options.rate} frames/s from ${options.cameras} cameras (${totalFrames} frames), ` +
      `emulator ${options.persist ? 'on LevelDB' : 'in memory'}${options.trim ? ' (trimming finished records)' : ' (keeping every record)'}, ${options.transport} path; ${cpus().length} cores, load ${loadavg()[0]?.toFixed(1)}`,
  );
  const pipeline = await PipelineUnderTest.start({
    nodeArgs: ['--expose-gc', '--require', probe],
    env: {
      SOAK_HEAP_FILE: heapFile,
      SOAK_HEAP_INTERVAL_MS: '5000',
      ...(options.snapshots ? { SOAK_HEAP_SNAPSHOTS: snapshotTimes(options).join(',') } : {}),
    },
    ...(options.persist ? { persistDir: join(work, 'persist') } : {}),
    transport: options.transport,
    // The ledger reads every stream back from the oldest record: nothing may be trimmed.
    ...(options.trim ? {} : { retainConsumed: 'all' as const }),
  });
  const host = new URL(pipeline.endpoint).hostname;
  if (host !== '127.0.0.1') throw new Error(`the pipeline serves on ${host}, not loopback`);

  const intervals: Array<{ n: number; result: RunResult; endedAt: number }> = [];
  // Memory samples taken while the load ran (reading the streams back afterwards costs memory
  // of its own and is not part of the soak).
  let loadRssSamples = 0;
  let loadHeapSamples = 0;
  let ledger: Ledger | undefined;
  let unreadable = 0;
  const began = performance.now();
  try {
    console.error(`serving on ${pipeline.endpoint}, pid ${pipeline.pid}`);
    console.error('interval  frames  frames/s   p50     p99     max    missing   RSS MB  main heap MB');
    let sent = 0;
    for (let k = 1; sent < totalFrames; k++) {
      const n = Math.min(perInterval, totalFrames - sent);
      const result = await pipeline.run(frames, base64, `soak-${k}`, n, options.rate, options.cameras, 300_000);
      sent += n;
      intervals.push({ n, result, endedAt: (performance.now() - began) / 1000 });
      const rss = pipeline.samples[pipeline.samples.length - 1]?.rssMb ?? Number.NaN;
      const heap = heapSamples(heapFile).filter((h) => h.thread === 'main');
      const lastHeap = heap[heap.length - 1];
      console.error(
        `${String(k).padStart(8)}  ${String(n).padStart(6)}  ${f1(result.fps).padStart(8)}  ${ms(percentile(result.latencies, 50)).padStart(6)}  ` +
          `${ms(percentile(result.latencies, 99)).padStart(6)}  ${ms(maxOf(result.latencies)).padStart(6)}  ${String(result.missing).padStart(7)}  ` +
          `${f1(rss).padStart(7)}  ${f1((lastHeap?.heapUsed ?? Number.NaN) / 1024 / 1024).padStart(12)}`,
      );
    }
    loadRssSamples = pipeline.samples.length;
    loadHeapSamples = heapSamples(heapFile).length;
    if (!options.trim) {
      const client = createKinesisClient({ endpoint: pipeline.endpoint });
      try {
        const contents = await readStreams(client);
        unreadable = contents.unreadable;
        ledger = balance(contents);
      } finally {
        client.destroy();
      }
    }
  } finally {
    await pipeline.stop();
  }

  // ---- figures ------------------------------------------------------------------------------
  const seconds = (performance.now() - began) / 1000;
  const latencies = intervals.flatMap((i) => i.result.latencies);
  const published = intervals.reduce((sum, i) => sum + i.n, 0);
  const missing = intervals.reduce((sum, i) => sum + i.result.missing, 0);
  const loadSeconds = intervals.reduce((sum, i) => sum + i.result.seconds, 0);
  const fps = (published - missing) / loadSeconds;
  const full = memoriesFull(options);
  const warmup = steadyFrom(options.minutes * 60, full);
  const loadSamples = pipeline.samples.slice(0, loadRssSamples);
  const rssPoints = loadSamples.filter((s) => s.t >= warmup).map((s) => [s.t, s.rssMb * 1024 * 1024] as const);
  const heap = heapSamples(heapFile).slice(0, loadHeapSamples);
  const threads = [...new Set(heap.map((h) => h.thread))];
  /** Growth of one measure over rows of samples, each at a time in seconds. */
  const growthOf = <T>(rows: readonly T[], at: (row: T) => number, pick: (row: T) => number): Growth =>
    growth(
      rows.map((row) => [at(row), pick(row)] as const),
      options.rate,
    );
  const heapGrowth = Object.fromEntries(
    threads.map((thread) => {
      const series = heap.filter((h) => h.thread === thread);
      const first = series[0]?.at ?? 0;
      const steady = series.filter((h) => (h.at - first) / 1000 >= warmup);
      const of = (pick: (h: HeapSample) => number) => growthOf(steady, (h) => (h.at - first) / 1000, pick);
      return [thread, { ...of((h) => h.heapUsed), reserved: of((h) => h.heapTotal), external: of((h) => h.external) }];
    }),
  );
  const rssGrowth = growth(rssPoints, options.rate);
  const byKind = memoryByKind(heap).filter((row) => row.t >= warmup);
  const ofKind = (pick: (row: (typeof byKind)[number]) => number) => growthOf(byKind, (row) => row.t, pick);
  const kindGrowth = {
    heap_reserved: ofKind((r) => r.heapTotal),
    heap_used: ofKind((r) => r.heapUsed),
    external: ofKind((r) => r.external),
    native: ofKind((r) => r.rss - r.heapTotal - r.external),
  };
  const peakRss = maxOf(loadSamples.map((s) => s.rssMb));
  const timeline = loadSamples.filter((_, i, all) => i % Math.max(1, Math.floor(all.length / 12)) === 0);
  const result = {
    command: `npm run soak -- --minutes ${options.minutes} --rate ${options.rate}`,
    minutes: options.minutes,
    offered_rate: options.rate,
    cameras: options.cameras,
    emulator: options.persist ? 'leveldb' : 'memory',
    transport: options.transport,
    trimmed: options.trim,
    frames_published: published,
    frames_per_second: Math.round(fps * 10) / 10,
    latency_p50_s: percentile(latencies, 50),
    latency_p99_s: percentile(latencies, 99),
    latency_max_s: maxOf(latencies),
    intervals: intervals.map((i) => ({
      frames: i.n,
      fps: Math.round(i.result.fps * 10) / 10,
      p99_s: percentile(i.result.latencies, 99),
      missing: i.result.missing,
      cpu_ms_per_frame: Math.round(i.result.cpuMsPerFrame * 100) / 100,
    })),
    steady_from_s: Math.round(warmup),
    rss_mb: { peak: peakRss, growth: rssGrowth, timeline: timeline.map((s) => [Math.round(s.t), Math.round(s.rssMb)]) },
    heap_mb_after_gc: heapGrowth,
    memory_by_kind: kindGrowth,
    ledger: ledger && {
      frames_in: ledger.framesIn,
      predicted: ledger.predicted,
      rejected: ledger.rejected,
      uncertain: ledger.uncertain,
      missing: ledger.missing.length,
      predicted_and_rejected: ledger.predictedAndRejected.length,
      uncertain_not_predicted: ledger.uncertainNotPredicted.length,
      duplicates_written: ledger.duplicates,
      unreadable_outputs: unreadable,
    },
    seconds: Math.round(seconds),
    cores: cpus().length,
    load_average: loadavg()[0],
    measured_at: new Date().toISOString(),
  };

  const lines = [
    '',
    `== soak: ${result.command}`,
    `frames      ${published} published, ${published - missing} back home in time, ${missing} missing`,
    `throughput  ${f1(fps)} frames/s (offered ${options.rate})`,
    `latency     put to home: p50 ${ms(result.latency_p50_s)}, p99 ${ms(result.latency_p99_s)}, max ${ms(result.latency_max_s)}`,
    `steady part from ${Math.round(warmup)} s of load: ${full.what} are full by ${Math.round(full.seconds)} s at this rate` +
      (rssGrowth.verdict.startsWith('too short') ? `; run at least ${minutesToJudge(full)} minutes to judge memory` : ''),
    `RSS         peak ${f1(peakRss)} MB; steady part ${f1(rssGrowth.fromMb)} -> ${f1(rssGrowth.toMb)} MB: ${rssGrowth.verdict}`,
    ...Object.entries(heapGrowth).map(
      ([thread, g]) =>
        `heap ${thread.padEnd(9)} after GC ${f1(g.fromMb)} -> ${f1(g.toMb)} MB: ${g.verdict} (${f1(g.mbPer10kFrames)} MB per 10k frames); ` +
        `reserved ${f1(g.reserved.fromMb)} -> ${f1(g.reserved.toMb)}, external ${f1(g.external.fromMb)} -> ${f1(g.external.toMb)}`,
    ),
    `by kind     all threads, after GC: V8 heaps reserved ${f1(kindGrowth.heap_reserved.fromMb)} -> ${f1(kindGrowth.heap_reserved.toMb)} MB ` +
      `(used ${f1(kindGrowth.heap_used.fromMb)} -> ${f1(kindGrowth.heap_used.toMb)}), external ${f1(kindGrowth.external.fromMb)} -> ${f1(kindGrowth.external.toMb)}, ` +
      `native (RSS less both) ${f1(kindGrowth.native.fromMb)} -> ${f1(kindGrowth.native.toMb)}`,
    `RSS over time (s, MB): ${result.rss_mb.timeline.map(([t, mb]) => `${t}:${mb}`).join(' ')}`,
    ledger
      ? `ledger      in ${ledger.framesIn} = predicted ${ledger.predicted} + rejected ${ledger.rejected}; uncertain ${ledger.uncertain} (${ledger.uncertainNotPredicted.length} not predicted); ` +
        `missing ${ledger.missing.length}; duplicates written ${ledger.duplicates.predictions}/${ledger.duplicates.uncertain}/${ledger.duplicates.rejected} (predictions/uncertain/rejected)`
      : `ledger      not read${options.trim ? ' (--trim: the streams no longer hold every record)' : ''}`,
    `(${Math.round(seconds)} s; ${cpus().length} cores, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})`,
  ];
  console.log(lines.join('\n'));
  if (options.snapshots) console.log(snapshotGrowth(options.snapshots).join('\n'));
  if (options.json) writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
  rmSync(work, { recursive: true, force: true });
  if (options.trim) return missing === 0 ? 0 : 1;
  const balanced =
    ledger !== undefined &&
    missing === 0 &&
    ledger.missing.length === 0 &&
    ledger.predictedAndRejected.length === 0 &&
    ledger.uncertainNotPredicted.length === 0 &&
    ledger.predicted + ledger.rejected === ledger.framesIn &&
    unreadable === 0;
  return balanced ? 0 : 1;
}

/**
 * When the threads write their snapshots: at the start of the steady part, and 30 s before the
 * load ends. A run too short to judge memory still compares its heaps from a fifth of the run.
 */
function snapshotTimes(options: Options): number[] {
  const seconds = options.minutes * 60;
  const last = Math.max(90, seconds - 30);
  const steady = steadyFrom(seconds, memoriesFull(options));
  const heapsWarm = steadyFrom(seconds, { seconds: 0 });
  return [Math.round(steady < last - 60 ? steady : heapsWarm), Math.round(last)];
}

/** For each thread with two snapshots: what it holds more of in the later one. */
function snapshotGrowth(dir: string): string[] {
  const byThread = new Map<string, string[]>();
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.heapsnapshot'))) {
    const thread = name.replace(/-at-\d+s\.heapsnapshot$/, '');
    byThread.set(thread, [...(byThread.get(thread) ?? []), name]);
  }
  const seconds = (name: string): number => Number(/-at-(\d+)s\./.exec(name)?.[1] ?? 0);
  return [...byThread].flatMap(([thread, names]) => {
    const [before, after] = names.sort((a, b) => seconds(a) - seconds(b));
    if (!before || !after) return [`heap snapshots of ${thread}: only ${names.join(', ')}`];
    return [
      `heap snapshots of ${thread}, ${seconds(before)} s -> ${seconds(after)} s (own sizes by kind):`,
      ...describeGrowth(join(dir, before), join(dir, after)),
    ];
  });
}

function heapSamples(file: string): HeapSample[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as HeapSample];
      } catch {
        return [];
      }
    });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
