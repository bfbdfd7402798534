/**
 * One invocation of the tumbling-window aggregator, without Lambda plumbing: read the
 * window state, fold the batch's prediction records into it, and on the window's final
 * invocation write one metrics document.
 *
 * The aggregator also reads `rejected-images` (a second event source mapping, with its own
 * windows and documents, merged with the predictions' by window like any shard's): the
 * rejects are already there, one record per frame with its camera, reason and frame id, so
 * they are counted without changing what classify writes or what `predictions` readers get,
 * and de-duplicated like predictions. The cost is reading the rejects' payload excerpts
 * (at most 4 kB each), which only bad input produces. The handler in `functions/aggregate-metrics.ts`
 * wires configuration, logging and CloudWatch metrics around it.
 *
 * Each frame counts once across windows too: a frame a written document of the shard counted
 * is not counted again by a later window (counted-frames.ts says why and how far that holds).
 */
import type { KinesisStreamRecord, KinesisStreamStateResponse } from 'aws-lambda';
import { z } from 'zod';
import { predictionSchema, rejectedImageSchema, shadowScoreSchema, STREAMS } from '../contracts';
import { KINESIS_LIMITS, shardIdOf } from '../kinesis-records';
import type { StageLogger } from '../logger';
import type { RecordSink } from '../stream-writer';
import type { CountedFramesStore } from './counted-frames-store';
import { buildMetricsDocument, documentId, type MetricsConfig, type MetricsDocument } from './document';
import { readWindowState, type WindowAccumulator } from './reducer';

/**
 * The tumbling-window event Lambda sends (`@types/aws-lambda`'s type omits `shardId`).
 */
export interface TumblingWindowEvent {
  Records: KinesisStreamRecord[];
  window: { start: string; end: string };
  state?: Record<string, unknown>;
  shardId?: string;
  eventSourceARN?: string;
  isFinalInvokeForWindow: boolean;
  isWindowTerminatedEarly: boolean;
}

/** Writing the window's document failed: the invocation must fail so Lambda retries it. */
export class MetricsWriteError extends Error {
  constructor(
    readonly stream: string,
    readonly documentId: string,
    readonly code: string,
  ) {
    super(`metrics document ${documentId} could not be written to ${stream}: ${code}`);
    this.name = 'MetricsWriteError';
  }
}

/** What the aggregator needs from its surroundings. */
export interface AggregateDependencies {
  sink: RecordSink;
  /** Full name of the `metrics` stream. */
  metricsStream: string;
  config: MetricsConfig;
  /** Powertools' Logger satisfies it. */
  logger: StageLogger;
  /** Document build time; defaults to now. */
  now?: () => Date;
  /**
   * The frames earlier documents counted, per shard; without it only repeats within a window
   * are caught.
   */
  counted?: CountedFramesStore;
}

/** The invocation's response plus, on a final invocation, the document written. */
export interface AggregateResult {
  response: KinesisStreamStateResponse & { batchItemFailures: [] };
  folded: number;
  invalid: number;
  document?: MetricsDocument;
}

/** Largest document written: Kinesis' 1 MiB record limit less room for the partition key. */
export const MAX_DOCUMENT_BYTES = KINESIS_LIMITS.maxRecordBytes - 1024;

/** Unreadable records logged individually per invocation; the rest are only counted. */
const MAX_LOGGED_INVALID = 10;

/** The shard of a window: the event's `shardId`, else the one in a record's `eventID`. */
export function shardOf(event: TumblingWindowEvent): string {
  return event.shardId || shardIdOf(event.Records[0]?.eventID ?? '');
}

/**
 * True for events from `shadow-scores` (the candidate's answers while a model runs in shadow),
 * which the same function folds in windows of their own beside those of `predictions`.
 */
export function isShadowSource(arn: string | undefined): boolean {
  return arn?.endsWith(STREAMS.shadowScores) ?? false;
}

/** True for events from `rejected-images`, counted per camera and reason in windows of their own. */
export function isRejectsSource(arn: string | undefined): boolean {
  return arn?.endsWith(STREAMS.rejectedImages) ?? false;
}

/**
 * The shard a document is named after: the shard id, prefixed with the stream for shadow and
 * reject windows, so their documents never share an id with the predictions' documents of the
 * same shard and window.
 */
export function documentShardOf(event: TumblingWindowEvent): string {
  const shard = shardOf(event);
  const arn = event.eventSourceARN ?? event.Records[0]?.eventSourceARN;
  if (isShadowSource(arn)) return `${STREAMS.shadowScores}:${shard}`;
  return isRejectsSource(arn) ? `${STREAMS.rejectedImages}:${shard}` : shard;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Folds the records into the accumulator; returns how many could not be read. */
function foldRecords(
  records: readonly KinesisStreamRecord[],
  acc: WindowAccumulator,
  logger: AggregateDependencies['logger'],
): number {
  let invalid = 0;
  for (const record of records) {
    const sequenceNumber = record.kinesis.sequenceNumber;
    acc.noteSequence(sequenceNumber);
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
    } catch (error: unknown) {
      acc.addInvalid('invalid_json', sequenceNumber, describe(error));
      if (invalid++ < MAX_LOGGED_INVALID)
        logger.warn('prediction record is not JSON', { sequenceNumber, error: describe(error) });
      continue;
    }
    if (isRejectsSource(record.eventSourceARN)) {
      const reject = rejectedImageSchema.safeParse(json);
      if (!reject.success) {
        const error = z.prettifyError(reject.error);
        acc.addInvalid('invalid_record', sequenceNumber, error);
        if (invalid++ < MAX_LOGGED_INVALID) logger.warn('reject record does not match the contract', { sequenceNumber, error });
        continue;
      }
      acc.addReject(reject.data);
      continue;
    }
    if (isShadowSource(record.eventSourceARN)) {
      const shadow = shadowScoreSchema.safeParse(json);
      if (shadow.success) acc.addShadow(shadow.data);
      else {
        const error = z.prettifyError(shadow.error);
        acc.addInvalid('invalid_record', sequenceNumber, error);
        if (invalid++ < MAX_LOGGED_INVALID)
          logger.warn('shadow score record does not match the contract', { sequenceNumber, error });
      }
      continue;
    }
    const parsed = predictionSchema.safeParse(json);
    if (!parsed.success) {
      const error = z.prettifyError(parsed.error);
      acc.addInvalid('invalid_record', sequenceNumber, error);
      if (invalid++ < MAX_LOGGED_INVALID) logger.warn('prediction record does not match the contract', { sequenceNumber, error });
      continue;
    }
    acc.add(parsed.data);
  }
  return invalid;
}

/**
 * Handles one tumbling-window invocation.
 *
 * Every record is folded: one that is not JSON or not a prediction is counted under
 * `invalid` (with a few examples) and never fails the window, since a retry could not make
 * it readable. So `batchItemFailures` is always empty: reporting a failure would make Lambda
 * re-deliver records this state has already counted.
 *
 * On the final invocation (`isFinalInvokeForWindow`) a window that folded anything gets one
 * document written to the metrics stream, and the returned state is empty; an empty window
 * writes nothing.
 *
 * @throws MetricsWriteError when the document cannot be written after the writer's retries:
 *   the invocation fails and Lambda retries it with the same state, so nothing is lost.
 */
export async function aggregateWindow(event: TumblingWindowEvent, deps: AggregateDependencies): Promise<AggregateResult> {
  const shard = documentShardOf(event);
  const read = readWindowState(event.state, deps.config.confidence);
  if (!read.ok) {
    deps.logger.error('window state unreadable, counting this window from here on', {
      shard,
      window: event.window,
      error: read.error,
    });
  }
  const acc = read.accumulator;
  const memory = deps.counted?.forShard(shard);
  if (memory) {
    // A frame another document counted is a repeat; one this window's own document counted
    // (the window folded again after a retry or a restart) is not.
    acc.countedBefore = (digest) => {
      const countedIn = memory.countedIn(digest);
      return countedIn !== undefined && countedIn !== documentId(shard, event.window.start, acc.firstSequence);
    };
  }
  const invalid = foldRecords(event.Records, acc, deps.logger);
  const folded = event.Records.length;

  if (!event.isFinalInvokeForWindow) {
    return { response: { state: acc.toState(), batchItemFailures: [] }, folded, invalid };
  }
  if (acc.empty) {
    deps.logger.info('window closed with no records, no document', { shard, window: event.window });
    return { response: { state: {}, batchItemFailures: [] }, folded, invalid };
  }
  let document = buildMetricsDocument(acc, {
    window: event.window,
    shard,
    terminatedEarly: event.isWindowTerminatedEarly,
    config: deps.config,
    timestamp: (deps.now?.() ?? new Date()).toISOString(),
  });
  let data = Buffer.from(JSON.stringify(document), 'utf8');
  if (data.byteLength > MAX_DOCUMENT_BYTES) {
    // Only the per-camera histograms can grow this large (hundreds of cameras with widely
    // spread latencies). Without them the document still carries every count and block;
    // merging it with other shards' then leaves per-camera end-to-end percentiles empty.
    deps.logger.warn('metrics document over the record limit, per-camera histograms left out', {
      id: document.id,
      bytes: data.byteLength,
      cameras: Object.keys(document.camera_metrics).length,
    });
    document = { ...document, histograms: { ...document.histograms, cameras: {} } };
    data = Buffer.from(JSON.stringify(document), 'utf8');
  }
  const result = await deps.sink.put(deps.metricsStream, [{ partitionKey: shard, data }]);
  if (result.failedIndexes.length > 0) {
    throw new MetricsWriteError(deps.metricsStream, document.id, result.errors?.get(0) ?? 'unwritten');
  }
  // Only now, with the document written: a frame is never taken for a repeat of a document
  // that does not exist.
  deps.counted?.remember(shard, document.id, acc.seen.toState());
  deps.logger.info('window metrics written', {
    id: document.id,
    stream: deps.metricsStream,
    count: document.count,
    invalid: document.invalid.count,
    bytes: data.byteLength,
  });
  return { response: { state: {}, batchItemFailures: [] }, folded, invalid, document };
}
