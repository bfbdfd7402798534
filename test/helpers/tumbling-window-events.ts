/** Tumbling-window events of the predictions stream, as Lambda hands them to the aggregator. */
import type { Prediction } from '../../functions/lib/contracts';
import type { TumblingWindowEvent } from '../../functions/lib/metrics/aggregate';

export const SHARD = 'shardId-000000000000';
export const PREDICTIONS_ARN = 'arn:aws:kinesis:us-east-1:123456789012:stream/predictions';

/** Window n of a 10-second tumbling window series (by arrival time, as Lambda groups). */
export function windowOf(n: number): { start: string; end: string } {
  const start = Date.parse('2026-11-27T15:00:00Z') + n * 10_000;
  return { start: new Date(start).toISOString(), end: new Date(start + 10_000).toISOString() };
}

/** A predictions record of `SHARD` at `sequence`, as Lambda hands it to the aggregator. */
export function record(sequence: number, prediction: Prediction) {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: prediction.camera,
      sequenceNumber: String(sequence),
      data: Buffer.from(JSON.stringify(prediction)).toString('base64'),
      approximateArrivalTimestamp: 0,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${SHARD}:${sequence}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn',
    awsRegion: 'us-east-1',
    eventSourceARN: PREDICTIONS_ARN,
  } as TumblingWindowEvent['Records'][number];
}

/** A tumbling-window event of `SHARD` over `window`. */
export function event(
  window: { start: string; end: string },
  records: TumblingWindowEvent['Records'],
  state: Record<string, unknown>,
  final: boolean,
): TumblingWindowEvent {
  return {
    Records: records,
    window,
    state,
    shardId: SHARD,
    eventSourceARN: PREDICTIONS_ARN,
    isFinalInvokeForWindow: final,
    isWindowTerminatedEarly: false,
  };
}
