/**
 * End to end: the local pipeline exactly as `npm start -- --serve` runs it (embedded emulator,
 * the mapping runner, the real handlers, the home readers), in its own process, fed by a
 * camera in this process through the stream writer; what reaches home is watched here. Latency is put to prediction: from the moment a frame is handed to PutRecords (its
 * `timestamp`) to the moment its prediction reaches home (a line in `predictions.jsonl`).
 * Memory is the pipeline process's resident set, read from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import { STREAMS } from '../functions/lib/contracts';
import { createKinesisClient } from '../functions/lib/kinesis';
import { KinesisStreamWriter, type OutputRecord } from '../functions/lib/stream-writer';
import { DEFAULT_BATCH_BYTES, putWithBackpressure } from '../functions/lib/camera-source/publish';
import { HOME_FILES } from '../local/home';
import { REPO_ROOT } from '../local/runner/mappings';
import { type BenchFrame, type RecordFormat, frameRecordData } from './frames';
import { sleep } from '../functions/lib/retry';

/** Options of the local pipeline under test (the CLI's flags). */
export interface PipelineSettings {
  shards?: number;
  parallelism?: number;
  /** Extra environment for the pipeline process (e.g. UV_THREADPOOL_SIZE). */
  env?: Record<string, string>;
  /** Extra node flags for the pipeline process (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** Keep the emulator's streams in LevelDB under this folder instead of in memory (`--persist`). */
  persistDir?: string;
  /** `--retain-consumed`: seconds finished records stay in the emulator, or `all` to keep them. */
  retainConsumed?: number | 'all';
  /** How the pipeline's own readers and writers reach its emulator (`--transport`; default the CLI's). */
  transport?: 'direct' | 'http';
  /** Another script to serve the pipeline instead of local/cli/main.ts (it must print "serving on <endpoint>"). */
  script?: string;
}

/** One resident-set sample of the pipeline process. */
export interface MemorySample {
  /** Seconds since the pipeline started. */
  t: number;
  rssMb: number;
  /** Frames whose prediction had arrived when the sample was taken. */
  frames: number;
}

const outputSchema = z.object({ frame_id: z.string(), camera: z.string().optional(), timestamp: z.string().optional() });

/** Reads /proc/<pid>/status fields in kB (Linux), or undefined once the process is gone. */
function procStatus(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) used so far, seconds, NaN once gone: of the whole process (every
 * thread), or with `tid` of one thread (the main thread's id is the process id).
 */
export function processCpuSeconds(pid: number, tid?: number): number {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** USER_HZ: 100 on every Linux platform Node supports. */
const CLOCK_TICKS = 100;

/**
 * Watches the home outputs of the pipeline (`predictions.jsonl`, `rejected.jsonl` in its
 * output folder) and counts arrivals per run, de-duplicated on frame_id. Reading the files
 * the home side writes, instead of a further reader of the streams, adds no load to the
 * pipeline process: "a prediction arrived" means it reached home, as a user sees it.
 */
class Observer {
  private readonly seen = new Set<string>();
  private runs = new Map<string, { count: number; last: number; latencies: number[] }>();
  private readonly files: Array<{ path: string; offset: number; partial: string }>;
  private readonly timer: NodeJS.Timeout;
  private readonly buffer = Buffer.alloc(4 * 1024 * 1024);
  total = 0;

  constructor(outDir: string) {
    this.files = [HOME_FILES.predictions, HOME_FILES.rejected].map((name) => ({
      path: join(outDir, name),
      offset: 0,
      partial: '',
    }));
    this.timer = setInterval(() => this.poll(), 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    const now = Date.now();
    for (const file of this.files) {
      let fd: number;
      try {
        fd = openSync(file.path, 'r');
      } catch {
        continue; // not written yet
      }
      try {
        for (;;) {
          const read = readSync(fd, this.buffer, 0, this.buffer.length, file.offset);
          if (read <= 0) break;
          file.offset += read;
          const text = file.partial + this.buffer.toString('utf8', 0, read);
          const lines = text.split('\n');
          file.partial = lines.pop() ?? '';
          for (const line of lines) if (line !== '') this.arrived(line, now);
        }
      } finally {
        closeSync(fd);
      }
    }
  }

  private arrived(line: string, now: number): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return;
    }
    const parsed = outputSchema.safeParse(value);
    if (!parsed.success || this.seen.has(parsed.data.frame_id)) return;
    this.seen.add(parsed.data.frame_id);
    this.total += 1;
    // Cameras of one run are `<run>.<k>`: arrivals are counted per run.
    const run = (parsed.data.camera ?? '').replace(/\.\d+$/, '');
    const entry = this.runs.get(run) ?? { count: 0, last: 0, latencies: [] };
    entry.count += 1;
    entry.last = now;
    const put = parsed.data.timestamp === undefined ? Number.NaN : Date.parse(parsed.data.timestamp);
    if (Number.isFinite(put)) entry.latencies.push((now - put) / 1000);
    this.runs.set(run, entry);
  }

  of(run: string): { count: number; last: number; latencies: number[] } {
    return this.runs.get(run) ?? { count: 0, last: 0, latencies: [] };
  }
}

/** What one run of frames through the pipeline measured. */
export interface RunResult {
  /** Frames back home per second, from the first put to the last arrival. */
  fps: number;
  /** Frames per second PutRecords took from the camera. */
  publishFps: number;
  /** Put-to-home latency of every frame, seconds. */
  latencies: number[];
  seconds: number;
  /** Frames that never came back (within the timeout). */
  missing: number;
  /** CPU time of the pipeline process per frame (every thread), ms. */
  cpuMsPerFrame: number;
  /** CPU time of its main thread per frame (handlers, runner, SDK, home; not the emulator's worker), ms. */
  mainCpuMsPerFrame: number;
  /**
   * CPU time per frame by role (the pipeline's threads.json): main, emulator, each function's
   * containers, and `other` (libuv's and V8's own threads), ms.
   */
  threadCpuMsPerFrame: Record<string, number>;
  /** Frames the pipeline refused as throttled (its bounded backlog) and the camera sent again. */
  throttled: number;
}

/** CPU seconds of every thread of `pid`, by thread id. */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const cpu = processCpuSeconds(pid, Number(tid));
    if (!Number.isNaN(cpu)) out.set(Number(tid), cpu);
  }
  return out;
}

/** Sums per-thread CPU deltas by the roles of the pipeline's threads.json (the rest is `other`). */
export function cpuByRole(
  before: ReadonlyMap<number, number>,
  after: ReadonlyMap<number, number>,
  roles: Record<string, number[]>,
): Record<string, number> {
  const roleOf = new Map<number, string>();
  for (const [role, tids] of Object.entries(roles)) for (const tid of tids) roleOf.set(tid, role);
  const out: Record<string, number> = {};
  for (const [tid, cpu] of after) {
    const role = roleOf.get(tid) ?? 'other';
    out[role] = (out[role] ?? 0) + (cpu - (before.get(tid) ?? 0));
  }
  return out;
}

/** A running pipeline process plus the camera and the reader of its outputs. */
export class PipelineUnderTest {
  readonly samples: MemorySample[] = [];
  private sampler: NodeJS.Timeout | undefined;
  private readonly startedAt = performance.now();

  private constructor(
    private readonly child: ChildProcess,
    readonly endpoint: string,
    private readonly client: KinesisClient,
    private readonly writer: KinesisStreamWriter,
    private readonly observer: Observer,
    private readonly outDir: string,
  ) {
    this.sampler = setInterval(() => this.sample(), 250);
  }

  /** Starts `npm start -- --serve` on a free loopback port and a reader of its outputs. */
  static async start(settings: PipelineSettings = {}): Promise<PipelineUnderTest> {
    const outDir = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const args = [
      ...(settings.nodeArgs ?? []),
      '--import',
      'tsx',
      settings.script ?? join(REPO_ROOT, 'local', 'cli', 'main.ts'),
      '--serve',
      '--quiet',
      '--port',
      '0',
      '--out',
      outDir,
    ];
    // The benchmark measures the pipeline; the home page is measured on its own (bench/home-ingest.ts).
    if (settings.script === undefined) args.push('--no-home');
    if (settings.shards !== undefined) args.push('--shards', String(settings.shards));
    if (settings.parallelism !== undefined) args.push('--parallelism', String(settings.parallelism));
    if (settings.persistDir !== undefined) args.push('--persist', settings.persistDir);
    if (settings.retainConsumed !== undefined) args.push('--retain-consumed', String(settings.retainConsumed));
    if (settings.transport !== undefined) args.push('--transport', settings.transport);
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...settings.env, NODE_NO_WARNINGS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the pipeline did not start in 120 s: ${stderr.slice(-2000)}`)), 120_000);
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        stderr += chunk;
        const match = /serving on (http:\/\/[0-9.]+:\d+)/.exec(stderr);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
        if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the pipeline exited (${code}) before serving: ${stderr.slice(-2000)}`));
      });
    });
    const client = createKinesisClient({ endpoint });
    return new PipelineUnderTest(child, endpoint, client, new KinesisStreamWriter(client), new Observer(outDir), outDir);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private sample(): void {
    const status = procStatus(this.pid);
    if (!status) return;
    this.samples.push({
      t: (performance.now() - this.startedAt) / 1000,
      rssMb: status.rssKb / 1024,
      frames: this.observer.total,
    });
  }

  /** Peak resident set of the pipeline process so far (VmHWM), MB. */
  peakRssMb(): number {
    return (procStatus(this.pid)?.hwmKb ?? Number.NaN) / 1024;
  }

  /**
   * Publishes `count` frames (cycling `frames`) from `cameras` cameras `<run>.<k>` in turn
   * (frames of one camera keep their order; different cameras may be spread over shards and
   * parallel batches), at most `rate` frames/s
   * (0 = as fast as PutRecords takes them), each stamped with the time it is handed to
   * PutRecords, and waits until every prediction is back. Returns put-to-prediction figures.
   */
  async run(
    frames: readonly BenchFrame[],
    base64: readonly string[],
    camera: string,
    count: number,
    rate: number,
    cameras = 1,
    timeoutMs = 600_000,
    format: RecordFormat = 'json',
  ): Promise<RunResult> {
    const cpuBefore = processCpuSeconds(this.pid);
    const mainBefore = processCpuSeconds(this.pid, this.pid);
    const threadsBefore = threadCpuSeconds(this.pid);
    let throttled = 0;
    const started = Date.now();
    const startedPerf = performance.now();
    // Paced: a batch every 10 ms; unpaced: 500-record batches, 4 in flight (2 when they reach 8 MiB).
    const perBatch = rate > 0 ? Math.max(1, Math.round(rate / 100)) : 500;
    const maxInFlight = rate > 0 ? 8 : 4;
    const inFlight = new Set<Promise<void>>();
    // At most two full batches of bytes in flight, as npm start's camera (large frames).
    const maxInFlightBytes = 2 * DEFAULT_BATCH_BYTES;
    let inFlightBytes = 0;
    let sent = 0;
    let failed = 0;
    while (sent < count) {
      if (rate > 0) await sleep(startedPerf + (sent * 1000) / rate - performance.now());
      const records: OutputRecord[] = [];
      const timestamp = new Date().toISOString();
      const n = Math.min(perBatch, count - sent);
      // Bounded by bytes as npm start's camera is: a backlog of large frames is not sent all at once.
      let bytes = 0;
      for (let k = 0; k < n && bytes < DEFAULT_BATCH_BYTES; k++) {
        const i = (sent + k) % frames.length;
        const id = `${camera}.${(sent + k) % cameras}`;
        const data = frameRecordData(frames[i] as BenchFrame, base64[i] as string, id, timestamp, format);
        bytes += data.length;
        records.push({ partitionKey: id, data });
      }
      sent += records.length;
      // The pipeline's bounded backlog may throttle the camera: it waits, as npm start's does.
      const job: Promise<void> = putWithBackpressure(this.writer, STREAMS.cameraImages, records, {
        onThrottled: (entries) => {
          throttled += entries;
        },
      }).then((result) => {
        failed += result.failedIndexes.length;
        inFlightBytes -= bytes;
        inFlight.delete(job);
      });
      inFlight.add(job);
      inFlightBytes += bytes;
      while (inFlight.size >= maxInFlight || inFlightBytes >= maxInFlightBytes) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const publishSeconds = (performance.now() - startedPerf) / 1000;
    const deadline = Date.now() + timeoutMs;
    while (this.observer.of(camera).count < count - failed && Date.now() < deadline) await sleep(5);
    const seen = this.observer.of(camera);
    const seconds = (seen.last - started) / 1000;
    const cpuMsPerFrame = ((processCpuSeconds(this.pid) - cpuBefore) * 1000) / Math.max(1, seen.count);
    const mainCpuMsPerFrame = ((processCpuSeconds(this.pid, this.pid) - mainBefore) * 1000) / Math.max(1, seen.count);
    const byRole = cpuByRole(threadsBefore, threadCpuSeconds(this.pid), this.threadRoles());
    const threadCpuMsPerFrame = Object.fromEntries(
      Object.entries(byRole).map(([role, seconds]) => [role, (seconds * 1000) / Math.max(1, seen.count)]),
    );
    return {
      fps: seen.count / seconds,
      publishFps: count / publishSeconds,
      latencies: seen.latencies,
      seconds,
      missing: count - seen.count,
      cpuMsPerFrame,
      mainCpuMsPerFrame,
      threadCpuMsPerFrame,
      throttled,
    };
  }

  /** Role -> OS thread ids, from the pipeline's threads.json (empty before it is written). */
  threadRoles(): Record<string, number[]> {
    try {
      return z.record(z.string(), z.array(z.number())).parse(JSON.parse(readFileSync(join(this.outDir, 'threads.json'), 'utf8')));
    } catch {
      return {};
    }
  }

  /** Stops the reader and the pipeline (Ctrl-C, as a user would), then removes its outputs. */
  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
    this.observer.stop();
    this.client.destroy();
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null) resolve();
      else this.child.once('exit', () => resolve());
    });
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
    rmSync(this.outDir, { recursive: true, force: true });
  }
}
