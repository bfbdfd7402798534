/**
 * `npm run bench`: how close the pipeline runs to the physics of its work (PNG decoding,
 * normalisation and ONNX inference), measured side by side in one run because absolute times
 * on a shared machine drift.
 *
 *   npm run bench                       the full benchmark (a few minutes)
 *   npm run bench -- --quick            a short version of everything (under a minute)
 *   npm run bench -- --json out.json    also write the medians as JSON
 *   npm run bench -- --frames 100000    also a long run: is memory flat over 100k frames?
 *
 * Sections: (1) limits in this process; (2) the classify stage on Kinesis-shaped batches with
 * no streams; (3) end to end through `npm start -- --serve` (embedded emulator, mapping runner,
 * real handlers, home readers) in its own process; (4) that process's memory. Every figure is
 * min / median / max over repeated runs; ratios compare medians of the same run.
 */
import { cpus, loadavg } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadDigitModel } from '../functions/lib/model';
import { loadServiceDefinition } from '../local/runner/mappings';
import { classifyRate } from './classify-stage';
import { PipelineUnderTest, type MemorySample, type PipelineSettings } from './e2e';
import { type BenchFrame, type FrameKind, type RecordFormat, framesOf, kinesisRecords } from './frames';
import {
  decodeRate,
  inferenceRate,
  type Measured,
  normaliseRate,
  prepareAndPredictRate,
  prepareRate,
  preparedOf,
} from './limits';
import { type Figure, figure, fmt, percentile, renderTable, type Row } from './stats';

/**
 * The original edge application on this machine, rebuilt faithfully (PIL preparation and a
 * scikit-learn SVC of the original's size: 12,336 support vectors, trained on the 60k MNIST
 * images): preparation + prediction of 28x28 frames, one at a time, 98.0% accurate. Measured
 * once by hand, NOT re-measured by this benchmark.
 */
export const ORIGINAL = { fps: 147, medianMs: 6.6, accuracy: 0.98 } as const;

const USAGE = `usage: npm run bench -- [--quick] [--json FILE] [--frames N] [--runs R] [--shards S] [--parallelism P] [--record-format F] [--skip LIST]
  --quick          a short version of everything (under a minute)
  --json FILE      write the medians as JSON
  --frames N       also publish N 28x28 frames at 75% of the sustained rate and report memory over time
  --runs R         repetitions of every figure (default 5, quick 3; end to end 3, quick 2)
  --cameras C      cameras publishing in turn in the end-to-end runs (default 4)
  --shards S       shards of camera-images for the end-to-end runs (default: serverless.yml's)
  --parallelism P  classify batches in flight per shard for the end-to-end runs (default: serverless.yml's)
  --record-format F  camera-images records for the end-to-end runs and the headline classify figure:
                   json, png, or auto (default: JSON for 28x28 as the original sent them, PNG records
                   for 640x480); the classify stage is measured in both formats either way
  --transport LIST how the pipeline reaches its emulator in the end-to-end runs: direct, http, or both
                   (default direct,http: the first gets the latency and long runs, both the sustained
                   runs, their CPU per frame by thread and their peak memory)
  --persist        the long memory run keeps the emulator's streams in LevelDB (npm start --persist) instead of memory
  --skip LIST      comma-separated sections to leave out: limits, classify, e2e, 640`;

interface Sizes {
  runs: number;
  e2eRuns: number;
  pool28: number;
  pool640: number;
  limit28: number;
  limit640: number;
  inferB1: number;
  inferBatch: number;
  e2e28: number;
  e2e640: number;
  latencySeconds: number;
  warm28: number;
  warm640: number;
}

const FULL: Sizes = {
  runs: 5,
  e2eRuns: 3,
  pool28: 2000,
  pool640: 48,
  limit28: 3000,
  limit640: 200,
  inferB1: 2000,
  inferBatch: 20_000,
  e2e28: 10_000,
  e2e640: 300,
  latencySeconds: 10,
  warm28: 4000,
  warm640: 60,
};
const QUICK: Sizes = {
  runs: 3,
  e2eRuns: 2,
  pool28: 1000,
  pool640: 6,
  limit28: 1000,
  limit640: 24,
  inferB1: 500,
  inferBatch: 5000,
  e2e28: 1500,
  e2e640: 16,
  latencySeconds: 2,
  warm28: 600,
  warm640: 6,
};

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      json: { type: 'string' },
      frames: { type: 'string' },
      runs: { type: 'string' },
      shards: { type: 'string' },
      cameras: { type: 'string' },
      persist: { type: 'boolean' },
      parallelism: { type: 'string' },
      skip: { type: 'string' },
      'record-format': { type: 'string' },
      transport: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  const int = (name: string, value: string | undefined, min: number): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    return n;
  };
  const recordFormat = values['record-format'] ?? 'auto';
  if (!['json', 'png', 'auto'].includes(recordFormat))
    throw new Error(`--record-format must be json, png or auto, got ${JSON.stringify(recordFormat)}`);
  const transports = (values.transport ?? 'direct,http').split(',').filter((t) => t !== '');
  for (const t of transports) if (t !== 'direct' && t !== 'http') throw new Error(`--transport: unknown path ${t}`);
  if (transports.length === 0) throw new Error('--transport: name at least one path');
  const skip = new Set((values.skip ?? '').split(',').filter((s) => s !== ''));
  for (const s of skip) if (!['limits', 'classify', 'e2e', '640'].includes(s)) throw new Error(`--skip: unknown section ${s}`);
  return {
    help: values.help === true,
    quick: values.quick === true,
    json: values.json,
    frames: int('frames', values.frames, 1000),
    runs: int('runs', values.runs, 1),
    shards: int('shards', values.shards, 1),
    cameras: int('cameras', values.cameras, 1) ?? 4,
    persist: values.persist === true,
    parallelism: int('parallelism', values.parallelism, 1),
    recordFormat: recordFormat as RecordFormat | 'auto',
    transports: transports as Array<'direct' | 'http'>,
    skip,
  };
}

/** Prints progress on stderr so stdout holds only the table. */
function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function main(): Promise<void> {
  const options = parseOptions();
  if (options.help) {
    console.log(USAGE);
    return;
  }
  const sizes: Sizes = { ...(options.quick ? QUICK : FULL) };
  if (options.runs !== undefined) {
    sizes.runs = options.runs;
    sizes.e2eRuns = options.runs;
  }
  const kinds: FrameKind[] = options.skip.has('640') ? ['28'] : ['28', '640'];
  const began = performance.now();

  const definition = await loadServiceDefinition({ stage: 'local' });
  const classifyMapping = definition.mappings.find((m) => m.functionKey === 'classify');
  const batch = classifyMapping?.batchSize ?? 100;
  const model = await loadDigitModel();
  progress(
    `model ${model.version}; classify batch size ${batch} (serverless.yml); ${cpus().length} cores, load ${loadavg()[0]?.toFixed(1)}`,
  );

  const frames: Record<FrameKind, BenchFrame[]> = { '28': [], '640': [] };
  const base64: Record<FrameKind, string[]> = { '28': [], '640': [] };
  for (const kind of kinds) {
    const t = performance.now();
    frames[kind] = framesOf(kind, kind === '28' ? sizes.pool28 : sizes.pool640);
    base64[kind] = frames[kind].map((f) => f.png.toString('base64'));
    const bytes = frames[kind].reduce((s, f) => s + f.png.length, 0) / frames[kind].length;
    progress(
      `${frames[kind].length} ${kind === '28' ? '28x28' : '640x480'} frames (mean PNG ${fmt(bytes / 1024)} KB) in ${fmt((performance.now() - t) / 1000)} s`,
    );
  }

  const rows: Row[] = [];
  const medians: Record<string, number> = {};
  const add = (row: Row, key?: string): Figure => {
    rows.push(row);
    if (key) medians[key] = row.value.median;
    if (key && row.cpuMs !== undefined) medians[`${key.replace(/_fps/, '')}_cpu_ms_per_frame`] = row.cpuMs;
    return row.value;
  };
  /** Repeats a measurement; the row shows frames/s and the median CPU time per frame. */
  const repeat = async (runs: number, measure: () => Promise<Measured>): Promise<{ value: Figure; cpuMs: number }> => {
    const fps: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < runs; r++) {
      const m = await measure();
      fps.push(m.fps);
      cpu.push(m.cpuMsPerFrame);
    }
    return { value: figure(fps), cpuMs: figure(cpu).median };
  };
  const label = (kind: FrameKind) => (kind === '28' ? '28x28' : '640x480');
  /** The record format of a kind's end-to-end runs and headline classify figure. */
  const formatOf = (kind: FrameKind): RecordFormat =>
    options.recordFormat !== 'auto' ? options.recordFormat : kind === '28' ? 'json' : 'png';
  const formatName = (format: RecordFormat) => (format === 'json' ? 'JSON records' : 'PNG records');
  const limits: Partial<Record<FrameKind, Figure>> = {};
  const limitCpuMs: Partial<Record<FrameKind, number>> = {};
  const classifyRows: Array<{ key: string; row: Row }> = [];

  // ---- (1) limits --------------------------------------------------------------------------
  if (!options.skip.has('limits') || !options.skip.has('classify')) {
    const prepared = await preparedOf(frames['28'].slice(0, 1000));
    if (!options.skip.has('limits')) {
      progress('limits: inference');
      await inferenceRate(model, prepared, batch, batch * 5); // warm-up
      add(
        {
          section: '1. limits, in process',
          name: 'inference alone, batch 1',
          ...(await repeat(sizes.runs, () => inferenceRate(model, prepared, 1, sizes.inferB1))),
          unit: 'frames/s',
        },
        'infer_fps_batch1',
      );
      add(
        {
          section: '1. limits, in process',
          name: `inference alone, batch ${batch}`,
          ...(await repeat(sizes.runs, () => inferenceRate(model, prepared, batch, sizes.inferBatch))),
          unit: 'frames/s',
        },
        'infer_fps_batch',
      );
    }
    for (const kind of kinds) {
      const f = frames[kind];
      const total = kind === '28' ? sizes.limit28 : sizes.limit640;
      progress(`limits: ${label(kind)} preparation`);
      await prepareAndPredictRate(model, f, batch, Math.min(total, batch * 2)); // warm-up
      if (!options.skip.has('limits')) {
        add(
          {
            section: '1. limits, in process',
            name: `${label(kind)} decode alone`,
            ...(await repeat(sizes.runs, () => decodeRate(f, batch, total))),
            unit: 'frames/s',
          },
          `decode_fps_${kind}`,
        );
        add(
          {
            section: '1. limits, in process',
            name: `${label(kind)} normalise alone`,
            ...(await repeat(sizes.runs, () => normaliseRate(f, total))),
            unit: 'frames/s',
          },
          `normalise_fps_${kind}`,
        );
        add(
          {
            section: '1. limits, in process',
            name: `${label(kind)} prepare (decode + normalise)`,
            ...(await repeat(sizes.runs, () => prepareRate(f, batch, total))),
            unit: 'frames/s',
          },
          `prepare_fps_${kind}`,
        );
      }
      // The limit and the classify stage alternate run by run, so both see the same load on a
      // shared machine; the ratio is the median of the paired ratios.
      const formats: RecordFormat[] = formatOf(kind) === 'json' ? ['json', 'png'] : ['png', 'json'];
      const records = formats.map((format) => kinesisRecords(f, 'bench-classify', format));
      const withClassify = !options.skip.has('classify');
      if (withClassify) for (const r of records) await classifyRate(model, r, batch, Math.min(total, batch * 2)); // warm-up
      const limitRuns: Measured[] = [];
      const classifyRuns: Measured[][] = formats.map(() => []);
      for (let r = 0; r < sizes.runs; r++) {
        progress(`limit and classify: ${label(kind)}, run ${r + 1}/${sizes.runs}`);
        limitRuns.push(await prepareAndPredictRate(model, f, batch, total));
        if (withClassify)
          for (const [k, kindRecords] of records.entries())
            (classifyRuns[k] as Measured[]).push(await classifyRate(model, kindRecords, batch, total));
      }
      const limitCpu = figure(limitRuns.map((m) => m.cpuMsPerFrame)).median;
      limits[kind] = add(
        {
          section: '1. limits, in process',
          name: `${label(kind)} prepare + predict = LIMIT`,
          value: figure(limitRuns.map((m) => m.fps)),
          cpuMs: limitCpu,
          unit: 'frames/s',
        },
        `limit_fps_${kind}`,
      );
      limitCpuMs[kind] = limitCpu;
      if (withClassify) {
        for (const [k, format] of formats.entries()) {
          const runs = classifyRuns[k] as Measured[];
          const cpuMs = figure(runs.map((m) => m.cpuMsPerFrame)).median;
          // The headline keys are the kind's own format; the other format's carry its name.
          const suffix = k === 0 ? '' : `_${format}`;
          const paired = figure(runs.map((m, j) => m.fps / (limitRuns[j] as Measured).fps)).median;
          classifyRows.push({
            key: `classify_fps_${kind}${suffix}`,
            row: {
              section: '2. classify handler, Kinesis-shaped batches, no streams',
              name: `${label(kind)} classify batch module, batch ${batch}, ${formatName(format)}`,
              value: figure(runs.map((m) => m.fps)),
              cpuMs,
              unit: 'frames/s',
              ratio: { to: 'limit', value: paired },
              note: `CPU per frame: ${fmt((limitCpu / cpuMs) * 100)}% of the limit's efficiency`,
            },
          });
          medians[`classify_limit_ratio_${kind}${suffix}`] = paired;
        }
      }
    }
    if (kinds.includes('28')) {
      const limit = limits['28'] as Figure;
      rows.push({
        section: '1. limits, in process',
        name: '28x28 original (PIL + SVC), NOT re-measured',
        value: figure([ORIGINAL.fps]),
        unit: 'frames/s',
        ratio: { to: 'limit', value: ORIGINAL.fps / limit.median },
        note: `measured once by hand on this machine; ${ORIGINAL.medianMs} ms median per frame`,
      });
    }

    // ---- (2) classify stage (measured above, alternating with the limit) ----------------------
    for (const { key, row } of classifyRows) add(row, key);
  }

  // ---- (3) + (4) end to end ------------------------------------------------------------------
  const settings: PipelineSettings = {
    ...(options.shards !== undefined ? { shards: options.shards } : {}),
    ...(options.parallelism !== undefined ? { parallelism: options.parallelism } : {}),
  };
  const { cameras } = options;
  let sustained28: number | undefined;
  /** Per-thread CPU per frame of each path's sustained runs, by kind: role -> ms. */
  const threadCpu: Record<string, Record<string, number>> = {};
  if (!options.skip.has('e2e')) {
    for (const [t, transport] of options.transports.entries()) {
      // The first path is the headline (its keys carry no suffix); only it gets the latency runs.
      const suffix = t === 0 ? '' : `_${transport}`;
      progress(`end to end over the ${transport} path: starting the pipeline (npm start -- --serve --transport ${transport})`);
      const pipeline = await PipelineUnderTest.start({ ...settings, transport });
      try {
        const section = `3. end to end, ${cameras} cameras, npm start -- --serve --transport ${transport}${options.shards ? ` --shards ${options.shards}` : ''}${options.parallelism ? ` --parallelism ${options.parallelism}` : ''}`;
        let runId = 0;
        for (const kind of kinds) {
          const count = kind === '28' ? sizes.e2e28 : sizes.e2e640;
          // Warm-up: the first thousands of frames (JIT of handlers, SDK, emulator) run measurably
          // slower than the steady state.
          await pipeline.run(
            frames[kind],
            base64[kind],
            `bench-warm-${kind}`,
            kind === '28' ? sizes.warm28 : sizes.warm640,
            0,
            cameras,
            undefined,
            formatOf(kind),
          );
          const fps: number[] = [];
          const publish: number[] = [];
          const cpu: number[] = [];
          const paired: number[] = [];
          const roles: Array<Record<string, number>> = [];
          let throttled = 0;
          for (let r = 0; r < sizes.e2eRuns; r++) {
            progress(`end to end (${transport}): ${label(kind)} sustained, run ${r + 1}/${sizes.e2eRuns} (${count} frames)`);
            // The limit again, right before the run, while the pipeline idles: the pair sees the same load.
            const limitNow = await prepareAndPredictRate(
              model,
              frames[kind],
              batch,
              kind === '28' ? sizes.limit28 : sizes.limit640,
            );
            const result = await pipeline.run(
              frames[kind],
              base64[kind],
              `bench-${kind}-max-${++runId}`,
              count,
              0,
              cameras,
              undefined,
              formatOf(kind),
            );
            if (result.missing > 0) throw new Error(`${result.missing} of ${count} frames never came back`);
            fps.push(result.fps);
            publish.push(result.publishFps);
            cpu.push(result.cpuMsPerFrame);
            paired.push(result.fps / limitNow.fps);
            roles.push(result.threadCpuMsPerFrame);
            throttled += result.throttled;
          }
          const value = figure(fps);
          if (kind === '28' && t === 0) sustained28 = value.median;
          const byRole = medianByRole(roles);
          threadCpu[`${kind}${suffix}`] = byRole;
          add(
            {
              section,
              name: `${label(kind)} sustained, camera-images to predictions, ${formatName(formatOf(kind))}`,
              value,
              cpuMs: figure(cpu).median,
              unit: 'frames/s',
              ...(limits[kind] ? { ratio: { to: 'limit', value: value.median / (limits[kind] as Figure).median } } : {}),
              note: `${fmt(figure(paired).median * 100)}% of the limit re-measured before each run; backlog of ${count} frames; camera put ${fmt(figure(publish).median)} frames/s, throttled ${throttled} times`,
            },
            `e2e_fps_${kind}${suffix}`,
          );
          rows.push({
            section,
            name: `${label(kind)} CPU per frame by thread`,
            value: figure([figure(cpu).median]),
            unit: 'cpu ms',
            note: Object.entries(byRole)
              .sort((a, b) => b[1] - a[1])
              .map(([role, ms]) => `${role} ${fmt(ms)}`)
              .join(', '),
          });
          for (const [role, ms] of Object.entries(byRole)) medians[`e2e_${kind}${suffix}_cpu_ms_per_frame_${role}`] = ms;
          medians[`e2e_${kind}${suffix}_cpu_ms_per_frame`] = figure(cpu).median;
          medians[`e2e_limit_ratio_${kind}${suffix}`] = figure(paired).median;
          if (t > 0) continue;
          for (const share of [0.5, 0.9]) {
            const rate = value.median * share;
            const p50: number[] = [];
            const p99: number[] = [];
            for (let r = 0; r < sizes.e2eRuns; r++) {
              progress(
                `end to end (${transport}): ${label(kind)} latency at ${share * 100}% (${fmt(rate)} frames/s), run ${r + 1}/${sizes.e2eRuns}`,
              );
              const n = Math.max(20, Math.round(rate * sizes.latencySeconds));
              const result = await pipeline.run(
                frames[kind],
                base64[kind],
                `bench-${kind}-lat-${++runId}`,
                n,
                rate,
                cameras,
                undefined,
                formatOf(kind),
              );
              if (result.missing > 0) throw new Error(`${result.missing} of ${n} frames never came back`);
              p50.push(percentile(result.latencies, 50));
              p99.push(percentile(result.latencies, 99));
            }
            const tag = `${label(kind)} at ${share * 100}% (${fmt(rate)} frames/s)`;
            add(
              { section, name: `${tag} latency p50`, value: figure(p50), unit: 's', note: 'put to prediction read back' },
              `e2e_p50_latency_s_${kind}_${share * 100}`,
            );
            add(
              { section, name: `${tag} latency p99`, value: figure(p99), unit: 's' },
              `e2e_p99_latency_s_${kind}_${share * 100}`,
            );
          }
        }
        const peak = pipeline.peakRssMb();
        add(
          {
            section: '4. memory of the pipeline process',
            name: `peak RSS over the end-to-end runs, ${transport} path`,
            value: figure([peak]),
            unit: 'MB',
            note: 'VmHWM of the npm start process (emulator included)',
          },
          `peak_rss_mb${suffix}`,
        );
        rows.push(memoryRow(`RSS over the end-to-end runs, ${transport} path`, pipeline.samples));
      } finally {
        await pipeline.stop();
      }
    }
  }

  // ---- (4b) memory over a long run -------------------------------------------------------------
  if (options.frames !== undefined) {
    const rate = Math.round(0.75 * (sustained28 ?? 1000));
    progress(`memory: ${options.frames} 28x28 frames at ${rate} frames/s through a fresh pipeline`);
    const persistDir = options.persist ? mkdtempSync(join(tmpdir(), 'bench-persist-')) : undefined;
    const pipeline = await PipelineUnderTest.start({
      ...settings,
      transport: options.transports[0] ?? 'direct',
      ...(persistDir ? { persistDir } : {}),
    });
    try {
      const result = await pipeline.run(
        frames['28'],
        base64['28'],
        'bench-memory',
        options.frames,
        rate,
        cameras,
        3_600_000,
        formatOf('28'),
      );
      if (result.missing > 0) throw new Error(`${result.missing} of ${options.frames} frames never came back`);
      const series = pipeline.samples;
      const row = memoryRow(`RSS over ${options.frames} frames at ${rate} frames/s`, series);
      rows.push(row);
      add(
        {
          section: '4. memory of the pipeline process',
          name: `peak RSS over ${options.frames} frames`,
          value: figure([pipeline.peakRssMb()]),
          unit: 'MB',
        },
        'long_peak_rss_mb',
      );
      const growth = growthPer10k(series);
      medians.long_rss_growth_mb_per_10k_frames = growth;
      medians.long_frames = options.frames;
      medians.long_p99_latency_s = percentile(result.latencies, 99);
      console.error(memoryTimeline(series));
    } finally {
      await pipeline.stop();
      if (persistDir) rmSync(persistDir, { recursive: true, force: true });
    }
  }

  // ---- report ------------------------------------------------------------------------------
  console.log(renderTable(rows));
  const headline = options.transports[0] ?? 'direct';
  const other = options.transports[1];
  const goals = goalLines(medians, threadCpu, headline, other);
  console.log(`\n== the edge runtime's targets (on the ${headline} path)\n${goals.join('\n')}`);
  const targets = targetLines(medians, { '28': formatName(formatOf('28')), '640': formatName(formatOf('640')) });
  console.log(`\n== other targets\n${targets.join('\n')}`);
  console.log(
    `\n(${fmt((performance.now() - began) / 1000)} s; ${cpus().length} cores, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; model ${model.version})`,
  );
  if (options.json) {
    const json = {
      ...medians,
      e2e_p99_latency_s: medians.e2e_p99_latency_s_28_50,
      original_fps_not_remeasured: ORIGINAL.fps,
      original_median_ms_not_remeasured: ORIGINAL.medianMs,
      model_version: model.version,
      classify_batch_size: batch,
      quick: options.quick,
      runs: sizes.runs,
      e2e_runs: sizes.e2eRuns,
      cores: cpus().length,
      load_average: loadavg()[0],
      measured_at: new Date().toISOString(),
    };
    writeFileSync(options.json, `${JSON.stringify(json, null, 2)}\n`);
    progress(`medians written to ${options.json}`);
  }
}

/** The median of each role's CPU per frame over runs. */
function medianByRole(runs: ReadonlyArray<Record<string, number>>): Record<string, number> {
  const roles = new Set(runs.flatMap((r) => Object.keys(r)));
  return Object.fromEntries([...roles].map((role) => [role, figure(runs.map((r) => r[role] ?? 0)).median]));
}

/** Growth of the resident set over the second half of a run, MB per 10,000 frames. */
function growthPer10k(series: readonly MemorySample[]): number {
  const last = series[series.length - 1];
  if (!last || last.frames === 0) return Number.NaN;
  const half = series.find((s) => s.frames >= last.frames / 2);
  if (!half || last.frames === half.frames) return Number.NaN;
  return ((last.rssMb - half.rssMb) / (last.frames - half.frames)) * 10_000;
}

function memoryRow(name: string, series: readonly MemorySample[]): Row {
  const rss = series.map((s) => s.rssMb);
  const growth = growthPer10k(series);
  return {
    section: '4. memory of the pipeline process',
    name,
    value: figure(rss.length > 0 ? rss : [Number.NaN]),
    unit: 'MB',
    note: `${series.length} samples; second half grows ${fmt(growth)} MB per 10k frames`,
  };
}

function memoryTimeline(series: readonly MemorySample[]): string {
  const last = series[series.length - 1];
  if (!last) return '';
  const marks = [0.1, 0.25, 0.5, 0.75, 1].map((share) => series.find((s) => s.frames >= last.frames * share) ?? last);
  return `memory timeline: ${marks.map((s) => `${s.frames} frames ${fmt(s.rssMb)} MB`).join(', ')}`;
}

/**
 * The edge runtime's targets, each met or not with the reason the figures give: end to end >=
 * 75% of the limit, the classify stage >= 90% (80% for 640x480 JSON records), peak memory <=
 * 600 MB, memory flat over a long run.
 */
function goalLines(
  m: Record<string, number>,
  threadCpu: Record<string, Record<string, number>>,
  headline: string,
  other: string | undefined,
): string[] {
  const lines: string[] = [];
  const line = (name: string, value: number | undefined, target: number, unit: string, higher: boolean, reason: string) => {
    if (value === undefined || !Number.isFinite(value)) {
      lines.push(`SKIPPED  ${name}: not measured in this run`);
      return;
    }
    const met = higher ? value >= target : value <= target;
    lines.push(
      `${met ? 'MET    ' : 'NOT MET'}  ${name}: ${fmt(value)}${unit} (target ${higher ? '>=' : '<='} ${fmt(target)}${unit})${reason ? `\n           ${reason}` : ''}`,
    );
  };
  const pct = (key: string) => (m[key] === undefined ? undefined : (m[key] as number) * 100);
  const roles = (key: string) =>
    Object.entries(threadCpu[key] ?? {})
      .sort((a, b) => b[1] - a[1])
      .map(([role, ms]) => `${role} ${fmt(ms)}`)
      .join(', ');
  for (const kind of ['28', '640'] as const) {
    const name = kind === '28' ? '28x28' : '640x480';
    const pipelineCpu = m[`e2e_${kind}_cpu_ms_per_frame`];
    const limitCpu = m[`limit_${kind}_cpu_ms_per_frame`];
    const otherCpu = other ? m[`e2e_${kind}_${other}_cpu_ms_per_frame`] : undefined;
    const reason =
      pipelineCpu === undefined || limitCpu === undefined
        ? ''
        : `the pipeline spends ${fmt(pipelineCpu)} ms of CPU per frame against the limit's ${fmt(limitCpu)} ` +
          `(by thread: ${roles(kind)})` +
          (otherCpu !== undefined
            ? `; over the ${other} path ${fmt(otherCpu)} ms (${roles(`${kind}_${other}`)}), ${fmt(pct(`e2e_limit_ratio_${kind}_${other}`) ?? Number.NaN)}% of the limit`
            : '');
    line(`${name} end to end / limit measured beside each run`, pct(`e2e_limit_ratio_${kind}`), 75, '%', true, reason);
  }
  const classifyReason = (kind: string, suffix: string) => {
    const c = m[`classify_${kind}${suffix}_cpu_ms_per_frame`];
    const l = m[`limit_${kind}_cpu_ms_per_frame`];
    return c === undefined || l === undefined
      ? ''
      : `classify spends ${fmt(c)} ms of CPU per frame against the limit's ${fmt(l)}: ${fmt(c - l)} ms for the event (JSON, base64 of each record) and the output records`;
  };
  line('classify handler / limit, 28x28 JSON records', pct('classify_limit_ratio_28'), 90, '%', true, classifyReason('28', ''));
  line(
    'classify handler / limit, 640x480 PNG records',
    pct('classify_limit_ratio_640'),
    90,
    '%',
    true,
    classifyReason('640', ''),
  );
  line(
    'classify handler / limit, 640x480 JSON records',
    pct('classify_limit_ratio_640_json'),
    80,
    '%',
    true,
    classifyReason('640', '_json'),
  );
  line(
    `peak RSS of the pipeline over the end-to-end runs, ${headline} path`,
    m.peak_rss_mb,
    600,
    ' MB',
    false,
    other && m[`peak_rss_mb_${other}`] !== undefined
      ? `over the ${other} path: ${fmt(m[`peak_rss_mb_${other}`] as number)} MB`
      : '',
  );
  if (m.long_rss_growth_mb_per_10k_frames !== undefined) {
    line(
      `RSS slope over the second half of ${m.long_frames} frames`,
      m.long_rss_growth_mb_per_10k_frames,
      1,
      ' MB per 10k frames',
      false,
      `peak ${fmt(m.long_peak_rss_mb ?? Number.NaN)} MB`,
    );
  } else {
    lines.push('SKIPPED  RSS slope over a long run: run with --frames 100000');
  }
  return lines;
}

function targetLines(m: Record<string, number>, formats: Record<FrameKind, string>): string[] {
  const lines: string[] = [];
  const check = (name: string, value: number | undefined, target: number, unit: string, higher = true) => {
    if (value === undefined || !Number.isFinite(value)) return;
    const met = higher ? value >= target : value < target;
    lines.push(
      `${met ? 'MET    ' : 'NOT MET'}  ${name}: ${fmt(value)}${unit} (target ${higher ? '>=' : '<'} ${fmt(target)}${unit})`,
    );
  };
  const pct = (key: string) => (m[key] === undefined ? undefined : (m[key] as number) * 100);
  check(`classify handler / limit, 28x28, ${formats['28']} (paired runs)`, pct('classify_limit_ratio_28'), 90, '%');
  check(`classify handler / limit, 640x480, ${formats['640']} (paired runs)`, pct('classify_limit_ratio_640'), 90, '%');
  for (const [kind, format] of [
    ['28', 'png'],
    ['28', 'json'],
    ['640', 'png'],
    ['640', 'json'],
  ] as const) {
    const name = format === 'png' ? 'PNG records' : 'JSON records';
    check(
      `classify handler / limit, ${kind === '28' ? '28x28' : '640x480'}, ${name} (paired runs)`,
      pct(`classify_limit_ratio_${kind}_${format}`),
      90,
      '%',
    );
  }
  const ratio = (a: string, b: string) =>
    m[a] !== undefined && m[b] !== undefined ? ((m[a] as number) / (m[b] as number)) * 100 : undefined;
  check('end to end / limit, 28x28', ratio('e2e_fps_28', 'limit_fps_28'), 75, '%');
  check('end to end / limit, 28x28 (limit re-measured beside each run)', pct('e2e_limit_ratio_28'), 75, '%');
  check('end to end / limit, 640x480', ratio('e2e_fps_640', 'limit_fps_640'), 75, '%');
  check('end to end / limit, 640x480 (limit re-measured beside each run)', pct('e2e_limit_ratio_640'), 75, '%');
  const cpu = (a: string, b: string) =>
    m[a] !== undefined && m[b] !== undefined ? ((m[b] as number) / (m[a] as number)) * 100 : undefined;
  for (const kind of ['28', '640']) {
    const c = cpu(`classify_${kind}_cpu_ms_per_frame`, `limit_${kind}_cpu_ms_per_frame`);
    const e = cpu(`e2e_${kind}_cpu_ms_per_frame`, `limit_${kind}_cpu_ms_per_frame`);
    if (c !== undefined)
      lines.push(
        `         CPU per frame, ${kind}: the limit's is ${fmt(c)}% of classify's${e === undefined ? '' : ` and ${fmt(e)}% of the end-to-end pipeline's`}`,
      );
  }
  check(`end to end 28x28, ${formats['28']}`, m.e2e_fps_28, 2000, ' frames/s');
  check(`end to end 640x480, ${formats['640']}`, m.e2e_fps_640, 250, ' frames/s');
  check('p99 put to prediction at 50% rate, 28x28', m.e2e_p99_latency_s_28_50, 1, ' s', false);
  check('p99 put to prediction at 50% rate, 640x480', m.e2e_p99_latency_s_640_50, 1, ' s', false);
  if (m.long_rss_growth_mb_per_10k_frames !== undefined) {
    check(
      `memory growth over the second half of ${m.long_frames} frames`,
      m.long_rss_growth_mb_per_10k_frames,
      1,
      ' MB per 10k frames',
      false,
    );
  }
  if (m.e2e_fps_28 !== undefined)
    lines.push(
      `         end to end 28x28 vs the original's ${ORIGINAL.fps} frames/s (not re-measured): ${fmt(m.e2e_fps_28 / ORIGINAL.fps)}x`,
    );
  return lines;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
