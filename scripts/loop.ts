/**
 * `npm run loop`: the whole model loop, end to end, on a camera the model reads badly
 * (scripts/new-camera-set.ts), through real processes:
 *
 *   1. start the served pipeline (`npm start -- --serve`, free ports) with its home, on a
 *      models folder of its own (a copy of the shipped model, MODEL_ROOT);
 *   2. publish the camera's test part and measure its accuracy (before);
 *   3. publish the pool as a `Test*` camera, so every frame comes home;
 *   4. play the person: label up to --labels frames through the home API (POST /api/labels),
 *      using the set's labels;
 *   5. export the dataset (POST /api/dataset/export) and retrain (training/retrain.ts);
 *   6. promote the candidate (training/model-registry.ts), wait for the running edge to
 *      score with it, publish the test part again and measure its accuracy (after).
 *
 *   npm run loop -- [--pool 1500] [--test 600] [--labels 500] [--epochs 4] [--work DIR]
 *   npm run loop -- --measure-only [--test 600]   only step 2: the camera through the pipeline as it is
 *
 * Prints the camera's accuracy before and after, MNIST before and after (the candidate's
 * card), the labels used and the wall time of each step; writes the same as loop.json in
 * the work folder (which keeps the models folder, the home data and the edge's outputs).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Prediction, predictionSchema, STREAMS } from '../functions/lib/contracts';
import { frameRecord } from '../functions/lib/camera-source/publish';
import { createKinesisClient } from '../functions/lib/kinesis';
import { MODEL_CARD_FILE, MODEL_FILE } from '../functions/lib/model';
import { KinesisStreamWriter } from '../functions/lib/stream-writer';
import { formatGateTable } from '../training/gates';
import { DEFAULT_MODELS_ROOT, promote } from '../training/model-registry';
import { retrain } from '../training/retrain';
import { progressLine } from '../training/retrain-cli';
import { newCameraFrames, type NewCameraFrame } from './new-camera-set';
import { sleep } from '../functions/lib/retry';

/** The edge's default confidence threshold: a wrong answer over it stays at the edge unseen. */
const CONFIDENCE = 0.7;

interface LoopOptions {
  pool: number;
  test: number;
  labels: number;
  epochs: number | undefined;
  work: string;
  /** Only score the test part through the served pipeline with the current model (needs no home). */
  measureOnly: boolean;
}

function parseLoopArgs(argv: readonly string[]): LoopOptions {
  const options: LoopOptions = { pool: 1500, test: 600, labels: 500, epochs: undefined, work: '', measureOnly: false };
  for (let k = 0; k < argv.length; k += 2) {
    const flag = argv[k]!;
    if (flag === '--measure-only') {
      options.measureOnly = true;
      k -= 1;
      continue;
    }
    const value = argv[k + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--work') options.work = value;
    else if (['--pool', '--test', '--labels', '--epochs'].includes(flag)) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a whole number >= 1, got ${value}`);
      options[flag.slice(2) as 'pool' | 'test' | 'labels' | 'epochs'] = n;
    } else throw new Error(`unknown option ${flag}; options: --pool N --test N --labels N --epochs N --work DIR`);
  }
  if (options.labels > 500) throw new Error('--labels is at most 500: the loop shows what one pass of 500 labels buys');
  return options;
}

const started = Date.now();
function log(message: string): void {
  console.log(`[+${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}`);
}

/** Waits for `condition` to return a value, polling; throws `message` after `seconds`. */
async function waitFor<T>(
  what: string,
  seconds: number,
  condition: () => Promise<T | undefined> | T | undefined,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await condition();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${seconds} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A child process whose output is kept, and the first match of `ready` in it. */
class Child {
  readonly process: ChildProcess;
  output = '';
  constructor(
    readonly name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.process = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.process.stdout!.on('data', keep);
    this.process.stderr!.on('data', keep);
  }

  async match(pattern: RegExp, seconds: number): Promise<RegExpMatchArray> {
    return waitFor(`${this.name} to print ${pattern}`, seconds, () => {
      if (this.process.exitCode !== null)
        throw new Error(`${this.name} exited with ${this.process.exitCode}:\n${this.output.slice(-3000)}`);
      return pattern.exec(this.output) ?? undefined;
    });
  }

  /** Ends the process group this script started (SIGINT first, as Ctrl-C would). */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.pid === undefined) return;
    const exited = new Promise<void>((r) => this.process.once('exit', () => r()));
    try {
      process.kill(-this.process.pid, 'SIGINT');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-this.process.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 15_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The home HTTP API, as the contract describes it. */
class HomeApi {
  constructor(private readonly base: string) {}

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
    return JSON.parse(text) as T;
  }
}

interface HomeFrame {
  frame_id: string;
  camera: string;
  timestamp: string;
}

/** Predictions the edge wrote for `camera` (its out folder's predictions.jsonl), de-duplicated by frame_id. */
function predictionsOf(outDir: string, camera: string): Map<string, Prediction> {
  const path = join(outDir, 'predictions.jsonl');
  const found = new Map<string, Prediction>();
  if (!existsSync(path)) return found;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.includes(camera)) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue; // a line being written right now: read again on the next poll
    }
    const parsed = predictionSchema.safeParse(json);
    if (!parsed.success) throw new Error(`${path} holds a line that is not a prediction: ${line.slice(0, 200)}`);
    if (parsed.data.camera === camera) found.set(parsed.data.frame_id, parsed.data);
  }
  return found;
}

async function publish(
  writer: KinesisStreamWriter,
  camera: string,
  frames: readonly NewCameraFrame[],
  withLabels: boolean,
  base: number,
): Promise<Map<number, number>> {
  const byTime = new Map<number, number>();
  const records = frames.map((f, i) => {
    const time = base + i; // one millisecond apart: the capture time names the frame
    byTime.set(time, f.label);
    return frameRecord({ png: f.png, ...(withLabels ? { label: f.label } : {}) }, camera, new Date(time).toISOString(), 'png');
  });
  for (let from = 0; from < records.length; from += 500) {
    const result = await writer.put(STREAMS.cameraImages, records.slice(from, from + 500));
    if (result.failedIndexes.length > 0) throw new Error(`${result.failedIndexes.length} frames of ${camera} could not be put`);
  }
  return byTime;
}

/** Publishes the test part as `camera` and returns its accuracy once every frame is scored. */
async function measureCamera(
  writer: KinesisStreamWriter,
  outDir: string,
  camera: string,
  frames: readonly NewCameraFrame[],
  expectVersion: string | null,
): Promise<{ accuracy: number; confidentlyWrong: number; frames: number; versions: Record<string, number> }> {
  await publish(writer, camera, frames, true, Date.now() - 120_000);
  const scored = await waitFor(`${frames.length} predictions of ${camera}`, 300, () => {
    const p = predictionsOf(outDir, camera);
    return p.size >= frames.length ? p : undefined;
  });
  let right = 0;
  let confidentlyWrong = 0;
  const versions: Record<string, number> = {};
  for (const p of scored.values()) {
    if (p.result_class === p.label) right += 1;
    else if (p.result_probability > CONFIDENCE) confidentlyWrong += 1;
    versions[p.model_version] = (versions[p.model_version] ?? 0) + 1;
  }
  if (expectVersion !== null && versions[expectVersion] !== scored.size) {
    throw new Error(`${camera} was scored by ${JSON.stringify(versions)}, expected every frame by ${expectVersion}`);
  }
  return { accuracy: right / scored.size, confidentlyWrong: confidentlyWrong / scored.size, frames: scored.size, versions };
}

async function main(): Promise<void> {
  const o = parseLoopArgs(process.argv.slice(2));
  const work = resolve(o.work || mkdtempSync(join(tmpdir(), 'loop-')));
  mkdirSync(work, { recursive: true });
  const steps: Record<string, number> = {};
  const timed = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    log(`${name}...`);
    const value = await run();
    steps[name] = Math.round((Date.now() - t) / 100) / 10;
    log(`${name}: ${steps[name]} s`);
    return value;
  };
  const tsx = resolve('node_modules/.bin/tsx');
  // A models folder of the loop's own, holding the shipped model: the registry, candidates and
  // promotion stay out of the checkout's models/.
  const root = join(work, 'models');
  mkdirSync(root, { recursive: true });
  for (const file of [MODEL_FILE, MODEL_CARD_FILE]) copyFileSync(join(DEFAULT_MODELS_ROOT, file), join(root, file));
  const children: Child[] = [];
  try {
    const { pool, test } = await timed('generate the new camera frames', async () => ({
      pool: o.measureOnly ? [] : await newCameraFrames('pool', o.pool),
      test: await newCameraFrames('test', o.test),
    }));

    const { endpoint, home } = await timed('start the served pipeline and its home', async () => {
      const edge = new Child(
        'the served pipeline',
        tsx,
        [
          'local/cli/main.ts',
          '--serve',
          '--port',
          '0',
          '--home-port',
          '0',
          '--data',
          join(work, 'home-data'),
          '--out',
          join(work, 'edge'),
          '--quiet',
        ],
        { MODEL_ROOT: root },
      );
      children.push(edge);
      const homeUrl = (await edge.match(/home on (http:\/\/127\.0\.0\.1:\d+)/, 120))[1]!;
      const endpoint = (await edge.match(/serving on (http:\/\/127\.0\.0\.1:\d+)/, 120))[1]!;
      return { endpoint, home: new HomeApi(homeUrl) };
    });
    const writer = new KinesisStreamWriter(createKinesisClient({ endpoint }));
    const runId = Date.now().toString(36);

    const before = await timed('score the test part (before)', () =>
      measureCamera(writer, join(work, 'edge'), `Newcam-before-${runId}`, test, null),
    );
    log(`new camera before: ${(before.accuracy * 100).toFixed(2)}% of ${before.frames} (${JSON.stringify(before.versions)})`);
    if (o.measureOnly) return;

    const poolCamera = `Test-newcam-${runId}`;
    const labelsByTime = await timed('publish the pool (every frame home)', async () => {
      const byTime = await publish(writer, poolCamera, pool, false, Date.now() - 60_000);
      await waitFor(
        `${pool.length} pool frames at home`,
        300,
        async () => {
          const page = await home.call<{ total: number }>(
            'GET',
            `/api/frames?status=all&camera=${encodeURIComponent(poolCamera)}&limit=1`,
          );
          return page.total >= pool.length ? page.total : undefined;
        },
        500,
      );
      return byTime;
    });

    const labelled = await timed(`label up to ${o.labels} frames through the home API`, async () => {
      let count = 0;
      let cursor: string | null = null;
      while (count < o.labels) {
        const query = `/api/frames?status=unlabelled&camera=${encodeURIComponent(poolCamera)}&sort=oldest&limit=${Math.min(500, o.labels - count)}${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const page: { frames: HomeFrame[]; next: string | null } = await home.call('GET', query);
        for (const frame of page.frames) {
          const label = labelsByTime.get(new Date(frame.timestamp).getTime());
          if (label === undefined) throw new Error(`frame ${frame.frame_id} at ${frame.timestamp} is not one the loop published`);
          await home.call('POST', '/api/labels', { frame_id: frame.frame_id, label });
          count += 1;
          if (count >= o.labels) break;
        }
        if (page.next === null || page.frames.length === 0) break;
        cursor = page.next;
      }
      return count;
    });
    log(`labels used: ${labelled}`);

    const exported = await timed('export the dataset', () =>
      home.call<{ dir: string; version: string; counts: unknown }>('POST', '/api/dataset/export', { dir: `loop-${runId}` }),
    );
    log(`dataset ${exported.version} in ${exported.dir}`);

    const candidate = await timed('retrain', () =>
      retrain({
        datasetDir: exported.dir,
        root,
        epochs: o.epochs,
        onProgress: (p) => {
          if (p.phase === 'train') {
            if (p.epochEnd) log(progressLine(p));
          } else log(p.message);
        },
      }),
    );
    console.log(formatGateTable(candidate.gates));
    if (!candidate.gates.passed) throw new Error(`candidate ${candidate.version} failed its gates: not promoted`);

    await timed('promote and wait for the edge to switch', async () => {
      await promote(candidate.version, root);
      // A few probe frames until one is scored by the new version: the edge swaps between batches.
      const probe = `Newcam-probe-${runId}`;
      await waitFor(
        `the edge to score with ${candidate.version}`,
        120,
        async () => {
          await publish(writer, probe, test.slice(0, 1), true, Date.now() - 1000);
          await sleep(500);
          return [...predictionsOf(join(work, 'edge'), probe).values()].some((p) => p.model_version === candidate.version)
            ? true
            : undefined;
        },
        500,
      );
    });

    const after = await timed('score the test part (after)', () =>
      measureCamera(writer, join(work, 'edge'), `Newcam-after-${runId}`, test, candidate.version),
    );
    const card = candidate.card as {
      evaluation: {
        mnist: { accuracy: number; parent_accuracy: number };
        held_out: { accuracy: number; parent_accuracy: number; count: number };
      };
    };
    const summary = {
      camera: {
        confidently_wrong: { before: before.confidentlyWrong, after: after.confidentlyWrong },
        before: before.accuracy,
        after: after.accuracy,
        frames: test.length,
        lift_points: (after.accuracy - before.accuracy) * 100,
      },
      mnist: {
        before: card.evaluation.mnist.parent_accuracy,
        after: card.evaluation.mnist.accuracy,
        change_points: (card.evaluation.mnist.accuracy - card.evaluation.mnist.parent_accuracy) * 100,
      },
      held_out: card.evaluation.held_out,
      labels: labelled,
      pool: pool.length,
      candidate: candidate.version,
      steps_seconds: steps,
      wall_seconds: Math.round((Date.now() - started) / 1000),
      target_met:
        labelled <= 500 &&
        ((after.accuracy - before.accuracy) * 100 >= 5 || after.accuracy >= 0.98) &&
        card.evaluation.mnist.accuracy >= card.evaluation.mnist.parent_accuracy - 0.001,
    };
    writeFileSync(join(work, 'loop.json'), `${JSON.stringify(summary, null, 2)}\n`);
    console.log('');
    console.log(
      `new camera   ${(before.accuracy * 100).toFixed(2)}% -> ${(after.accuracy * 100).toFixed(2)}%  (${test.length} test frames through the running pipeline; confidently wrong ${(before.confidentlyWrong * 100).toFixed(1)}% -> ${(after.confidentlyWrong * 100).toFixed(1)}%)`,
    );
    console.log(
      `MNIST        ${(summary.mnist.before * 100).toFixed(2)}% -> ${(summary.mnist.after * 100).toFixed(2)}%  (test set through preparePng)`,
    );
    console.log(`labels used  ${labelled} of ${pool.length} pool frames`);
    for (const [name, seconds] of Object.entries(steps)) console.log(`  ${name.padEnd(44)} ${seconds.toFixed(1).padStart(7)} s`);
    console.log(
      `target (>= 5 points or >= 98%, MNIST within 0.1 points, <= 500 labels): ${summary.target_met ? 'met' : 'NOT met'}`,
    );
    console.log(
      `${candidate.version} is current in ${root} (npm run promote -- --rollback --root ${root} returns to the parent); details in ${join(work, 'loop.json')}`,
    );
  } finally {
    for (const child of children.reverse()) await child.stop();
  }
}

main().catch((error: unknown) => {
  console.error(`loop failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
