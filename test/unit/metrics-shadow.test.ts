/**
 * Shadow comparisons and the per-version split in the metrics documents: folded by the
 * aggregator from `shadow-scores` windows, carried through Lambda's window state, merged
 * across shard documents, and shown in the table.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import type { ShadowScore } from '../../functions/lib/contracts';
import { aggregateWindow, type TumblingWindowEvent } from '../../functions/lib/metrics/aggregate';
import { type MetricsDocument, metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { mergeMetrics } from '../../functions/lib/metrics/merge';
import { renderMetricsTable } from '../../functions/lib/metrics/table';
import type { OutputRecord, RecordSink } from '../../functions/lib/stream-writer';
import { makePrediction, TEST_CONFIG } from '../helpers/metrics-fixtures';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const WINDOW = { start: '2026-12-06T04:00:00.000Z', end: '2026-12-06T04:00:10.000Z' };

function record(stream: string, shard: string, sequence: number, body: unknown): KinesisStreamRecord {
  const sequenceNumber = String(49650000000000000000000000000000000000000000000000000000n + BigInt(sequence));
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: 'Camera-1',
      sequenceNumber,
      data: Buffer.from(JSON.stringify(body)).toString('base64'),
      approximateArrivalTimestamp: 0,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${shard}:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/aggregate',
    awsRegion: 'us-east-1',
    eventSourceARN: `arn:aws:kinesis:us-east-1:123456789012:stream/${stream}`,
  };
}

const score = (i: number, current: number, candidate: number, label?: number): ShadowScore => ({
  frame_id: `shardId-000000000000-${i}`,
  camera: 'Camera-1',
  scored_at: '2026-12-06T04:00:01.000Z',
  model_version: '1.0.0',
  result_class: current,
  result_probability: 0.9,
  shadow_version: '1.1.0',
  shadow_class: candidate,
  shadow_probability: 0.8,
  ...(label !== undefined ? { label } : {}),
});

/** Runs a window over `records` in two invocations (state carried between them). */
async function window(stream: string, shard: string, bodies: unknown[]): Promise<MetricsDocument> {
  const written: OutputRecord[] = [];
  const sink: RecordSink = {
    put: async (_stream, records) => {
      written.push(...records);
      return { failedIndexes: [] };
    },
  };
  const records = bodies.map((b, i) => record(stream, shard, i, b));
  const half = Math.floor(records.length / 2);
  const event = (part: KinesisStreamRecord[], state: Record<string, unknown>, final: boolean): TumblingWindowEvent => ({
    Records: part,
    window: WINDOW,
    state,
    shardId: shard,
    eventSourceARN: `arn:aws:kinesis:us-east-1:123456789012:stream/${stream}`,
    isFinalInvokeForWindow: final,
    isWindowTerminatedEarly: false,
  });
  const deps = { sink, metricsStream: 'metrics', config: TEST_CONFIG, logger: quiet };
  const first = await aggregateWindow(event(records.slice(0, half), {}, false), deps);
  // Lambda hands the state back as JSON.
  const state = JSON.parse(JSON.stringify(first.response.state)) as Record<string, unknown>;
  await aggregateWindow(event(records.slice(half), state, true), deps);
  expect(written).toHaveLength(1);
  return metricsDocumentSchema.parse(JSON.parse(Buffer.from((written[0] as OutputRecord).data).toString('utf8')));
}

describe('shadow comparisons in the metrics documents', () => {
  it('fold a shadow-scores window into agreement, confusion, labelled accuracy and disagreeing frames', async () => {
    const scores = [
      ...Array.from({ length: 8 }, (_, i) => score(i, 7, 7, 7)),
      score(8, 5, 3, 3),
      score(9, 5, 3),
      { not: 'a shadow score' },
    ];
    const doc = await window('prefix-shadow-scores', 'shardId-000000000000', scores);
    expect(doc.shard).toBe('shadow-scores:shardId-000000000000');
    expect(doc.count).toBe(0);
    expect(doc.invalid.count).toBe(1);
    expect(doc.shadow).toHaveLength(1);
    const s = doc.shadow?.[0];
    expect(s).toMatchObject({
      current: '1.0.0',
      candidate: '1.1.0',
      count: 10,
      agree: 8,
      agreement: 0.8,
      labelled: 9,
      current_correct: 8,
      candidate_correct: 9,
    });
    expect(s?.confusion[77]).toBe(8);
    expect(s?.confusion[53]).toBe(2);
    expect(s?.disagreements.map((d) => [d.frame_id, d.current_class, d.candidate_class])).toEqual([
      ['shardId-000000000000-8', 5, 3],
      ['shardId-000000000000-9', 5, 3],
    ]);
  });

  it('merge with the predictions documents of the same window, and split counts by version', async () => {
    const predictions = [
      ...Array.from({ length: 6 }, (_, i) =>
        makePrediction({ frame_id: `p${i}`, model_version: '1.0.0', label: 7, result_class: 7 }),
      ),
      ...Array.from({ length: 4 }, (_, i) =>
        makePrediction({
          frame_id: `q${i}`,
          model_version: '1.1.0',
          label: 7,
          result_class: i === 0 ? 1 : 7,
          result_probability: i === 3 ? 0.5 : 0.95,
        }),
      ),
    ];
    const predictionDoc = await window('prefix-predictions', 'shardId-000000000000', predictions);
    expect(predictionDoc.version_metrics).toEqual({
      '1.0.0': { count: 6, uncertain: 0, labelled: 6, correct: 6 },
      '1.1.0': { count: 4, uncertain: 1, labelled: 4, correct: 3 },
    });
    expect(predictionDoc.shadow).toBeUndefined();
    const shadowA = await window('prefix-shadow-scores', 'shardId-000000000000', [score(1, 7, 7), score(2, 4, 9)]);
    const shadowB = await window('prefix-shadow-scores', 'shardId-000000000001', [score(3, 7, 7)]);
    expect(new Set([predictionDoc.id, shadowA.id, shadowB.id]).size).toBe(3);

    const merged = mergeMetrics([predictionDoc, shadowA, shadowB]);
    expect(merged.count).toBe(10);
    expect(merged.version_metrics).toEqual(predictionDoc.version_metrics);
    expect(merged.shadow?.[0]).toMatchObject({ count: 3, agree: 2 });
    expect(merged.shadow?.[0]?.agreement).toBeCloseTo(2 / 3, 10);
    const table = renderMetricsTable(merged);
    expect(table).toMatch(
      /by model 1\.0\.0: 6 frames, 0 uncertain, 100\.0% right \| 1\.1\.0: 4 frames, 1 uncertain, 75\.0% right/,
    );
    expect(table).toMatch(/shadow 1\.1\.0 vs 1\.0\.0: 66\.7% agree of 3 {2}disagree 4->9 x1/);
  });
});
