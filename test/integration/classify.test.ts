import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { KinesisStreamEvent } from 'aws-lambda';
import { type ClassifyStreams, classifyBatch } from '../../functions/lib/classify-batch';
import { loadConfig } from '../../functions/lib/config';
import {
  type Prediction,
  type RejectedImage,
  type UncertainImage,
  predictionSchema,
  rejectedImageSchema,
  uncertainImageSchema,
} from '../../functions/lib/contracts';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { type DigitModel, loadDigitModel } from '../../functions/lib/model';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { encodePngRecord } from '../../functions/lib/png-frame-record';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { type FaultRules, withPutRecordsFaults } from '../helpers/failing-kinesis-client';
import { cameraRecord, frameIdOf } from '../helpers/frames';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';

const sampleEvent = (): KinesisStreamEvent =>
  JSON.parse(readFileSync(join(__dirname, '../../events/classify.json'), 'utf8')) as KinesisStreamEvent;

const config = loadConfig({ DEVICE_ID: 'edge-test' });

const mnist = loadMnist('t10k');
const frameJson = (index: number, camera = 'Camera-edge1', extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    image: renderOriginalFrameSync(mnistImage(mnist, index)).toString('base64'),
    camera,
    timestamp: '2026-11-27T15:00:00.000Z',
    label: mnist.labels[index],
    ...extra,
  });

let kinesis: TestKinesis;
let model: DigitModel;
let prefixes = 0;

async function newStreams(): Promise<ClassifyStreams> {
  const prefix = `t${++prefixes}-`;
  const streams = {
    predictions: `${prefix}predictions`,
    uncertainImages: `${prefix}uncertain-images`,
    rejectedImages: `${prefix}rejected-images`,
  };
  await kinesis.createStreams(Object.values(streams));
  return streams;
}

async function outputs(streams: ClassifyStreams) {
  return {
    predictions: (await kinesis.readJson(streams.predictions)).map((r) => predictionSchema.parse(r)) as Prediction[],
    uncertain: (await kinesis.readJson(streams.uncertainImages)).map((r) => uncertainImageSchema.parse(r)) as UncertainImage[],
    rejected: (await kinesis.readJson(streams.rejectedImages)).map((r) => rejectedImageSchema.parse(r)) as RejectedImage[],
  };
}

const writerWith = (rules: FaultRules = {}) => {
  const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), rules);
  return { sink: new KinesisStreamWriter(faulty.client, { maxAttempts: 3, baseDelayMs: 1 }), calls: faulty.calls };
};

beforeAll(async () => {
  kinesis = await startKinesalite();
  model = await loadDigitModel();
});
afterAll(async () => {
  await kinesis.close();
});

describe('classifyBatch over the sample event', () => {
  it('routes every frame: predictions, uncertain ones home, unreadable ones rejected', async () => {
    const streams = await newStreams();
    const event = sampleEvent();
    const { sink } = writerWith();

    const result = await classifyBatch(event.Records, { model, sink, streams, config });

    expect(result.batchItemFailures).toEqual([]);
    const out = await outputs(streams);
    const ids = event.Records.map(frameIdOf);
    // Frames 0-4 are readable, 5 (truncated PNG) and 6 (bad JSON) are not.
    expect(out.predictions.map((p) => p.frame_id)).toEqual(ids.slice(0, 5));
    expect(out.rejected.map((r) => [r.frame_id, r.reason])).toEqual([
      [ids[5], 'corrupt_png'],
      [ids[6], 'invalid_json'],
    ]);
    expect(out.predictions.slice(0, 3).map((p) => p.result_class)).toEqual([7, 2, 1]);
    expect(out.predictions.map((p) => p.label)).toEqual([7, 2, undefined, undefined, 0]);
    for (const p of out.predictions) {
      expect(p).toMatchObject({ device: 'edge-test', model_version: model.version });
      expect(p.prep_time).toBeGreaterThan(0);
      expect(p.predict_time).toBeGreaterThan(0);
    }
    const blank = out.predictions[3];
    expect(blank?.blank).toBe(true);

    const home = new Map(out.uncertain.map((u) => [u.frame_id, u]));
    expect(home.get(ids[3] as string)).toMatchObject({ reason: 'low_confidence', blank: true, camera: 'Camera-edge1' });
    expect(
      home
        .get(ids[3] as string)
        ?.prepared_image.flat()
        .every((v) => v === 0),
    ).toBe(true);
    const testFrame = home.get(ids[4] as string);
    expect(testFrame?.reason).toMatch(/^(test_camera|low_confidence)$/);
    expect(testFrame?.camera).toBe('Test-edge1');
    // The original image goes home untouched, with the prepared image and all ten scores.
    const sent = JSON.parse(Buffer.from(event.Records[4]?.kinesis.data ?? '', 'base64').toString('utf8')) as { image: string };
    expect(testFrame?.image).toBe(sent.image);
    expect(testFrame?.predictions.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // Confident frames from ordinary cameras stay at the edge.
    for (const p of out.predictions) {
      const uncertain = p.result_probability <= config.confidenceThreshold || p.blank || p.camera.startsWith('Test');
      expect(home.has(p.frame_id)).toBe(uncertain);
    }

    const bad = out.rejected[0];
    expect(bad).toMatchObject({ camera: 'Camera-edge2', timestamp: '2026-11-27T15:00:00.120Z', device: 'edge-test' });
    expect(bad?.error.length).toBeGreaterThan(20);
    expect(Buffer.from(bad?.payload ?? '', 'base64').equals(Buffer.from(event.Records[5]?.kinesis.data ?? '', 'base64'))).toBe(
      true,
    );
  });

  it('routes the PNG-record sample event: two predictions, the Test frame home, one reject', async () => {
    const streams = await newStreams();
    const event = JSON.parse(
      readFileSync(join(__dirname, '../../events/classify-png-records.json'), 'utf8'),
    ) as KinesisStreamEvent;

    const result = await classifyBatch(event.Records, { model, sink: writerWith().sink, streams, config });

    expect(result.batchItemFailures).toEqual([]);
    const out = await outputs(streams);
    const ids = event.Records.map(frameIdOf);
    expect(out.predictions.map((p) => [p.frame_id, p.camera, p.result_class, p.label])).toEqual([
      [ids[0], 'Camera-edge1', 7, 7],
      [ids[1], 'Test-edge1', 0, 0],
    ]);
    expect(out.uncertain.map((u) => [u.frame_id, u.reason])).toEqual([[ids[1], 'test_camera']]);
    expect(out.uncertain[0]?.image).toBe(event.Records[1]?.kinesis.data);
    expect(out.rejected.map((r) => [r.frame_id, r.reason, r.camera])).toEqual([[ids[2], 'invalid_record', 'Camera-edge2']]);
    expect(out.rejected[0]?.error).toMatch(/no timestamp text chunk/);
  });

  it('gives the same frame ids when the batch is delivered again', async () => {
    const streams = await newStreams();
    const { sink } = writerWith();
    await classifyBatch(sampleEvent().Records, { model, sink, streams, config });
    await classifyBatch(sampleEvent().Records, { model, sink, streams, config });
    const out = await outputs(streams);
    const ids = out.predictions.map((p) => p.frame_id);
    expect(ids.slice(0, 5)).toEqual(ids.slice(5));
  });
});

describe('classifyBatch scoring', () => {
  it('scores 200 frames in one model call and finds their labels', async () => {
    const streams = await newStreams();
    let calls = 0;
    let largest = 0;
    const counted: DigitModel = {
      version: model.version,
      path: model.path,
      scoreBatch: (images) => {
        calls++;
        largest = Math.max(largest, images.length);
        return model.scoreBatch(images);
      },
    };
    const records = Array.from({ length: 200 }, (_, i) => cameraRecord(frameJson(i)));

    const result = await classifyBatch(records, { model: counted, sink: writerWith().sink, streams, config });

    expect(result.batchItemFailures).toEqual([]);
    expect([calls, largest]).toEqual([1, 200]);
    const out = await outputs(streams);
    expect(out.predictions).toHaveLength(200);
    const correct = out.predictions.filter((p) => p.result_class === p.label).length;
    expect(correct).toBeGreaterThanOrEqual(190);
  });

  it('scores PNG records exactly as the same frames sent as JSON, and sends their PNG home', async () => {
    const jsonStreams = await newStreams();
    const pngStreams = await newStreams();
    const indexes = Array.from({ length: 40 }, (_, i) => i);
    const camera = (i: number) => (i % 10 === 0 ? 'Test-edge1' : 'Camera-edge1');
    const pngRecords = indexes.map((i) =>
      encodePngRecord(renderOriginalFrameSync(mnistImage(mnist, i)), {
        camera: camera(i),
        timestamp: '2026-11-27T15:00:00.000Z',
        label: mnist.labels[i] ?? null,
      }),
    );

    await classifyBatch(
      indexes.map((i) => cameraRecord(frameJson(i, camera(i)))),
      { model, sink: writerWith().sink, streams: jsonStreams, config },
    );
    const result = await classifyBatch(
      pngRecords.map((r) => cameraRecord(r)),
      { model, sink: writerWith().sink, streams: pngStreams, config },
    );

    expect(result.batchItemFailures).toEqual([]);
    const fromJson = await outputs(jsonStreams);
    const fromPng = await outputs(pngStreams);
    const scores = (p: Prediction) => [p.camera, p.label, p.result_class, p.result_probability];
    expect(fromPng.predictions.map(scores)).toEqual(fromJson.predictions.map(scores));
    expect(fromPng.rejected).toEqual([]);
    expect(fromPng.uncertain.length).toBeGreaterThanOrEqual(4);
    expect(fromPng.uncertain.map((u) => u.prepared_image)).toEqual(fromJson.uncertain.map((u) => u.prepared_image));
    // The image sent home is the record's PNG, fields and all, still base64 as the contract says.
    for (const u of fromPng.uncertain) {
      expect(pngRecords.some((r) => r.equals(Buffer.from(u.image, 'base64')))).toBe(true);
    }
  });

  it('fails the whole batch when inference throws, writing nothing', async () => {
    const streams = await newStreams();
    const broken: DigitModel = {
      version: model.version,
      path: model.path,
      scoreBatch: () => Promise.reject(new Error('onnxruntime session lost')),
    };
    const records = [cameraRecord(frameJson(0)), cameraRecord('not json')];

    await expect(classifyBatch(records, { model: broken, sink: writerWith().sink, streams, config })).rejects.toThrow(
      'session lost',
    );
    const out = await outputs(streams);
    expect([out.predictions.length, out.uncertain.length, out.rejected.length]).toEqual([0, 0, 0]);
  });

  it('rejects a frame stamped beyond the allowed skew of the configured clock', async () => {
    const streams = await newStreams();
    const records = [cameraRecord(frameJson(0, 'Camera-edge1', { timestamp: '2026-11-27T15:10:00Z' }))];
    const now = () => Date.parse('2026-11-27T15:00:00Z');

    await classifyBatch(records, { model, sink: writerWith().sink, streams, config, now });

    expect((await outputs(streams)).rejected.map((r) => r.reason)).toEqual(['future_timestamp']);
  });

  it('sends a near-1 MiB uncertain frame home without its original image, flagged', async () => {
    const streams = await newStreams();
    // A valid PNG padded with a tEXt comment so the record sits just under 1 MiB.
    const png = renderOriginalFrameSync(mnistImage(mnist, 0));
    const iend = png.length - 12;
    const record = (padding: number) => {
      const body = Buffer.concat([Buffer.from('tEXtComment\0', 'latin1'), Buffer.alloc(padding, 0x78)]);
      const chunk = Buffer.alloc(body.length + 8);
      chunk.writeUInt32BE(body.length - 4, 0);
      body.copy(chunk, 4);
      chunk.writeUInt32BE(crc32(body), body.length + 4);
      const padded = Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]);
      return JSON.stringify({ image: padded.toString('base64'), camera: 'Test-big', timestamp: '2026-11-27T15:00:00Z' });
    };
    // The largest padding whose record still fits Kinesis' 1 MiB.
    let [low, high] = [700_000, 800_000];
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (Buffer.byteLength(record(mid)) <= 1024 * 1024) low = mid;
      else high = mid;
    }
    const padding = low;

    const result = await classifyBatch([cameraRecord(record(padding), 'Test-big')], {
      model,
      sink: writerWith().sink,
      streams,
      config,
    });

    expect(result.counts.imagesOmitted).toBe(1);
    const out = await outputs(streams);
    expect(out.predictions).toHaveLength(1);
    expect(out.uncertain[0]).toMatchObject({ image: '', image_omitted: true, camera: 'Test-big' });
    expect(out.uncertain[0]?.prepared_image.flat().some((v) => v > 0)).toBe(true);
  });
});

describe('classifyBatch partial failures', () => {
  const keyOf = (data: Buffer) => JSON.parse(data.toString('utf8')) as { frame_id: string };

  it('fails only the records whose outputs could not be written, after retries', async () => {
    const streams = await newStreams();
    const event = sampleEvent();
    const ids = event.Records.map(frameIdOf);
    const seqs = event.Records.map((r) => r.kinesis.sequenceNumber);
    // The prediction of frame 1, the uncertain record of the blank frame 3 and the reject of
    // frame 6 never land; everything else lands on the first try.
    const { sink, calls } = writerWith({
      failEntry: ({ stream, data }) => {
        const id = keyOf(data).frame_id;
        if (stream === streams.predictions && id === ids[1]) return 'ProvisionedThroughputExceededException';
        if (stream === streams.uncertainImages && id === ids[3]) return 'InternalFailure';
        if (stream === streams.rejectedImages && id === ids[6]) return 'ProvisionedThroughputExceededException';
        return undefined;
      },
    });

    const result = await classifyBatch(event.Records, { model, sink, streams, config });

    expect(result.batchItemFailures).toEqual([
      { itemIdentifier: seqs[1] },
      { itemIdentifier: seqs[3] },
      { itemIdentifier: seqs[6] },
    ]);
    // One call per stream, then only the failed entries again, twice.
    expect(calls.filter((c) => c.stream === streams.predictions).map((c) => c.entries)).toEqual([5, 1, 1]);
    const out = await outputs(streams);
    expect(out.predictions.map((p) => p.frame_id)).toEqual([ids[0], ids[2], ids[3], ids[4]]);
    expect(out.rejected.map((r) => r.frame_id)).toEqual([ids[5]]);
  });

  it('loses and duplicates nothing when failed entries land on a retry', async () => {
    const streams = await newStreams();
    const event = sampleEvent();
    const { sink } = writerWith({
      failEntry: ({ timesSeenBefore }) => (timesSeenBefore === 0 ? 'ProvisionedThroughputExceededException' : undefined),
    });

    const result = await classifyBatch(event.Records, { model, sink, streams, config });

    expect(result.batchItemFailures).toEqual([]);
    const out = await outputs(streams);
    expect(out.predictions).toHaveLength(5);
    expect(out.rejected).toHaveLength(2);
    expect(new Set(out.uncertain.map((u) => u.frame_id)).size).toBe(out.uncertain.length);
  });
});

describe('classify handler', () => {
  const env = process.env;
  afterEach(() => {
    process.env = env;
    jest.resetModules();
  });

  it('answers the sample event with an empty batchItemFailures and writes to the configured streams', async () => {
    await kinesis.createStreams(['h-predictions', 'h-uncertain-images', 'h-rejected-images']);
    process.env = { ...env, KINESIS_ENDPOINT: kinesis.endpoint, STREAM_PREFIX: 'h-', LOG_LEVEL: 'SILENT' };
    const { handler } = await import('../../functions/classify');
    const { createLambdaContext } = await import('../../local/runner/lambda-context');

    const response = await handler(sampleEvent(), createLambdaContext({ functionName: 'classify' }));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(await kinesis.readAll('h-predictions')).toHaveLength(5);
    expect(await kinesis.readAll('h-rejected-images')).toHaveLength(2);
  });

  it('fails every invocation of a container whose model did not load, naming the path', async () => {
    process.env = {
      ...env,
      KINESIS_ENDPOINT: kinesis.endpoint,
      MODEL_DIR: join(__dirname, 'no-model-here'),
      LOG_LEVEL: 'SILENT',
    };
    const { handler } = await import('../../functions/classify');
    const { createLambdaContext } = await import('../../local/runner/lambda-context');

    await expect(handler(sampleEvent(), createLambdaContext({ functionName: 'classify' }))).rejects.toThrow('no-model-here');
  });
});
