/**
 * The classify stage over one batch of `camera-images` records: validate, enrich, prepare
 * every frame concurrently, score the whole batch in one model call, route, write all
 * outputs in as few PutRecords calls as possible, and answer with a partial batch response.
 *
 * Why not Powertools' `processPartialResponse`: it runs a handler per record, so inference
 * would be one ONNX call per frame, and each record's outputs would be written on their own.
 * Scoring the batch at once and writing every stream with batched PutRecords is what makes
 * the stage fast; the partial batch response is built here from the writes' outcomes with
 * the same semantics (failed records are reported by sequence number).
 */
import type { StageLogger } from './logger';
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import type { Config } from './config';
import { FrameRejectedError, type RejectReason, rejectMessage } from './errors';
import type { DigitModel } from './model';
import { declaredPixels, PixelBudget } from './pixel-budget';
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decode';
import { type PreparedImage, preparePng } from './prepare';
import { type CameraPolicy, homeReason, policyFor, SampleBudget } from './collection';
import { KINESIS_LIMITS, shardIdOf } from './kinesis-records';
import { encodeUncertain, predictionRecord, rejectRecord, topClass } from './route';
import type { OutputRecord, RecordSink } from './stream-writer';
import { checkFrame } from './validate-frame';
import type { FrameFields, ShadowScore } from './contracts';

/**
 * Decoded pixels in flight at once in this process, over all batches. Frames are prepared
 * concurrently; unbounded, 100 records of 130 kB each declaring 4096x4096 16-bit RGBA (legal
 * under the pixel cap) held 2.75 GB at the peak. 32 Mpx lets a whole batch of 100 640x480
 * frames decode at once, while frames at the cap go two at a time (+0.19 GB for the same batch).
 */
const MAX_PIXELS_IN_FLIGHT = 32 * 1024 * 1024;
const pixelBudget = new PixelBudget(MAX_PIXELS_IN_FLIGHT);

/** This container's cap on sampled frames (see {@link SampleBudget}). */
const containerSampleBudget = new SampleBudget();

export interface ClassifyStreams {
  predictions: string;
  uncertainImages: string;
  rejectedImages: string;
  /** Where the candidate's scores go while a model runs in shadow; unset = no shadow records. */
  shadowScores?: string;
}

export interface ClassifyDependencies {
  model: DigitModel;
  /**
   * A candidate scored beside `model` on every frame (shadow scoring). Its answers go only to
   * `streams.shadowScores`: the batch's outputs are those of `model`, byte for byte.
   */
  shadow?: DigitModel;
  sink: RecordSink;
  streams: ClassifyStreams;
  config: Pick<
    Config,
    | 'confidenceThreshold'
    | 'testCameraPrefix'
    | 'deviceId'
    | 'maxFutureSkewSeconds'
    | 'maxImagePixels'
    | 'sampleCertainRate'
    | 'sampleCapPerMinute'
    | 'cameraRules'
  >;
  logger?: StageLogger;
  /** Clock in epoch milliseconds; injectable for tests of the future-timestamp rule. */
  now?: () => number;
  /** Monotonic milliseconds for prep/predict times (default performance.now); injectable for tests. */
  elapsed?: () => number;
  /** The cap on sampled frames; defaults to this container's. */
  sampleBudget?: SampleBudget;
}

export interface ClassifyCounts {
  records: number;
  predicted: number;
  uncertain: number;
  rejected: number;
  /** Records reported in batchItemFailures (their outputs could not all be written). */
  failed: number;
  /** Uncertain records sent without the original image to fit 1 MiB. */
  imagesOmitted: number;
  /** Of the uncertain records, certain frames sent home as a sample. */
  sampled: number;
  /** Frames the shadow candidate scored, and how many of its answers were written. */
  shadowScored: number;
  shadowWritten: number;
}

export interface ClassifyResult extends KinesisStreamBatchResponse {
  counts: ClassifyCounts;
}

/**
 * The id of a frame: `<shardId>-<sequenceNumber>`, from the event's `eventID`
 * (`shardId-000000000000:4954...`). Lambda redelivers a record with the same shard and
 * sequence number, so the id is stable across retries and readers can de-duplicate on it.
 */
export function frameIdOf(record: KinesisStreamRecord): string {
  return `${shardIdOf(record.eventID)}-${record.kinesis.sequenceNumber}`;
}

interface Accepted {
  index: number;
  frameId: string;
  frame: FrameFields;
  png: Buffer;
  /** The JSON record's base64 image, when it came as JSON. */
  imageBase64: string | undefined;
}

interface Prepared extends Accepted {
  prepared: PreparedImage;
  /** Wall time of this frame's own preparation call (ms), queueing included. */
  elapsedMs: number;
}

interface Refused {
  index: number;
  frameId: string;
  reason: RejectReason;
  error: string;
  camera?: string;
  timestamp?: string;
}

/**
 * Classifies one batch. Never throws for a bad record: each becomes a `rejected-images`
 * record. A record is reported in `batchItemFailures` (so Lambda retries it) when any of
 * its outputs could not be written after the stream writer's bounded retries; its other
 * outputs may have landed, and readers de-duplicate them on `frame_id`.
 *
 * Times: `prep_time` shares the batch's preparation wall time among its frames in proportion
 * to each frame's own observed preparation time (frames are prepared concurrently, so a
 * frame's own wall time also counts the time it waited for a decoder thread; the shares add
 * up to the real wall time and a large frame still costs more than a small one).
 * `predict_time` is the single batched inference call's wall time divided equally among the
 * frames it scored (each is the same 28x28 input, so the work is the same). Both in seconds.
 *
 * @throws whatever the model throws (and any unexpected error): the whole batch fails and
 *   Lambda retries it, bisecting as configured; bad input never takes this path.
 */
export async function classifyBatch(
  records: readonly KinesisStreamRecord[],
  deps: ClassifyDependencies,
): Promise<ClassifyResult> {
  const now = deps.now ?? Date.now;
  const clock = deps.elapsed ?? (() => performance.now());
  const { config } = deps;
  const receivedMs = now();
  const receivedAt = new Date(receivedMs).toISOString();
  const limits: DecodeLimits = { ...DEFAULT_DECODE_LIMITS, maxPixels: config.maxImagePixels };
  const payloads: Buffer[] = new Array(records.length);
  const accepted: Accepted[] = [];
  const refused: Refused[] = [];

  records.forEach((record, index) => {
    const frameId = frameIdOf(record);
    const payload = Buffer.from(record.kinesis.data, 'base64');
    payloads[index] = payload;
    const check = checkFrame(payload, { nowMs: receivedMs, maxFutureSkewSeconds: config.maxFutureSkewSeconds });
    if (check.ok) accepted.push({ index, frameId, frame: check.frame, png: check.png, imageBase64: check.imageBase64 });
    else
      refused.push({
        index,
        frameId,
        reason: check.reason,
        error: check.error,
        camera: check.camera,
        timestamp: check.timestamp,
      });
  });

  const prepStart = clock();
  const preparedOrNot = await Promise.all(
    accepted.map(async (frame): Promise<Prepared | Refused> => {
      const start = clock();
      try {
        const prepared = await pixelBudget.run(declaredPixels(frame.png), () => preparePng(frame.png, limits));
        return { ...frame, prepared, elapsedMs: clock() - start };
      } catch (error: unknown) {
        const known = {
          index: frame.index,
          frameId: frame.frameId,
          camera: frame.frame.camera,
          timestamp: frame.frame.timestamp,
        };
        if (error instanceof FrameRejectedError) return { ...known, reason: error.reason, error: error.message };
        // A decoder error that preparation did not classify is still about this frame's
        // bytes: retrying cannot help, so reject it rather than fail the batch forever.
        const detail = error instanceof Error ? error.message : String(error);
        deps.logger?.warn('unclassified preparation error', { frame_id: frame.frameId, detail });
        return {
          ...known,
          reason: 'corrupt_png',
          error: rejectMessage('corrupt_png', `the PNG could not be decoded (${detail.slice(0, 160)})`),
        };
      }
    }),
  );
  const prepWallMs = clock() - prepStart;
  const prepared: Prepared[] = [];
  for (const item of preparedOrNot) {
    if ('prepared' in item) prepared.push(item);
    else refused.push(item);
  }

  let probabilities: Float32Array[] = [];
  let predictWallMs = 0;
  if (prepared.length > 0) {
    const predictStart = clock();
    probabilities = await deps.model.scoreBatch(prepared.map((p) => p.prepared.pixels));
    predictWallMs = clock() - predictStart;
    if (probabilities.length !== prepared.length) {
      throw new Error(`model returned ${probabilities.length} results for ${prepared.length} frames`);
    }
  }
  const scoredAt = new Date(now()).toISOString();

  // Outputs per stream, each with the index of the source record it came from.
  const predictions: OutputRecord[] = [];
  const predictionSources: number[] = [];
  const uncertain: OutputRecord[] = [];
  const uncertainSources: number[] = [];
  const rejected: OutputRecord[] = [];
  const rejectedSources: number[] = [];
  let imagesOmitted = 0;
  let sampled = 0;
  const budget = deps.sampleBudget ?? containerSampleBudget;
  const policies = new Map<string, CameraPolicy>();
  const policyOf = (camera: string): CameraPolicy => {
    let policy = policies.get(camera);
    if (!policy) {
      policy = policyFor(camera, config, config.cameraRules);
      policies.set(camera, policy);
    }
    return policy;
  };

  const elapsedSum = prepared.reduce((sum, p) => sum + p.elapsedMs, 0);
  const predictTime = prepared.length > 0 ? predictWallMs / 1000 / prepared.length : 0;
  prepared.forEach((item, i) => {
    const scores = probabilities[i] as Float32Array;
    const share = elapsedSum > 0 ? item.elapsedMs / elapsedSum : 1 / prepared.length;
    const prediction = predictionRecord({
      frameId: item.frameId,
      camera: item.frame.camera,
      device: config.deviceId,
      timestamp: item.frame.timestamp,
      receivedAt,
      scoredAt,
      probabilities: scores,
      prepTime: (prepWallMs * share) / 1000,
      predictTime,
      modelVersion: deps.model.version,
      blank: item.prepared.blank,
      label: item.frame.label,
    });
    const json = JSON.stringify(prediction);
    const partitionKey = item.frame.camera;
    predictions.push({ partitionKey, data: Buffer.from(json, 'utf8') });
    predictionSources.push(item.index);
    const reason = homeReason(
      {
        frameId: item.frameId,
        camera: item.frame.camera,
        timestamp: item.frame.timestamp,
        resultProbability: prediction.result_probability,
        blank: item.prepared.blank,
      },
      policyOf(item.frame.camera),
      budget,
    );
    if (reason !== undefined) {
      if (reason === 'sampled') sampled++;
      const maxBytes = KINESIS_LIMITS.maxRecordBytes - Buffer.byteLength(partitionKey, 'utf8');
      // A JSON record's checked base64 is copied; a PNG record's bytes are encoded once, here.
      const image = item.imageBase64 ?? item.png.toString('base64');
      const encoded = encodeUncertain(json, { image, pixels: item.prepared.pixels, probabilities: scores, reason }, maxBytes);
      if (encoded.imageOmitted) imagesOmitted++;
      uncertain.push({ partitionKey, data: encoded.data });
      uncertainSources.push(item.index);
    }
  });

  // Rejects in input order, as readers of one camera's partition expect.
  refused.sort((a, b) => a.index - b.index);
  for (const item of refused) {
    const record = rejectRecord({
      frameId: item.frameId,
      camera: item.camera,
      timestamp: item.timestamp,
      device: config.deviceId,
      reason: item.reason,
      error: item.error,
      payload: payloads[item.index] as Buffer,
      receivedAt,
    });
    // Rejects are keyed by camera when known so one camera's rejects stay in order.
    rejected.push({ partitionKey: item.camera ?? item.frameId, data: Buffer.from(JSON.stringify(record), 'utf8') });
    rejectedSources.push(item.index);
  }

  // Shadow scoring, after every output above is built, so nothing the candidate does can
  // change them. Best effort: a candidate that fails, or a shadow record that cannot be
  // written, is logged and costs only that batch's comparison, never a frame.
  const shadowRecords: OutputRecord[] = [];
  let shadowScored = 0;
  if (deps.shadow && deps.streams.shadowScores && prepared.length > 0) {
    try {
      const candidate = await deps.shadow.scoreBatch(prepared.map((p) => p.prepared.pixels));
      if (candidate.length !== prepared.length)
        throw new Error(`returned ${candidate.length} results for ${prepared.length} frames`);
      prepared.forEach((item, i) => {
        const current = topClass(probabilities[i] as Float32Array);
        const theirs = topClass(candidate[i] as Float32Array);
        const record: ShadowScore = {
          frame_id: item.frameId,
          camera: item.frame.camera,
          scored_at: scoredAt,
          model_version: deps.model.version,
          result_class: current.resultClass,
          result_probability: current.resultProbability,
          shadow_version: (deps.shadow as DigitModel).version,
          shadow_class: theirs.resultClass,
          shadow_probability: theirs.resultProbability,
          ...(item.frame.label !== undefined ? { label: item.frame.label } : {}),
        };
        shadowRecords.push({ partitionKey: item.frame.camera, data: Buffer.from(JSON.stringify(record), 'utf8') });
      });
      shadowScored = prepared.length;
    } catch (error: unknown) {
      deps.logger?.warn('shadow model failed, batch not compared', {
        shadow_version: deps.shadow.version,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  let shadowWritten = 0;
  const writeShadow = async (): Promise<void> => {
    if (shadowRecords.length === 0 || !deps.streams.shadowScores) return;
    try {
      const result = await deps.sink.put(deps.streams.shadowScores, shadowRecords);
      shadowWritten = shadowRecords.length - result.failedIndexes.length;
    } catch (error: unknown) {
      shadowWritten = 0;
      deps.logger?.warn('shadow scores not written', { error: error instanceof Error ? error.message : String(error) });
    }
    if (shadowWritten < shadowRecords.length) {
      deps.logger?.warn('shadow scores incomplete', { written: shadowWritten, scored: shadowRecords.length });
    }
  };

  const failed = new Set<number>();
  const write = async (stream: string, outputs: OutputRecord[], sources: number[]) => {
    if (outputs.length === 0) return;
    const result = await deps.sink.put(stream, outputs);
    for (const i of result.failedIndexes) failed.add(sources[i] as number);
    if (result.failedIndexes.length > 0) {
      deps.logger?.warn('stream write incomplete', {
        stream,
        failed: result.failedIndexes.length,
        written: outputs.length - result.failedIndexes.length,
        errors: [...new Set(result.errors?.values() ?? [])],
      });
    }
  };
  await Promise.all([
    write(deps.streams.predictions, predictions, predictionSources),
    write(deps.streams.uncertainImages, uncertain, uncertainSources),
    write(deps.streams.rejectedImages, rejected, rejectedSources),
    writeShadow(),
  ]);

  const batchItemFailures = [...failed]
    .sort((a, b) => a - b)
    .map((index) => ({ itemIdentifier: (records[index] as KinesisStreamRecord).kinesis.sequenceNumber }));
  const counts: ClassifyCounts = {
    records: records.length,
    predicted: predictions.length,
    uncertain: uncertain.length,
    rejected: rejected.length,
    failed: batchItemFailures.length,
    imagesOmitted,
    sampled,
    shadowScored,
    shadowWritten,
  };
  const rejectedByReason: Record<string, number> = {};
  for (const item of refused) rejectedByReason[item.reason] = (rejectedByReason[item.reason] ?? 0) + 1;
  deps.logger?.info('batch classified', {
    ...counts,
    rejected_by_reason: rejectedByReason,
    prep_ms: Math.round(prepWallMs),
    predict_ms: Math.round(predictWallMs),
  });
  return { batchItemFailures, counts };
}
