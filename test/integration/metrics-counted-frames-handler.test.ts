/**
 * The aggregate-metrics handler keeps its counted frames in a folder: a frame counted before a
 * restart (a fresh module, as a new process or container) is not counted again by a later
 * window after it. Runs the handler against kinesalite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import type { Prediction } from '../../functions/lib/contracts';
import type { TumblingWindowEvent } from '../../functions/lib/metrics/aggregate';
import { metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { mergeMetrics } from '../../functions/lib/metrics/merge';
import { createLambdaContext } from '../../local/runner/lambda-context';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { makePrediction } from '../helpers/metrics-fixtures';
import { event, record, windowOf } from '../helpers/tumbling-window-events';

/** The shard's sequence numbers, increasing across windows as in a real stream. */
let nextSequence = 1_000;

describe('aggregate-metrics handler with METRICS_COUNTED_FRAMES_DIR', () => {
  type Handler = (event: TumblingWindowEvent, context: Context) => Promise<{ state: Record<string, unknown> }>;
  let kinesis: TestKinesis;
  let dir: string;

  beforeAll(async () => {
    kinesis = await startKinesalite();
    await kinesis.createStreams(['restart-metrics']);
    dir = mkdtempSync(join(tmpdir(), 'counted-handler-'));
    Object.assign(process.env, {
      KINESIS_ENDPOINT: kinesis.endpoint,
      STREAM_PREFIX: 'restart-',
      AWS_REGION: 'us-east-1',
      POWERTOOLS_METRICS_DISABLED: 'true',
      LOG_LEVEL: 'ERROR',
      METRICS_COUNTED_FRAMES_DIR: dir,
    });
  });
  afterAll(async () => {
    delete process.env.METRICS_COUNTED_FRAMES_DIR;
    await kinesis.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The handler module loaded afresh: a new process (or container) with nothing in memory. */
  function coldStart(): Handler {
    let handler: Handler | undefined;
    jest.isolateModules(() => {
      handler = (require('../../functions/aggregate-metrics') as { handler: Handler }).handler;
    });
    if (!handler) throw new Error('the handler module did not load');
    return handler;
  }

  async function closeWindow(handler: Handler, n: number, predictions: Prediction[]): Promise<void> {
    const context = createLambdaContext({ functionName: 'aggregate-metrics' });
    const records = predictions.map((p) => record(nextSequence++, p));
    const folded = await handler(event(windowOf(n), records, {}, false), context);
    await handler(event(windowOf(n), [], folded.state, true), context);
  }

  it('a frame counted before a restart is not counted again by a later window after it', async () => {
    // Prepare
    const frame = makePrediction({ camera: 'Cam-restart' });

    // Act: window 1 in the first process; the redelivered copy in window 3 after a restart.
    await closeWindow(coldStart(), 1, [frame, makePrediction({ camera: 'Cam-restart' })]);
    await closeWindow(coldStart(), 3, [{ ...frame, scored_at: '2026-11-27T15:00:31.000Z' }]);

    // Assess
    const docs = (await kinesis.readJson('restart-metrics')).map((d) => metricsDocumentSchema.parse(d));
    expect(docs.map((d) => [d.count, d.duplicates])).toEqual([
      [2, 0],
      [0, 1],
    ]);
    expect(mergeMetrics(docs).camera_metrics['Cam-restart']?.count).toBe(2);
  });
});
