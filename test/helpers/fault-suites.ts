/**
 * The fault suites, run over either path between the pipeline and its emulator (HTTP, or the
 * direct path): test/integration/faults.test.ts and faults-direct.test.ts call them.
 *
 * Faults against the real emulator, through the real classify handler run by the local
 * runner with the mappings of serverless.yml:
 *
 * - PutRecords partial failures (entries failed with ProvisionedThroughputExceededException
 *   inside a successful call): the writer sends again exactly the failed entries; those that
 *   stay failed past its bound fail only their source records, which the runner redelivers;
 * - a poison record whose output can never be written: after the configured retries it goes
 *   to the on-failure destination with its reason, and the shard moves on;
 * - the emulator stopping mid-run and coming back: the runner keeps its place, reconnects and
 *   resumes without loss.
 *
 * Every test balances the ledger: frames in = predicted + rejected (+ dead-lettered), uncertain
 * frames are predicted frames, no frame id is missing, duplicates only where a redelivery was.
 *
 * Each scenario (a describe) starts its own emulator, proxy and pipeline, so none depends on
 * what another left behind; the tests inside a scenario only read what its setup produced.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { Context, KinesisStreamEvent } from 'aws-lambda';
import { framesFrom } from '../../functions/lib/camera-source/frames';
import { publishFrames } from '../../functions/lib/camera-source/publish';
import { KinesisStreamWriter, type OutputRecord, type RecordSink } from '../../functions/lib/stream-writer';
import { KinesisEmulator } from '../../local/emulator';
import { LocalPipeline, type Transport } from '../../local/pipeline';
import type { DeadLetterRecord, StreamHandler } from '../../local/runner';
import { balance, deadLetteredIds, type Ledger, readStreams } from './accounting';
import { writeCentroidModel } from './centroid-model';
import {
  type DirectFaultRelay,
  type FaultProxy,
  type ProxyRules,
  startDirectFaultRelay,
  startFaultProxy,
} from './kinesis-fault-proxy';
import { waitUntil } from './wait';

/** Defines the fault suites with the pipeline's readers and writers on `transport`. */
export function faultSuites(transport: Transport): void {
  const WRITE_MAX_ATTEMPTS = 2;
  const THROTTLED = 'ProvisionedThroughputExceededException';

  let dir: string;
  let emulator: KinesisEmulator;
  let proxy: FaultProxy | undefined;
  let relay: DirectFaultRelay | undefined;
  let pipeline: LocalPipeline;
  let modelDir: string;
  const warnings: string[] = [];

  /** Invocations of classify that carried each frame id. */
  const deliveries = new Map<string, number>();
  /** PutRecords entries the proxy saw, and failed, per `<stream> <frame id>`, with their camera. */
  interface Sent {
    camera: string;
    seen: number;
    failed: number;
  }
  const sent = new Map<string, Sent>();
  const sentFor = (stream: string, id: string): Sent => sent.get(`${stream} ${id}`) ?? { camera: '', seen: 0, failed: 0 };
  /** Prediction entries of one camera: frame id, times seen, times failed, deliveries. */
  const predictionsOf = (camera: string) =>
    [...sent.entries()]
      .filter(([key, s]) => key.startsWith('predictions ') && s.camera === camera)
      .map(([key, s]) => {
        const id = key.slice('predictions '.length);
        return { id, seen: s.seen, failed: s.failed, delivered: deliveries.get(id) ?? 0 };
      });

  /** Invocations of classify under way. */
  let inFlight = 0;
  type Handler = (event: KinesisStreamEvent, context: Context) => Promise<unknown>;
  /**
   * classify as loaded for the current scenario: it reads its configuration (the endpoint it
   * writes to, the model) when loaded, so each scenario loads it afresh, as a new container would.
   */
  let classify: Handler | undefined;

  /** The real classify handler, loaded when first called (after the pipeline set its environment). */
  const trackedClassify = (async (event: KinesisStreamEvent, context: Context) => {
    for (const r of event.Records) {
      const id = `${r.eventID.split(':')[0]}-${r.kinesis.sequenceNumber}`;
      deliveries.set(id, (deliveries.get(id) ?? 0) + 1);
    }
    if (!classify) {
      jest.isolateModules(() => {
        // Its writer's client, as the pipeline gives it to handlers in its thread (the direct path's).
        const writer = require('../../functions/lib/stream-writer') as typeof import('../../functions/lib/stream-writer');
        writer.useHostKinesisClient(pipeline.handlerKinesisClient);
        classify = (require('../../functions/classify') as { handler: Handler }).handler;
      });
    }
    const handler = classify as Handler;
    inFlight += 1;
    try {
      return await handler(event, context);
    } finally {
      inFlight -= 1;
    }
  }) as unknown as StreamHandler;

  /** A fresh emulator, fault proxy and pipeline, with nothing recorded yet. */
  async function startScenario(): Promise<void> {
    deliveries.clear();
    sent.clear();
    warnings.length = 0;
    inFlight = 0;
    classify = undefined;
    modelDir = writeCentroidModel(3000);
    dir = mkdtempSync(join(tmpdir(), 'faults-'));
    emulator = await KinesisEmulator.start({ port: 0, persistPath: join(dir, 'kinesis') });
    const rules: ProxyRules = {
      failEntry: ({ stream, partitionKey, frameId, seenBefore }) => {
        if (!frameId) return undefined;
        let verdict: string | undefined;
        if (stream === 'predictions') {
          // Fails once: the writer's own retry must absorb it.
          if (partitionKey === 'Camera-transient' && seenBefore === 0) verdict = THROTTLED;
          // Fails past the writer's attempts once: the source record must be redelivered.
          if (partitionKey === 'Camera-flaky' && seenBefore < WRITE_MAX_ATTEMPTS) verdict = THROTTLED;
          // Never lands.
          if (partitionKey === 'Camera-poison') verdict = THROTTLED;
        }
        const entry = sentFor(stream, frameId);
        sent.set(`${stream} ${frameId}`, {
          camera: partitionKey,
          seen: entry.seen + 1,
          failed: entry.failed + (verdict ? 1 : 0),
        });
        return verdict;
      },
    };
    proxy = undefined;
    relay = undefined;
    if (transport === 'http') {
      proxy = await startFaultProxy(emulator.endpoint, rules);
    } else {
      const port = emulator.port;
      relay = startDirectFaultRelay(() => KinesisEmulator.openDirectPortAt(port), rules);
    }
    pipeline = await LocalPipeline.start({
      endpoint: emulator.endpoint,
      transport,
      ...(proxy ? { handlerEndpoint: proxy.url } : {}),
      ...(relay ? { handlerDirectPort: relay.openPort } : {}),
      outDir: join(dir, 'out'),
      retryBaseDelayMs: 10,
      handlers: { classify: trackedClassify },
      env: {
        MODEL_DIR: modelDir,
        WRITE_MAX_ATTEMPTS: String(WRITE_MAX_ATTEMPTS),
        WRITE_BASE_DELAY_MS: '1',
        AWS_REGION: 'us-east-1',
        LOG_LEVEL: 'SILENT',
      },
      logger: { debug: () => undefined, warn: (message) => warnings.push(message) },
    });
  }

  async function stopScenario(): Promise<void> {
    await pipeline?.stop();
    await proxy?.close();
    relay?.close();
    await emulator?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(modelDir, { recursive: true, force: true });
  }

  /** Publishes `count` MNIST frames as camera `camera` (the partition key is the camera id). */
  async function publish(camera: string, count: number, offset = 0): Promise<void> {
    const writer = new KinesisStreamWriter(pipeline.client);
    const frames = framesFrom('mnist', 1);
    for (let skipped = 0; skipped < offset; skipped++) await frames.next();
    const summary = await publishFrames(frames, writer, { camera, stream: 'camera-images', count });
    expect(summary.published).toBe(count);
  }

  /** The records `publish` would send for a camera, collected instead of sent. */
  async function recordsOf(camera: string, count: number, offset: number): Promise<OutputRecord[]> {
    const collected: OutputRecord[] = [];
    const sink: RecordSink = {
      put: async (_stream, records) => {
        collected.push(...records);
        return { failedIndexes: [] };
      },
    };
    const frames = framesFrom('mnist', 1);
    for (let skipped = 0; skipped < offset; skipped++) await frames.next();
    await publishFrames(frames, sink, { camera, stream: 'camera-images', count });
    return collected;
  }

  /** The ledger must balance: nothing missing, nothing strange, uncertain within predicted. */
  function expectBalanced(ledger: Ledger, deadLettered: ReadonlySet<string>): void {
    expect(ledger.missing).toEqual([]);
    expect(ledger.strangers).toEqual([]);
    expect(ledger.predictedAndRejected).toEqual([]);
    expect(ledger.duplicatedWithoutRedelivery).toEqual([]);
    expect(ledger.uncertainNotPredicted.filter((id) => !deadLettered.has(id))).toEqual([]);
    expect(ledger.predicted + ledger.rejected + ledger.deadLetteredOnly.length).toBe(ledger.framesIn);
  }

  describe('PutRecords partial failures and a poison record', () => {
    let ledger: Ledger;
    let deadLetters: DeadLetterRecord[];
    let poisonId: string;
    let afterPoison: string[];

    beforeAll(async () => {
      await startScenario();
      // Ordinary, transiently failing and flaky cameras, a bad record, then one poison frame
      // followed by more frames on the same shard.
      await publish('Camera-ok', 150);
      await publish('Camera-transient', 60, 150);
      await publish('Camera-flaky', 60, 210);
      await pipeline.client.send(
        new PutRecordsCommand({
          StreamName: 'camera-images',
          Records: [{ PartitionKey: 'Camera-bad', Data: Buffer.from('{"image": ') }],
        }),
      );
      await pipeline.drain(180_000);
      const before = new Set((await readStreams(pipeline.client)).inputs);
      // One PutRecords: the poison and the frames after it reach classify in one batch whatever
      // the machine's load, so retrying the poison rewrites outputs that had landed.
      const poisonAndAfter = [...(await recordsOf('Camera-poison', 1, 270)), ...(await recordsOf('Camera-after', 40, 271))];
      const written = await new KinesisStreamWriter(pipeline.client).put('camera-images', poisonAndAfter);
      expect(written.failedIndexes).toEqual([]);
      await pipeline.drain(180_000);

      const contents = await readStreams(pipeline.client);
      const added = contents.inputs.filter((id) => !before.has(id));
      poisonId = added[0] as string;
      afterPoison = added.slice(1);
      deadLetters = [...pipeline.runner.deadLetters];
      ledger = balance(contents, deadLetteredIds(deadLetters), deliveries);
      expect(contents.unreadable).toBe(0);
    }, 400_000);
    afterAll(stopScenario);

    it('balances: every frame predicted, rejected or dead-lettered, duplicates only after redelivery', () => {
      expectBalanced(ledger, deadLetteredIds(deadLetters));
      expect(ledger.framesIn).toBe(150 + 60 + 60 + 1 + 1 + 40);
      expect(ledger.rejected).toBe(1);
      expect(ledger.deadLetteredOnly).toEqual([poisonId]);
      // The redeliveries did duplicate some outputs (that is what frame_id is for), and the
      // home outputs show each frame once.
      expect(ledger.duplicates.predictions).toBeGreaterThan(0);
      const home = pipeline.home.ids();
      expect(home.predicted.size).toBe(ledger.predicted);
      expect(home.rejected.size).toBe(ledger.rejected);
      expect(home.uncertain.size).toBe(ledger.uncertain);
    });

    it('sends again exactly the failed entries, and nothing that landed', () => {
      // A frame failing nowhere is sent once per delivery of its source record.
      const ok = predictionsOf('Camera-ok');
      expect(ok).toHaveLength(150);
      for (const f of ok) expect(f).toEqual({ ...f, seen: f.delivered, failed: 0 });
      // Failing once: one more send, within the same delivery.
      const transient = predictionsOf('Camera-transient');
      expect(transient).toHaveLength(60);
      for (const f of transient) expect(f).toEqual({ ...f, seen: f.delivered + 1, failed: 1 });
    });

    it('fails only the source record whose write stays failed past the writer bound, and the runner redelivers it', () => {
      // The first delivery used up the writer's attempts; a later one landed at the first try.
      const flaky = predictionsOf('Camera-flaky');
      expect(flaky).toHaveLength(60);
      for (const f of flaky) {
        expect(f.delivered).toBeGreaterThanOrEqual(2);
        expect(f).toEqual({ ...f, seen: f.delivered + WRITE_MAX_ATTEMPTS - 1, failed: WRITE_MAX_ATTEMPTS });
      }
      // Frames of other cameras delivered more than once shared a batch with a flaky frame
      // behind them: redelivery starts at the lowest failed record, as on Lambda.
      const once = predictionsOf('Camera-ok').filter((f) => f.delivered === 1);
      expect(once.length).toBeGreaterThan(0);
    });

    it('moves a poison record to the on-failure destination after the configured retries, with its reason', () => {
      const retries = pipeline.mapping('classify')?.maximumRetryAttempts ?? -1;
      expect(retries).toBeGreaterThanOrEqual(0);
      expect(deliveries.get(poisonId)).toBe(retries + 1);
      expect(sentFor('predictions', poisonId).seen).toBe((retries + 1) * WRITE_MAX_ATTEMPTS);
      expect(deadLetters).toHaveLength(1);
      const letter = deadLetters[0] as DeadLetterRecord;
      expect(letter.requestContext).toMatchObject({ condition: 'RetryAttemptsExhausted', approximateInvokeCount: retries + 1 });
      expect(letter.errorMessage).toMatch(/batch item failures/);
      expect(letter.destinationArn).toMatch(/^arn:aws:sqs:.*classify/i);
      expect(`${letter.KinesisBatchInfo.shardId}-${letter.KinesisBatchInfo.startSequenceNumber}`).toBe(poisonId);
      expect(JSON.parse(Buffer.from(letter.records[0]?.data ?? '', 'base64').toString('utf8'))).toMatchObject({
        camera: 'Camera-poison',
      });
      // Records after the poison in its batch were retried (and dead-lettered) with it, as Lambda
      // does from the lowest failed sequence number; their own outputs did land.
      const predicted = pipeline.home.ids().predicted;
      const letterIds = letter.records.map((r) => `${letter.KinesisBatchInfo.shardId}-${r.sequenceNumber}`);
      expect(letterIds.filter((id) => id !== poisonId && !predicted.has(id))).toEqual([]);
      // The destination file holds the same record: nothing is lost with an in-memory emulator.
      const onDisk = readFileSync(pipeline.home.path('deadLetter'), 'utf8').trim().split('\n');
      expect(onDisk.map((l) => (JSON.parse(l) as DeadLetterRecord).requestContext.requestId)).toEqual([
        letter.requestContext.requestId,
      ]);
      // The shard moved on: every frame after the poison was scored.
      expect(afterPoison).toHaveLength(40);
      expect(afterPoison.filter((id) => !predicted.has(id))).toEqual([]);
    });
  });

  describe('the emulator stopping mid-run', () => {
    beforeEach(startScenario, 120_000);
    afterEach(stopScenario);

    it('keeps the runner in place, reconnects when it returns and resumes without loss', async () => {
      // Prepare
      const before = new Set((await readStreams(pipeline.client)).inputs);
      const predictedBefore = pipeline.home.counts.predicted;
      const dead = pipeline.runner.deadLetters.length;
      warnings.length = 0;

      // Act: 1,500 frames in; the emulator stops once some have come home, and returns once the
      // runner has found it unreachable and every classify invocation begun has failed.
      await publish('Camera-outage', 1500);
      await waitUntil(
        () => pipeline.home.counts.predicted >= predictedBefore + 200,
        '200 predictions of Camera-outage home',
        240_000,
        () => `${pipeline.home.counts.predicted - predictedBefore} home`,
      );
      const port = emulator.port;
      await emulator.stop();
      const stoppedAt = pipeline.home.counts.predicted;
      await waitUntil(
        () => warnings.some((w) => /unreachable/.test(w)) && inFlight === 0,
        'the runner to find the emulator unreachable and classify to give up',
        120_000,
        () => `warnings ${JSON.stringify(warnings)}, ${inFlight} classify invocations under way`,
      );
      emulator = await KinesisEmulator.start({ port, persistPath: join(dir, 'kinesis') });
      await pipeline.drain(300_000);

      // Assess
      const contents = await readStreams(pipeline.client);
      const added = contents.inputs.filter((id) => !before.has(id));
      expect(added).toHaveLength(1500);
      expect(stoppedAt - predictedBefore).toBeLessThan(1500);
      const ledger = balance({ ...contents, inputs: added }, new Set(), deliveries);
      const mine = new Set(added);
      expect(ledger.missing).toEqual([]);
      expect(ledger.duplicatedWithoutRedelivery.filter((id) => mine.has(id))).toEqual([]);
      expect(pipeline.runner.deadLetters).toHaveLength(dead);
      const home = pipeline.home.ids().predicted;
      expect(added.filter((id) => !home.has(id))).toEqual([]);
      expect(warnings.some((w) => /unreachable/.test(w))).toBe(true);
      expect(warnings.some((w) => /reachable again/.test(w))).toBe(true);
    }, 400_000);
  });
}
