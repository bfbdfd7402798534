/**
 * The handlers over Greengrass Stream Manager, with the real Stream Manager client of
 * aws-greengrass-core-sdk against a local server speaking its wire protocol: the component's
 * host creates the streams from edge/stream-manager/streams.json (exports included), the
 * camera source appends frames through the Stream Manager sink, and the real classify and
 * aggregate-metrics handlers run with the runner's semantics over Stream Manager: every frame
 * ends in exactly one place, outputs land in the local streams the exports send home, and a
 * restart resumes after its checkpoints.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mnistFrames } from '../../functions/lib/camera-source/frames';
import { publishFrames } from '../../functions/lib/camera-source/publish';
import { useHostSink } from '../../functions/lib/stream-writer';
import { startStreamManagerHost, type StreamManagerHost } from '../../local/greengrass/host';
import { StreamManagerRecordSink } from '../../local/greengrass/record-sink';
import { connectStreamManager, type StreamManagerClientLike } from '../../local/greengrass/stream-manager';
import { applyOverrides, loadServiceDefinition, type ServiceDefinition } from '../../local/runner/mappings';
import { writeCentroidModel } from '../helpers/centroid-model';
import { startTestStreamManager, type TestStreamManager } from '../helpers/stream-manager-server';
import { waitUntil } from '../helpers/wait';

const FRAMES = 60;
const CAMERA = 'Test-gg-1';

let server: TestStreamManager;
let client: StreamManagerClientLike;
let modelDir: string;
let stateDir: string;
let definition: ServiceDefinition;
let host: StreamManagerHost | undefined;

beforeAll(async () => {
  modelDir = writeCentroidModel(3000);
  stateDir = mkdtempSync(join(tmpdir(), 'greengrass-'));
  server = await startTestStreamManager();
  client = await connectStreamManager({ port: server.port });
  definition = applyOverrides(await loadServiceDefinition({ stage: 'local' }), { windowSeconds: 1 });
});
afterAll(async () => {
  await host?.stop();
  useHostSink(undefined);
  client.close();
  await server.close();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});

const json = (stream: string): Array<Record<string, unknown>> =>
  server.payloads(stream).map((p) => JSON.parse(p.toString('utf8')) as Record<string, unknown>);

/** Waits (bounded) for `condition`, showing the messages per stream the server holds when it runs out. */
const waitFor = (condition: () => boolean, what: string): Promise<void> =>
  waitUntil(condition, what, 120_000, () =>
    JSON.stringify(Object.fromEntries([...server.streams].map(([k, v]) => [k, v.messages.length]))),
  );

async function publish(count: number): Promise<void> {
  const summary = await publishFrames(mnistFrames(), new StreamManagerRecordSink(client), {
    camera: CAMERA,
    stream: 'camera-images',
    count,
  });
  expect(summary).toMatchObject({ published: count, failed: 0 });
}

it('creates the streams with their Kinesis exports, as streams.json defines them', async () => {
  // Act
  host = await startStreamManagerHost({
    client,
    definition,
    stateDir,
    exportPrefix: 'ecc-prod-',
    env: { MODEL_DIR: modelDir, LOG_LEVEL: 'ERROR' },
    retryBaseDelayMs: 10,
  });
  // Assert
  expect([...server.streams.keys()].sort()).toEqual([
    'camera-images',
    'metrics',
    'predictions',
    'rejected-images',
    'shadow-scores',
    'uncertain-images',
  ]);
  const exports = (name: string) =>
    (server.streams.get(name)?.definition.exportDefinition as { kinesis?: Array<Record<string, unknown>> } | undefined)
      ?.kinesis ?? [];
  expect(exports('camera-images')).toEqual([]);
  expect(exports('predictions')).toEqual([]);
  expect(exports('shadow-scores')).toEqual([]);
  expect(exports('metrics')).toEqual([expect.objectContaining({ kinesisStreamName: 'ecc-prod-metrics', priority: 1 })]);
  expect(exports('rejected-images')).toEqual([
    expect.objectContaining({ kinesisStreamName: 'ecc-prod-rejected-images', priority: 2 }),
  ]);
  expect(exports('uncertain-images')).toEqual([
    expect.objectContaining({ kinesisStreamName: 'ecc-prod-uncertain-images', priority: 3 }),
  ]);
  expect(server.streams.get('uncertain-images')?.definition).toMatchObject({ strategyOnFull: 0, persistence: 0 }); // RejectNewData, File (the SDK's enum values);
});

it('classifies frames appended to Stream Manager and writes every output to its local stream, once', async () => {
  // Act: frames from a Test camera (all go home), and one unreadable frame.
  await publish(FRAMES);
  await client.appendMessage('camera-images', Buffer.from('not a frame'));
  await waitFor(
    () => server.payloads('predictions').length === FRAMES && server.payloads('rejected-images').length === 1,
    'the outputs',
  );
  await host?.runner.waitForIdle(60_000);
  await host?.runner.closeWindows();
  await host?.runner.waitForIdle(60_000);
  // Assert: frame ids are Stream Manager sequence numbers of camera-images (0..FRAMES-1, the bad one last).
  const expectedIds = Array.from({ length: FRAMES }, (_, i) => `shardId-000000000000-${i}`);
  expect(json('predictions').map((p) => p.frame_id)).toEqual(expectedIds);
  expect(json('uncertain-images').map((p) => p.frame_id)).toEqual(expectedIds);
  // A Test camera's frames all go home; the unsure ones say so rather than test_camera.
  expect([...new Set(json('uncertain-images').map((u) => u.camera))]).toEqual([CAMERA]);
  expect(json('uncertain-images').every((u) => u.reason === 'test_camera' || u.reason === 'low_confidence')).toBe(true);
  expect(json('rejected-images')).toEqual([
    expect.objectContaining({ frame_id: `shardId-000000000000-${FRAMES}`, reason: 'invalid_json' }),
  ]);
  const documents = json('metrics') as Array<{ count: number }>;
  expect(documents.length).toBeGreaterThan(0);
  expect(documents.reduce((sum, d) => sum + d.count, 0)).toBe(FRAMES);
  expect(host?.runner.deadLetters).toEqual([]);
  // The aggregator's memory of counted frames is kept beside the checkpoints, for restarts.
  expect(readdirSync(join(stateDir, 'counted-frames')).length).toBeGreaterThan(0);
}, 240_000);

it('resumes after its checkpoints when restarted: new frames only, nothing twice', async () => {
  // Prepare
  await host?.stop();
  const before = server.payloads('predictions').length;
  // Act
  host = await startStreamManagerHost({
    client,
    definition,
    stateDir,
    exportPrefix: 'ecc-prod-',
    env: { MODEL_DIR: modelDir, LOG_LEVEL: 'ERROR' },
    retryBaseDelayMs: 10,
  });
  await publish(10);
  await waitFor(() => server.payloads('predictions').length >= before + 10, 'the new predictions');
  await host.runner.waitForIdle(60_000);
  // Assert
  const ids = json('predictions').map((p) => p.frame_id as string);
  expect(ids).toHaveLength(before + 10);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.slice(before)).toEqual(Array.from({ length: 10 }, (_, i) => `shardId-000000000000-${FRAMES + 1 + i}`));
}, 240_000);

describe('the runner semantics over Stream Manager', () => {
  it('retries from a reported failure, then sends a record that keeps failing to the on-failure destination', async () => {
    // Prepare: a server and state of its own; classify replaced by a handler that fails
    // "fail-once" on its first delivery and "poison" always (reported as batch item failures).
    const own = await startTestStreamManager();
    const ownClient = await connectStreamManager({ port: own.port });
    const ownState = mkdtempSync(join(tmpdir(), 'greengrass-failures-'));
    const deliveries = new Map<string, number>();
    const outcomes = new Map<string, 'ok' | 'failed'>();
    const classify = async (event: { Records: Array<{ kinesis: { sequenceNumber: string; data: string } }> }) => {
      const batchItemFailures: Array<{ itemIdentifier: string }> = [];
      for (const record of event.Records) {
        const seq = record.kinesis.sequenceNumber;
        const body = Buffer.from(record.kinesis.data, 'base64').toString('utf8');
        const n = (deliveries.get(seq) ?? 0) + 1;
        deliveries.set(seq, n);
        const fail = body === 'poison' || (body === 'fail-once' && n === 1);
        outcomes.set(seq, fail ? 'failed' : 'ok');
        if (fail && batchItemFailures.length === 0) batchItemFailures.push({ itemIdentifier: seq });
      }
      return { batchItemFailures };
    };
    let ownHost: StreamManagerHost | undefined;
    try {
      ownHost = await startStreamManagerHost({
        client: ownClient,
        definition,
        stateDir: ownState,
        exportPrefix: 'ecc-test-',
        handlers: { classify: classify as never, 'aggregate-metrics': (async () => ({})) as never },
        retryBaseDelayMs: 5,
        logger: { debug: () => undefined, warn: () => undefined },
      });
      // Act
      for (const body of ['a', 'fail-once', 'b', 'c', 'poison'])
        await ownClient.appendMessage('camera-images', Buffer.from(body));
      const started = ownHost;
      await waitUntil(
        () => started.runner.deadLetters.length > 0 && outcomes.get('3') === 'ok',
        'the poison message dead-lettered and message 3 handled',
        120_000,
        () => `outcomes ${JSON.stringify([...outcomes])}, ${started.runner.deadLetters.length} dead letters`,
      );
      await ownHost.runner.waitForIdle(60_000);
      // Assert: 0..3 end handled, "fail-once" (1) went twice; "poison" (4) is the only dead letter.
      expect([0, 1, 2, 3].map((seq) => outcomes.get(String(seq)))).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(deliveries.get('1')).toBe(2);
      expect(ownHost.runner.deadLetters.flatMap((d) => d.records.map((r) => r.sequenceNumber))).toEqual(['4']);
      expect(ownHost.runner.deadLetters[0]?.KinesisBatchInfo.streamArn).toMatch(/stream\/camera-images$/);
    } finally {
      await ownHost?.stop();
      ownClient.close();
      await own.close();
      rmSync(ownState, { recursive: true, force: true });
    }
  }, 240_000);
});
