/**
 * Records of the home streams as the pipeline writes them (uncertain images with a real PNG,
 * rejects, metrics shard documents) and Kinesis events carrying them, for the home's tests.
 */
import type { KinesisStreamEvent } from 'aws-lambda';
import type { Prediction, RejectedImage, UncertainImage } from '../../functions/lib/contracts';
import { buildMetricsDocument, type MetricsDocument } from '../../functions/lib/metrics/document';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { encodePng } from '../../functions/lib/png';
import { makePrediction, TEST_CONFIG } from './metrics-fixtures';

/** A 28x28 grey image with a bright square whose place depends on `i` (distinct per frame). */
export function pixelsOf(i: number): number[][] {
  return Array.from({ length: 28 }, (_, y) =>
    Array.from({ length: 28 }, (_, x) => (Math.abs(x - (i % 20) - 4) < 4 && Math.abs(y - 14) < 6 ? 255 : (i * 7) % 50)),
  );
}

/** Ten probabilities with `top` on `digit` and the rest spread evenly. */
export function probabilitiesFor(digit: number, top: number): number[] {
  return Array.from({ length: 10 }, (_, d) => (d === digit ? top : (1 - top) / 9));
}

/** A valid `uncertain-images` record, frame `i` (a real PNG of its pixels); fields overridable. */
export function uncertainRecord(i: number, overrides: Partial<UncertainImage> = {}): UncertainImage {
  const rows = pixelsOf(i);
  const png = encodePng(Uint8Array.from(rows.flat()), 28, 28, 1);
  const digit = i % 10;
  const top = 0.3 + ((i * 37) % 40) / 100;
  return {
    frame_id: `shardId-000000000000-${(4960000000000000000000n + BigInt(i)).toString()}`,
    camera: 'Test-edge1',
    device: 'edge1',
    timestamp: new Date(Date.UTC(2026, 11, 6, 4, 0, 0, i)).toISOString(),
    received_at: new Date(Date.UTC(2026, 11, 6, 4, 0, 1, i)).toISOString(),
    scored_at: new Date(Date.UTC(2026, 11, 6, 4, 0, 1, i + 5)).toISOString(),
    result_class: digit,
    result_probability: top,
    prep_time: 0.001,
    predict_time: 0.0005,
    model_version: i % 3 === 0 ? 'digits-2.0.0' : 'digits-1.0.0',
    blank: false,
    image: png.toString('base64'),
    prepared_image: rows,
    predictions: probabilitiesFor(digit, top),
    reason: top <= 0.7 ? 'low_confidence' : 'test_camera',
    ...overrides,
  };
}

/** A valid `rejected-images` record. */
export function rejectRecord(i: number, overrides: Partial<RejectedImage> = {}): RejectedImage {
  const payload = Buffer.from(`{"image":"not base64 at all ${i}","camera":"Camera-x"}`);
  return {
    frame_id: `shardId-000000000000-${(4970000000000000000000n + BigInt(i)).toString()}`,
    camera: 'Camera-x',
    timestamp: '2026-12-06T04:00:00.000Z',
    device: 'edge1',
    reason: 'image_not_base64',
    error: 'image is not base64: encode the PNG file bytes with standard base64 (no line breaks)',
    payload: payload.toString('base64'),
    payload_bytes: payload.length,
    payload_truncated: false,
    received_at: new Date(Date.UTC(2026, 11, 6, 4, 0, 2, i)).toISOString(),
    ...overrides,
  };
}

/** A metrics shard document of the 10 s window starting at `start`, over `n` predictions. */
export function metricsDocument(
  start: Date,
  shard: string,
  n: number,
  camera = 'Test-edge1',
  firstSequence = '1',
): MetricsDocument {
  const acc = new WindowAccumulator(TEST_CONFIG.confidence);
  acc.noteSequence(firstSequence);
  for (let i = 0; i < n; i += 1) {
    const prediction: Prediction = makePrediction({
      frame_id: `${shard}-${firstSequence}-${i}`,
      camera,
      result_class: i % 10,
      result_probability: i % 4 === 0 ? 0.5 : 0.95,
      timestamp: new Date(start.getTime() + i).toISOString(),
      scored_at: new Date(start.getTime() + i + 40).toISOString(),
    });
    acc.add(prediction);
  }
  return buildMetricsDocument(acc, {
    window: { start: start.toISOString(), end: new Date(start.getTime() + 10_000).toISOString() },
    shard,
    terminatedEarly: false,
    config: TEST_CONFIG,
    timestamp: new Date(start.getTime() + 10_500).toISOString(),
  });
}

/** A Kinesis event holding `values` as JSON records (strings are sent as they are). */
export function kinesisEvent(stream: string, values: readonly unknown[]): KinesisStreamEvent {
  return {
    Records: values.map((value, i) => {
      const data = typeof value === 'string' ? value : JSON.stringify(value);
      return {
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: 'k',
          sequenceNumber: String(1000 + i),
          data: Buffer.from(data).toString('base64'),
          approximateArrivalTimestamp: Date.now() / 1000,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `shardId-000000000000:${1000 + i}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::123456789012:role/home',
        awsRegion: 'us-east-1',
        eventSourceARN: `arn:aws:kinesis:us-east-1:123456789012:stream/${stream}`,
      };
    }),
  };
}
