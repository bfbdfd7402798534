/**
 * The aggregator as deployed: the aggregate-metrics mapping declared in serverless.yml (with
 * 1-second windows), driven by the local event source mapping runner over a two-shard
 * `predictions` stream on the real emulator, writing to a real `metrics` stream. The merged
 * documents must account for every prediction exactly once, unreadable records included, and
 * frames written again into a later window (the handler's container remembers the windows it
 * closed, as a warm Lambda container does) must not be counted again.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { Prediction } from '../../functions/lib/contracts';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { mergeByWindow, mergeMetrics } from '../../functions/lib/metrics/merge';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import { applyOverrides, loadServiceDefinition } from '../../local/runner/mappings';
import { EventSourceMappingRunner, type StreamHandler } from '../../local/runner';
import { predictionStream } from '../helpers/metrics-fixtures';
import { putJson } from '../helpers/runner-harness';
import { streamReader } from '../helpers/stream-reader';
import { fakeDate } from '../helpers/clock';
import { waitUntil } from '../helpers/wait';

const PREFIX = 'aggint-';

let emulator: KinesisEmulator;
let client: KinesisClient;

beforeAll(async () => {
  // On the test's thread, so arrivals are stamped with the clock the test moves (see below).
  emulator = await KinesisEmulator.start({ port: 0, sameThread: true });
  client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
  process.env.KINESIS_ENDPOINT = emulator.endpoint;
  process.env.STREAM_PREFIX = PREFIX;
  process.env.AWS_REGION = 'us-east-1';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  process.env.LOG_LEVEL = 'ERROR';
});

afterAll(async () => {
  jest.useRealTimers();
  client.destroy();
  await emulator.stop();
});

it('metrics documents of every window and shard add up to the predictions, each counted once', async () => {
  // Prepare: the declared mapping, 1-second windows, two shards.
  const definition = applyOverrides(await loadServiceDefinition(), { windowSeconds: 1 });
  const mapping = definition.mappings.find((m) => m.functionKey === 'aggregate-metrics');
  if (!mapping) throw new Error('serverless.yml declares no aggregate-metrics mapping');
  expect(mapping.stream).toBe('predictions');
  await ensureStreams(client, [
    { name: `${PREFIX}predictions`, shards: 2 },
    { name: `${PREFIX}metrics`, shards: 1 },
  ]);
  const { handler } = require('../../functions/aggregate-metrics') as { handler: StreamHandler };
  const runner = new EventSourceMappingRunner({
    client,
    streamPrefix: PREFIX,
    retryBaseDelayMs: 5,
    maxIdlePollMs: 30,
    logger: { debug: () => undefined, warn: () => undefined },
  });
  // Records the handler has finished with: the faked clock below moves in steps too coarse for
  // waitForIdle's marks, so the test first waits for every record to be handled.
  let handled = 0;
  const counting = (async (event: { Records: unknown[] }, context: unknown) => {
    const response = await (handler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(event, context);
    handled += event.Records.length;
    return response;
  }) as unknown as StreamHandler;
  runner.add(mapping, counting);
  await runner.start();

  // Act: three bursts spread over more than one window (the clock moved 600 ms on after each
  // instead of waiting), plus two unreadable records.
  fakeDate(Date.now(), true);
  const predictions: Prediction[] = predictionStream(99, 1_500);
  for (let burst = 0; burst < 3; burst += 1) {
    await putJson(client, `${PREFIX}predictions`, predictions.slice(burst * 500, (burst + 1) * 500), (i) => `cam-${i % 7}`);
    if (burst === 1) await putJson(client, `${PREFIX}predictions`, [{ not: 'a prediction' }, 'text'], (i) => `bad-${i}`);
    jest.setSystemTime(Date.now() + 600);
  }
  // The first burst's first 200 frames again, as a retried classify batch writes them: same
  // frame ids and partition keys (so the same shards), arriving over a second later, so in a
  // later window than the copies already counted.
  const redelivered = predictions.slice(0, 200);
  await putJson(client, `${PREFIX}predictions`, redelivered, (i) => `cam-${i % 7}`);
  const sent = predictions.length + 2 + redelivered.length;
  await waitUntil(
    () => handled >= sent,
    `the ${sent} records handled`,
    60_000,
    () => `${handled} handled`,
  );
  await runner.waitForIdle();
  await runner.closeWindows();
  await runner.waitForIdle();
  await runner.stop();

  // Assess
  const docs = (await readMetrics()).map((d) => metricsDocumentSchema.parse(d));
  const total = mergeMetrics(docs);
  expect(total.count).toBe(predictions.length);
  expect(total.duplicates).toBe(redelivered.length);
  expect(total.invalid.count).toBe(2);
  const perCamera = new Map<string, number>();
  for (const p of predictions) perCamera.set(p.camera, (perCamera.get(p.camera) ?? 0) + 1);
  for (const [camera, n] of perCamera) expect(total.camera_metrics[camera]?.count).toBe(n);
  const uncertain = predictions.filter((p) => p.result_probability <= 0.7).length;
  expect(total.uncertain).toBe(uncertain);
  const labelled = predictions.filter((p) => p.label !== undefined);
  const correct = labelled.filter((p) => p.label === p.result_class).length;
  const accuracy = Object.values(total.camera_metrics).reduce(
    (acc, m) => ({ correct: acc.correct + (m.accuracy?.correct ?? 0), labelled: acc.labelled + (m.accuracy?.labelled ?? 0) }),
    { correct: 0, labelled: 0 },
  );
  expect(accuracy).toEqual({ correct, labelled: labelled.length });
  // Both shards took part, in more than one window, and each window merges cleanly.
  expect(new Set(docs.map((d) => d.shard)).size).toBe(2);
  expect(mergeByWindow(docs).length).toBeGreaterThan(1);
  expect(mergeByWindow(docs).reduce((n, w) => n + w.count, 0)).toBe(predictions.length);
});

/** Every document on the metrics stream, all shards, oldest first. */
const readMetrics = async (): Promise<unknown[]> =>
  (await streamReader(client).readAll(`${PREFIX}metrics`)).map((r) => JSON.parse(r.data.toString('utf8')) as unknown);
