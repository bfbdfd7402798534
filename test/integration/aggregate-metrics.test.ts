import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteStreamCommand } from '@aws-sdk/client-kinesis';
import type { Context } from 'aws-lambda';
import type { TumblingWindowEvent } from '../../functions/lib/metrics/aggregate';
import { aggregateWindow, MAX_DOCUMENT_BYTES, MetricsWriteError } from '../../functions/lib/metrics/aggregate';
import { LogLinearHistogram } from '../../functions/lib/metrics/histogram';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { ConsoleSink, KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { createLambdaContext } from '../../local/runner/lambda-context';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { makePrediction, TEST_CONFIG } from '../helpers/metrics-fixtures';

type Handler = (
  event: TumblingWindowEvent,
  context: Context,
) => Promise<{ state: Record<string, unknown>; batchItemFailures?: unknown[] }>;

const PREFIX = 'aggtest-';
const METRICS_STREAM = `${PREFIX}metrics`;

function loadEvent(name: string): TumblingWindowEvent {
  const path = join(__dirname, '..', '..', 'events', `aggregate-metrics-${name}.json`);
  return JSON.parse(readFileSync(path, 'utf8')) as TumblingWindowEvent;
}

/** Error texts of unparseable JSON differ between Node versions; everything else must match. */
function withoutErrorText(state: Record<string, unknown>): unknown {
  return JSON.parse(JSON.stringify(state), (key, value: unknown) => (key === 'error' ? '<error>' : value));
}

const quietLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('aggregate-metrics handler over the sample window events', () => {
  let kinesis: TestKinesis;
  let handler: Handler;
  let stdout: string[];
  let spies: jest.SpyInstance[];
  const invoke = (event: TumblingWindowEvent) => handler(event, createLambdaContext({ functionName: 'aggregate-metrics' }));

  beforeAll(async () => {
    kinesis = await startKinesalite();
    await kinesis.createStreams([METRICS_STREAM]);
    process.env.KINESIS_ENDPOINT = kinesis.endpoint;
    process.env.STREAM_PREFIX = PREFIX;
    process.env.AWS_REGION = 'us-east-1';
    process.env.CONFIDENCE_THRESHOLD = '0.7';
    process.env.METRICS_WINDOW_SECONDS = '10';
    // The handler reads its configuration at module scope, as on a cold start.
    handler = (require('../../functions/aggregate-metrics') as { handler: Handler }).handler;
  });

  beforeEach(() => {
    // Powertools writes EMF and info logs to stdout, warnings and errors to stderr.
    stdout = [];
    spies = [process.stdout, process.stderr].map((stream) =>
      jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stdout.push(String(chunk));
        return true;
      }),
    );
  });

  afterEach(() => {
    for (const spy of spies) spy.mockRestore();
  });

  afterAll(async () => {
    await kinesis.close();
  });

  /** The EMF blobs Powertools printed during the invocation. */
  function emf(): Array<
    Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string; Unit: string }> }> } }
  > {
    return stdout
      .flatMap((chunk) => chunk.split('\n'))
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line));
  }

  it('first invocation: folds the batch and returns the state the middle event carries', async () => {
    const result = await invoke(loadEvent('first'));

    expect(result.batchItemFailures).toEqual([]);
    expect(result.state).toEqual(loadEvent('middle').state);
    expect(await kinesis.readAll(METRICS_STREAM)).toHaveLength(0);
    expect(emf()[0]?._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name)).toEqual(['RecordsFolded']);
    expect(emf()[0]?.RecordsFolded).toBe(4);
  });

  it('middle invocation: counts unreadable records instead of failing them', async () => {
    const result = await invoke(loadEvent('middle'));

    expect(result.batchItemFailures).toEqual([]);
    expect(withoutErrorText(result.state)).toEqual(withoutErrorText(loadEvent('final').state ?? {}));
    expect(result.state.count).toBe(6);
    expect(result.state.invalid).toEqual({ invalid_json: 1, invalid_record: 1 });
  });

  it('final invocation: writes one document to the metrics stream and emits the headline figures', async () => {
    // Act
    const result = await invoke(loadEvent('final'));

    // Assess: the document as a reader of the stream sees it.
    expect(result).toEqual({ state: {}, batchItemFailures: [] });
    const records = await kinesis.readAll(METRICS_STREAM);
    expect(records).toHaveLength(1);
    expect(records[0]?.partitionKey).toBe('shardId-000000000000');
    const doc = metricsDocumentSchema.parse(JSON.parse(records[0]?.data.toString('utf8') ?? ''));
    expect(doc.count).toBe(6);
    expect(doc.window).toMatchObject({ start: '2026-11-27T15:00:00Z', end: '2026-11-27T15:00:10Z' });
    expect(doc.shard).toBe('shardId-000000000000');
    expect(doc.terminated_early).toBe(false);
    expect(doc.throughput).toBeCloseTo(0.6, 12);
    expect(doc.camera_metrics['Camera-edge-gw-01']).toMatchObject({
      certain: [0, 0, 1, 0, 0, 0, 0, 1, 0, 0],
      uncertain: [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
      count: 4,
      blank: 1,
    });
    expect(doc.camera_metrics['Test-edge-gw-01']).toMatchObject({
      certain: [0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
      uncertain: [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
      accuracy: { correct: 1, labelled: 2, rate: 0.5 },
    });
    expect(doc.uncertain).toBe(3);
    expect(doc.model_versions).toEqual({ 'digits-2026.11.1': 6 });
    expect(doc.invalid.count).toBe(2);
    expect(doc.invalid.examples.map((e) => e.reason)).toEqual(['invalid_json', 'invalid_record']);
    expect(doc.config).toEqual({ ...TEST_CONFIG });
    expect(doc.latency_metrics.prep.min).toBe(0.0012);
    expect(doc.latency_metrics.prep.max).toBe(0.0017);
    expect(doc.latency_metrics.end_to_end.count).toBe(6);

    const [blob] = emf();
    const names = blob?._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name).sort();
    expect(names).toEqual(
      [
        'DuplicateFrames',
        'EndToEndLatencyP99',
        'Frames',
        'PredictLatencyP99',
        'PrepLatencyP99',
        'RecordsFolded',
        'RejectedFrames',
        'Throughput',
        'UncertainShare',
        'UnreadableRecords',
      ].sort(),
    );
    expect(blob?.Frames).toBe(6);
    expect(blob?.UncertainShare).toBe(50);
    expect(blob?.PrepLatencyP99).toBe(doc.latency_metrics.prep['99']);
  });

  it('early-terminated final invocation: folds its records and marks the document', async () => {
    const before = (await kinesis.readAll(METRICS_STREAM)).length;

    const result = await invoke(loadEvent('early-terminated'));

    expect(result).toEqual({ state: {}, batchItemFailures: [] });
    const records = await kinesis.readAll(METRICS_STREAM);
    expect(records).toHaveLength(before + 1);
    const doc = metricsDocumentSchema.parse(JSON.parse(records.at(-1)?.data.toString('utf8') ?? ''));
    expect(doc.terminated_early).toBe(true);
    expect(doc.count).toBe(3);
    expect(doc.camera_metrics['Camera-edge-gw-01']?.certain).toEqual([0, 0, 0, 2, 0, 0, 0, 0, 1, 0]);
  });

  it('an empty window writes nothing and still returns a state', async () => {
    const before = (await kinesis.readAll(METRICS_STREAM)).length;

    const result = await invoke({ ...loadEvent('final'), state: {} });

    expect(result).toEqual({ state: {}, batchItemFailures: [] });
    expect(await kinesis.readAll(METRICS_STREAM)).toHaveLength(before);
  });

  it('a state it cannot read is reported and the window goes on with the records at hand', async () => {
    const result = await invoke({ ...loadEvent('first'), state: { version: 0 } });

    expect(result.state.count).toBe(4);
    expect(stdout.join('')).toContain('window state unreadable');
  });

  it('fails the invocation when the document cannot be written, so Lambda retries it', async () => {
    // A real writer against a stream that does not exist: PutRecords fails for good.
    const writer = new KinesisStreamWriter(kinesis.client, { maxAttempts: 2, baseDelayMs: 1 });

    const attempt = aggregateWindow(loadEvent('final'), {
      sink: writer,
      metricsStream: 'no-such-stream',
      config: TEST_CONFIG,
      logger: quietLogger,
    });

    await expect(attempt).rejects.toThrow(MetricsWriteError);
    await expect(attempt).rejects.toThrow(/ResourceNotFoundException/);
  });

  it('the handler fails the invocation when the metrics stream is gone', async () => {
    await kinesis.client.send(new DeleteStreamCommand({ StreamName: METRICS_STREAM }));

    await expect(invoke(loadEvent('final'))).rejects.toThrow(MetricsWriteError);
  });
});

describe('aggregateWindow over rejected-images', () => {
  const REJECTS_ARN = 'arn:aws:kinesis:us-east-1:123456789012:stream/dev-rejected-images';

  function rejectRecord(sequence: number, body: unknown) {
    const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)).toString('base64');
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'k',
        sequenceNumber: String(sequence),
        data,
        approximateArrivalTimestamp: 0,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000000:${sequence}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn',
      awsRegion: 'us-east-1',
      eventSourceARN: REJECTS_ARN,
    };
  }
  const reject = (frame: string, camera: string | undefined, reason: string) => ({
    frame_id: frame,
    ...(camera ? { camera } : {}),
    device: 'dev',
    reason,
    error: 'what to do',
    payload: '',
    payload_bytes: 0,
    payload_truncated: false,
    received_at: '2026-11-27T15:00:01.000Z',
  });

  it('counts rejects per camera and reason in a document of its own stream, each frame once', async () => {
    // Prepare: a camera that sends only garbage, one record delivered twice, one unreadable record.
    const written: Buffer[] = [];
    const sink = {
      put: async (_stream: string, entries: Array<{ data: Buffer }>) => {
        written.push(...entries.map((e) => e.data));
        return { failedIndexes: [] };
      },
    };
    const records = [
      rejectRecord(1, reject('shardId-000000000000-1', 'Garbage-cam', 'not_png')),
      rejectRecord(2, reject('shardId-000000000000-2', 'Garbage-cam', 'corrupt_png')),
      rejectRecord(3, reject('shardId-000000000000-2', 'Garbage-cam', 'corrupt_png')),
      rejectRecord(4, reject('shardId-000000000000-3', undefined, 'invalid_json')),
      rejectRecord(5, 'not json'),
    ];
    const event: TumblingWindowEvent = {
      Records: records as TumblingWindowEvent['Records'],
      window: { start: '2026-11-27T15:00:00Z', end: '2026-11-27T15:00:10Z' },
      state: {},
      shardId: 'shardId-000000000000',
      eventSourceARN: REJECTS_ARN,
      isFinalInvokeForWindow: true,
      isWindowTerminatedEarly: false,
    };

    // Act
    const result = await aggregateWindow(event, {
      sink: sink as never,
      metricsStream: 'dev-metrics',
      config: TEST_CONFIG,
      logger: quietLogger,
    });

    // Assess
    expect(written).toHaveLength(1);
    const doc = metricsDocumentSchema.parse(JSON.parse(written[0]?.toString('utf8') ?? ''));
    expect(result.document).toEqual(doc);
    expect(doc.shard).toBe('rejected-images:shardId-000000000000');
    expect(doc.count).toBe(0);
    expect(doc.rejected).toEqual({
      count: 3,
      reasons: { corrupt_png: 1, invalid_json: 1, not_png: 1 },
      cameras: { '(unknown)': { invalid_json: 1 }, 'Garbage-cam': { corrupt_png: 1, not_png: 1 } },
    });
    expect(doc.duplicates).toBe(1);
    expect(doc.invalid.count).toBe(1);
  });
});

describe('aggregateWindow document size', () => {
  it('leaves out the per-camera histograms rather than fail on a document over the record limit', async () => {
    // Prepare: 200 cameras whose latencies spread over eight decades, every bucket in use.
    const acc = new WindowAccumulator(TEST_CONFIG.confidence);
    const wide = LogLinearHistogram.of(Array.from({ length: 4_000 }, (_, i) => 1e-3 * 1.0046 ** i));
    for (let i = 0; i < 10; i += 1) wide.merge(LogLinearHistogram.fromData(wide.toData()));
    for (let i = 0; i < 200; i += 1) {
      acc.add(makePrediction({ camera: `Camera-${i}` }));
      acc.cameras.get(`Camera-${i}`)?.endToEnd.merge(wide);
    }
    const lines: string[] = [];
    const event = { ...loadEvent('final'), state: acc.toState() };

    // Act
    const result = await aggregateWindow(event, {
      sink: new ConsoleSink((line) => lines.push(line)),
      metricsStream: 'metrics',
      config: TEST_CONFIG,
      logger: quietLogger,
    });

    // Assess
    expect(Buffer.byteLength(JSON.stringify(event.state))).toBeGreaterThan(MAX_DOCUMENT_BYTES);
    expect(lines).toHaveLength(1);
    expect(Buffer.byteLength(lines[0] ?? '')).toBeLessThan(MAX_DOCUMENT_BYTES);
    const doc = metricsDocumentSchema.parse((JSON.parse(lines[0] ?? '') as { record: unknown }).record);
    expect(doc.histograms.cameras).toEqual({});
    expect(Object.keys(doc.camera_metrics)).toHaveLength(200);
    expect(doc.camera_metrics['Camera-7']?.end_to_end.count).toBe(wide.count + 1);
    expect(result.document?.id).toBe(doc.id);
  });
});
