/**
 * The classify stage on Kinesis-shaped batches, without streams: the batch module the
 * handler runs (validate, prepare, one model call, route, encode every output record), with a
 * sink that accepts and discards the records. What it costs beyond the limits is the
 * handler's own glue.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import { classifyBatch } from '../functions/lib/classify-batch';
import { loadConfig } from '../functions/lib/config';
import type { DigitModel } from '../functions/lib/model';
import type { OutputRecord, RecordSink, WriteResult } from '../functions/lib/stream-writer';
import { type Measured, measure } from './limits';

/** Accepts every record and keeps only a count (so the encoded records are really built). */
export class DiscardSink implements RecordSink {
  records = 0;
  bytes = 0;
  async put(_stream: string, records: readonly OutputRecord[]): Promise<WriteResult> {
    this.records += records.length;
    for (const r of records) this.bytes += r.data.byteLength;
    return { failedIndexes: [] };
  }
}

/**
 * Classifies `total` records (cycling `records`) in batches of `batch`; frames per second.
 * Throws if any record is rejected or fails: the figure must be of frames really scored.
 */
export async function classifyRate(
  model: DigitModel,
  records: readonly KinesisStreamRecord[],
  batch: number,
  total: number,
): Promise<Measured> {
  const config = loadConfig({ ...process.env, STREAM_PREFIX: '', LOG_LEVEL: 'WARN' });
  const sink = new DiscardSink();
  const streams = { predictions: 'predictions', uncertainImages: 'uncertain-images', rejectedImages: 'rejected-images' };
  const batches: KinesisStreamRecord[][] = [];
  for (let start = 0; start < total; start += batch) {
    const chunk: KinesisStreamRecord[] = [];
    for (let i = start; i < Math.min(total, start + batch); i++) chunk.push(records[i % records.length] as KinesisStreamRecord);
    batches.push(chunk);
  }
  let predicted = 0;
  const result = await measure(batches.length, 1, async (index) => {
    const chunk = batches[index] as KinesisStreamRecord[];
    const outcome = await classifyBatch(chunk, { model, sink, streams, config });
    predicted += outcome.counts.predicted;
    if (outcome.counts.rejected > 0 || outcome.counts.failed > 0) {
      throw new Error(`classify rejected ${outcome.counts.rejected} and failed ${outcome.counts.failed} benchmark frames`);
    }
  });
  if (predicted !== total) throw new Error(`classify predicted ${predicted} of ${total} frames`);
  // measure() counted batches: per frame, not per batch.
  return { fps: (result.fps * total) / batches.length, cpuMsPerFrame: (result.cpuMsPerFrame * batches.length) / total };
}
