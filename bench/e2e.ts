/**
 * End to end: the local pipeline exactly as `npm start -- --serve` runs it (embedded emulator,
 * the mapping runner, the real handlers, the home readers), in its own process, fed by a
 * camera in this process through the stream writer and watched by a reader of `predictions`
 * here. Latency is put to prediction: from the moment a frame is handed to PutRecords (its
 * `timestamp`) to the moment its prediction is read back from the `predictions` stream.
 * Memory is the pipeline process's resident set, read from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent } from 'aws-lambda';
import { z } from 'zod';
import { STREAMS } from '../functions/lib/contracts';
import { createKinesisClient } from '../functions/lib/kinesis';
import { KinesisStreamWriter, type OutputRecord } from '../functions/lib/stream-writer';
import { REPO_ROOT } from '../local/mappings';
import { EventSourceMappingRunner, type StreamHandler } from '../local/runner';
import { type BenchFrame, frameJson } from './frames';

/** Options of the local pipeline under test (the CLI's flags). */
export interface PipelineSettings {
  shards?: number;
  parallelism?: number;
  /** Extra environment for the pipeline process (e.g. UV_THREADPOOL_SIZE). */
  env?: Record<string, string>;
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

/** Per-camera arrivals of predictions (and rejects), de-duplicated on frame_id. */
class Observer {
  private readonly seen = new Set<string>();
  private cameras = new Map<string, { count: number; last: number; latencies: number[] }>();
  rejected = 0;
  total = 0;

  reset(): void {
    this.seen.clear();
    this.cameras = new Map();
  }

  handler(kind: 'prediction' | 'reject'): StreamHandler {
    return (async (event: KinesisStreamEvent) => {
      const now = Date.now();
      for (const record of event.Records) {
        let value: unknown;
        try {
          value = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
        } catch {
          continue;
        }
        const parsed = outputSchema.safeParse(value);
        if (!parsed.success || this.seen.has(parsed.data.frame_id)) continue;
        this.seen.add(parsed.data.frame_id);
        if (kind === 'reject') this.rejected += 1;
        this.total += 1;
        const camera = parsed.data.camera ?? '';
        const entry = this.cameras.get(camera) ?? { count: 0, last: 0, latencies: [] };
        entry.count += 1;
        entry.last = now;
        const put = parsed.data.timestamp === undefined ? Number.NaN : Date.parse(parsed.data.timestamp);
        if (Number.isFinite(put)) entry.latencies.push((now - put) / 1000);
        this.cameras.set(camera, entry);
      }
    }) as StreamHandler;
  }

  of(camera: string): { count: number; last: number; latencies: number[] } {
    return this.cameras.get(camera) ?? { count: 0, last: 0, latencies: [] };
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

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
    private readonly reader: EventSourceMappingRunner,
    private readonly outDir: string,
  ) {
    this.sampler = setInterval(() => this.sample(), 250);
  }

  /** Starts `npm start -- --serve` on a free loopback port and a reader of its outputs. */
  static async start(settings: PipelineSettings = {}): Promise<PipelineUnderTest> {
    const outDir = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const args = ['--import', 'tsx', join(REPO_ROOT, 'local', 'cli.ts'), '--serve', '--quiet', '--port', '0', '--out', outDir];
    if (settings.shards !== undefined) args.push('--shards', String(settings.shards));
    if (settings.parallelism !== undefined) args.push('--parallelism', String(settings.parallelism));
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
    const observer = new Observer();
    const reader = new EventSourceMappingRunner({ client, maxIdlePollMs: 5, logger: { debug: () => undefined, warn: () => undefined } });
    const mapping = {
      batchSize: 10_000,
      batchWindowSeconds: 0,
      startingPosition: 'LATEST' as const,
      parallelizationFactor: 1,
      reportBatchItemFailures: false,
      bisectBatchOnFunctionError: false,
      maximumRetryAttempts: -1,
      maximumRecordAgeInSeconds: -1,
      tumblingWindowInSeconds: 0,
      onFailure: undefined,
      timeoutSeconds: 300,
    };
    reader.add({ ...mapping, functionName: 'bench-predictions', stream: STREAMS.predictions }, observer.handler('prediction'));
    reader.add({ ...mapping, functionName: 'bench-rejects', stream: STREAMS.rejectedImages }, observer.handler('reject'));
    await reader.start();
    return new PipelineUnderTest(child, endpoint, client, new KinesisStreamWriter(client), observer, reader, outDir);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  private sample(): void {
    const status = procStatus(this.pid);
    if (!status) return;
    this.samples.push({ t: (performance.now() - this.startedAt) / 1000, rssMb: status.rssKb / 1024, frames: this.observer.total });
  }

  /** Peak resident set of the pipeline process so far (VmHWM), MB. */
  peakRssMb(): number {
    return (procStatus(this.pid)?.hwmKb ?? Number.NaN) / 1024;
  }

  /**
   * Publishes `count` frames (cycling `frames`) as camera `camera`, at most `rate` frames/s
   * (0 = as fast as PutRecords takes them), each stamped with the time it is handed to
   * PutRecords, and waits until every prediction is back. Returns put-to-prediction figures.
   */
  async run(
    frames: readonly BenchFrame[],
    base64: readonly string[],
    camera: string,
    count: number,
    rate: number,
    timeoutMs = 600_000,
  ): Promise<{ fps: number; publishFps: number; latencies: number[]; seconds: number; missing: number }> {
    const started = Date.now();
    const startedPerf = performance.now();
    // Paced: a batch every 10 ms; unpaced: 500-record PutRecords calls, 4 in flight.
    const perBatch = rate > 0 ? Math.max(1, Math.round(rate / 100)) : 500;
    const maxInFlight = rate > 0 ? 8 : 4;
    const inFlight = new Set<Promise<void>>();
    let sent = 0;
    let failed = 0;
    while (sent < count) {
      if (rate > 0) await sleep(startedPerf + (sent * 1000) / rate - performance.now());
      const records: OutputRecord[] = [];
      const timestamp = new Date().toISOString();
      const n = Math.min(perBatch, count - sent);
      for (let k = 0; k < n; k++) {
        const i = (sent + k) % frames.length;
        const body = frameJson(base64[i] as string, camera, timestamp, (frames[i] as BenchFrame).label);
        records.push({ partitionKey: camera, data: Buffer.from(body, 'utf8') });
      }
      sent += n;
      const job: Promise<void> = this.writer.put(STREAMS.cameraImages, records).then((result) => {
        failed += result.failedIndexes.length;
        inFlight.delete(job);
      });
      inFlight.add(job);
      if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const publishSeconds = (performance.now() - startedPerf) / 1000;
    const deadline = Date.now() + timeoutMs;
    while (this.observer.of(camera).count < count - failed && Date.now() < deadline) await sleep(5);
    const seen = this.observer.of(camera);
    const seconds = (seen.last - started) / 1000;
    return {
      fps: seen.count / seconds,
      publishFps: count / publishSeconds,
      latencies: seen.latencies,
      seconds,
      missing: count - seen.count,
    };
  }

  /** Stops the reader and the pipeline (Ctrl-C, as a user would), then removes its outputs. */
  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
    await this.reader.stop();
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
