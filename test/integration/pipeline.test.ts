/**
 * The whole pipeline on the real emulator: the real classify and aggregate-metrics handlers
 * run by the local runner with the mappings of serverless.yml, over 600 MNIST frames, a Test
 * camera and a handful of bad records, while a proxy in front of the emulator fails chosen
 * PutRecords entries (some transiently, some past the writer's retries so Lambda-style
 * redelivery happens) and one whole call. Every frame must land exactly once in predictions
 * or rejects at home, nothing may be lost, and duplicates may only come from retries.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { framesFrom } from '../../functions/lib/camera-source/frames';
import { publishFrames } from '../../functions/lib/camera-source/publish';
import { type Prediction, predictionSchema } from '../../functions/lib/contracts';
import { mnistImage, loadMnist, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { KinesisEmulator } from '../../local/emulator';
import { LocalPipeline, type Transport } from '../../local/pipeline';
import { writeCentroidModel } from '../helpers/centroid-model';
import {
  type DirectFaultRelay,
  type FaultProxy,
  type ProxyRules,
  startDirectFaultRelay,
  startFaultProxy,
} from '../helpers/kinesis-fault-proxy';
import { streamReader } from '../helpers/stream-reader';

/** The environment before the in-process pipeline sets the handlers' variables (endpoint included). */
const launchEnv = { ...process.env };

/** The pipeline's own readers and writers reach the emulator over HTTP, and over its direct path. */
const TRANSPORTS: Transport[] = ['http', 'direct'];

const FRAMES = 600;
const TEST_FRAMES = 20;

/** FNV-1a: picks a stable tenth of the frames for the faults. */
function pick(id: string, modulo: number): boolean {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % modulo === 0;
}

function jsonLines(file: string): unknown[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

let modelDir: string;

beforeAll(() => {
  modelDir = writeCentroidModel(5000);
});

afterAll(() => {
  rmSync(modelDir, { recursive: true, force: true });
});

describe.each(TRANSPORTS)('over the %s path', (transport) => {
  let emulator: KinesisEmulator;
  let proxy: FaultProxy | undefined;
  let relay: DirectFaultRelay | undefined;
  /** The faults injected, over whichever path. */
  let faults: { failedEntries: Map<string, number>; failedCalls: number };
  let pipeline: LocalPipeline;
  let outDir: string;

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'pipeline-out-'));
    emulator = await KinesisEmulator.start({ port: 0 });
    const rules: ProxyRules = {
      failEntry: ({ stream, frameId, seenBefore }) => {
        if (!frameId) return undefined;
        // Past the writer's two attempts twice over: classify must fail the source record, the
        // runner redelivers it (and the rest of its batch), and the third delivery goes through.
        if (stream === 'predictions' && pick(frameId, 10) && seenBefore < 3) return 'ProvisionedThroughputExceededException';
        // Transient: the writer's own retry absorbs it.
        if (stream === 'uncertain-images' && pick(frameId, 3) && seenBefore === 0) return 'InternalFailure';
        return undefined;
      },
      failCall: ({ stream }) => stream === 'rejected-images' && faults.failedCalls === 0,
    };
    if (transport === 'http') {
      proxy = await startFaultProxy(emulator.endpoint, rules);
      faults = proxy;
    } else {
      const port = emulator.port;
      relay = startDirectFaultRelay(() => KinesisEmulator.openDirectPortAt(port), rules);
      faults = relay;
    }
    pipeline = await LocalPipeline.start({
      endpoint: emulator.endpoint,
      transport,
      ...(proxy ? { handlerEndpoint: proxy.url } : {}),
      ...(relay ? { handlerDirectPort: relay.openPort } : {}),
      outDir,
      windowSeconds: 2,
      retryBaseDelayMs: 10,
      env: {
        MODEL_DIR: modelDir,
        WRITE_MAX_ATTEMPTS: '2',
        WRITE_BASE_DELAY_MS: '1',
        TEST_CAMERA_PREFIX: 'Test',
        AWS_REGION: 'us-east-1',
        LOG_LEVEL: 'ERROR',
      },
      logger: { debug: () => undefined, warn: () => undefined },
    });
  }, 120_000);

  afterAll(async () => {
    await pipeline?.stop();
    await proxy?.close();
    relay?.close();
    await emulator?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('accounts for every frame exactly once through transient write failures and redeliveries', async () => {
    // Prepare: valid frames from two cameras and bad records of each kind.
    const writer = new KinesisStreamWriter(pipeline.client);
    const png = renderOriginalFrameSync(mnistImage(loadMnist('t10k'), 0));
    const bad: Array<{ data: Buffer; reason: string }> = [
      { data: Buffer.from('{"image": "abc", "camera": '), reason: 'invalid_json' },
      {
        data: Buffer.from(JSON.stringify({ camera: 'Camera-bad', timestamp: new Date().toISOString() })),
        reason: 'invalid_record',
      },
      {
        data: Buffer.from(
          JSON.stringify({ image: '%%%not base64%%%', camera: 'Camera-bad', timestamp: new Date().toISOString() }),
        ),
        reason: 'image_not_base64',
      },
      {
        data: Buffer.from(
          JSON.stringify({
            image: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]).toString('base64'),
            camera: 'Camera-bad',
            timestamp: new Date().toISOString(),
          }),
        ),
        reason: 'not_png',
      },
      {
        data: Buffer.from(
          JSON.stringify({
            image: png.subarray(0, png.length >> 1).toString('base64'),
            camera: 'Camera-bad',
            timestamp: new Date().toISOString(),
          }),
        ),
        reason: 'corrupt_png',
      },
      {
        data: Buffer.from(
          JSON.stringify({ image: png.toString('base64'), camera: '../../etc/passwd', timestamp: new Date().toISOString() }),
        ),
        reason: 'invalid_camera',
      },
    ];

    // Act
    const main = await publishFrames(framesFrom('mnist', 1), writer, {
      camera: 'Camera-it',
      stream: 'camera-images',
      count: FRAMES,
    });
    const test = await publishFrames(framesFrom('mnist', 1), writer, {
      camera: 'Test-it',
      stream: 'camera-images',
      count: TEST_FRAMES,
    });
    await pipeline.client.send(
      new PutRecordsCommand({
        StreamName: 'camera-images',
        Records: bad.map((b, i) => ({ PartitionKey: `bad-${i}`, Data: b.data })),
      }),
    );
    await pipeline.drain(240_000);

    // Assess: what went in.
    const reader = streamReader(pipeline.client);
    const inputs = await reader.readAll('camera-images');
    expect(main.published + test.published).toBe(FRAMES + TEST_FRAMES);
    expect(inputs).toHaveLength(FRAMES + TEST_FRAMES + bad.length);
    const inputIds = inputs.map((r) => `${r.shardId}-${r.sequenceNumber}`);

    // Every frame in exactly one of predictions / rejects at home.
    const { home } = pipeline;
    const ids = home.ids();
    for (const id of inputIds) expect(Number(ids.predicted.has(id)) + Number(ids.rejected.has(id))).toBe(1);
    expect(ids.predicted.size + ids.rejected.size).toBe(inputIds.length);
    expect(home.counts.rejected).toBe(bad.length);
    expect(home.counts.rejectedByReason).toEqual(Object.fromEntries(bad.map((b) => [b.reason, 1])));
    expect(pipeline.runner.deadLetters).toEqual([]);

    // The faults happened, and a redelivery duplicated only what a retry rewrote.
    expect(faults.failedEntries.get('predictions') ?? 0).toBeGreaterThan(0);
    expect(faults.failedEntries.get('uncertain-images') ?? 0).toBeGreaterThan(0);
    expect(faults.failedCalls).toBe(1);
    const rawPredictions = (await reader.readAll('predictions')).map((r) =>
      predictionSchema.parse(JSON.parse(r.data.toString('utf8'))),
    );
    const unique = new Map<string, Prediction>(rawPredictions.map((p) => [p.frame_id, p]));
    expect(new Set(unique.keys())).toEqual(ids.predicted);
    expect(rawPredictions.length).toBeGreaterThan(unique.size);
    expect(home.counts.duplicates).toBeGreaterThan(0);

    // Home files match the sets, one line per frame.
    const homePredictions = jsonLines(home.path('predictions')).map((p) => predictionSchema.parse(p));
    expect(homePredictions).toHaveLength(ids.predicted.size);
    expect(jsonLines(home.path('rejected'))).toHaveLength(bad.length);

    // Uncertain: exactly the low-confidence and Test-camera predictions, each as PNG + JSON.
    const shouldBeUncertain = homePredictions.filter((p) => p.result_probability <= 0.7 || p.camera.startsWith('Test'));
    expect(new Set(ids.uncertain)).toEqual(new Set(shouldBeUncertain.map((p) => p.frame_id)));
    expect(homePredictions.filter((p) => p.camera === 'Test-it').every((p) => ids.uncertain.has(p.frame_id))).toBe(true);
    const files = readdirSync(home.path('uncertain'));
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(ids.uncertain.size);
    expect(files.filter((f) => f.endsWith('.png'))).toHaveLength(ids.uncertain.size);
    expect(files.every((f) => /^[A-Za-z0-9._-]+$/.test(f))).toBe(true);

    // Metrics: every record on predictions is counted or reported as a repeat of a frame its
    // window already counted; a repeat that arrived in a later window (redelivered seconds
    // later) is counted there too, so the count lies between the frames and the records.
    // The rejects' documents (shard "rejected-images:<shard>") hold the reject counts the same way.
    const documents = jsonLines(home.path('metrics')) as Array<{
      shard: string;
      count: number;
      duplicates: number;
      rejected: { count: number };
    }>;
    const ofPredictions = documents.filter((d) => !d.shard.startsWith('rejected-images:'));
    const ofRejects = documents.filter((d) => d.shard.startsWith('rejected-images:'));
    const counted = ofPredictions.reduce((sum, d) => sum + d.count, 0);
    const repeats = ofPredictions.reduce((sum, d) => sum + d.duplicates, 0);
    expect(counted + repeats).toBe(rawPredictions.length);
    expect(counted).toBeGreaterThanOrEqual(unique.size);
    const rawRejects = await reader.readAll('rejected-images');
    const rejectsCounted = ofRejects.reduce((sum, d) => sum + d.rejected.count, 0);
    expect(rejectsCounted + ofRejects.reduce((sum, d) => sum + d.duplicates, 0)).toBe(rawRejects.length);
    expect(rejectsCounted).toBeGreaterThanOrEqual(bad.length);
    const windows = home.mergedWindows();
    const perCamera = windows.flatMap((w) => Object.values(w.camera_metrics));
    const certainPlusUncertain = perCamera.reduce(
      (sum, c) => sum + c.certain.reduce((a, b) => a + b, 0) + c.uncertain.reduce((a, b) => a + b, 0),
      0,
    );
    expect(certainPlusUncertain).toBe(counted);
    expect(jsonLines(home.path('metrics')).length).toBe(home.counts.metricsDocuments);
  }, 300_000);
});

describe('npm start', () => {
  it('replays frames end to end and writes the home outputs and the summary', async () => {
    // Prepare
    const out = mkdtempSync(join(tmpdir(), 'cli-out-'));
    const cli = join(__dirname, '..', '..', 'local', 'cli', 'main.ts');
    const tsx = join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');

    // Act
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        tsx,
        [
          cli,
          '--count',
          '150',
          '--camera',
          'Test',
          '--port',
          '0',
          '--window',
          '1',
          '--out',
          out,
          '--home-port',
          '0',
          '--data',
          join(out, 'home'),
        ],
        {
          env: { ...launchEnv, MODEL_DIR: modelDir, LOG_LEVEL: 'ERROR' },
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (exit) => resolve({ code: exit, stdout, stderr }));
    });

    // Assess
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Record<string, unknown>;
    expect(summary).toMatchObject({
      frames_in: 150,
      predicted: 150,
      uncertain: 150,
      rejected: 0,
      unaccounted: 0,
      dead_lettered: 0,
    });
    expect(summary.accuracy).toEqual(expect.any(Number));
    expect(summary.frames_per_second).toEqual(expect.any(Number));
    expect(jsonLines(join(out, 'predictions.jsonl'))).toHaveLength(150);
    expect(readdirSync(join(out, 'uncertain')).filter((f) => f.endsWith('.png'))).toHaveLength(150);
    const documents = jsonLines(join(out, 'metrics.jsonl')) as Array<{ count: number }>;
    expect(documents.reduce((sum, d) => sum + d.count, 0)).toBe(150);
    expect(stdout).toMatch(/^home on http:\/\/127\.0\.0\.1:\d+$/m);
    // A Test camera sends every frame home: the home application stored each once.
    expect(jsonLines(join(out, 'home', 'frames.jsonl'))).toHaveLength(150);
    expect(stdout).toMatch(/frames in\s+150/);
    expect(stdout).toMatch(/camera\s+frames\s+certain\s+uncertain/);
    rmSync(out, { recursive: true, force: true });
  }, 180_000);
});
