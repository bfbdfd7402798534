/**
 * The camera source's publishing loop (the original ImageSource + Enricher): each frame gets
 * the camera id and a capture time, becomes a `camera-images` record partitioned by camera,
 * and goes out through a {@link RecordSink} in batched PutRecords calls.
 */
import { hostname } from 'node:os';
import { cameraIdSchema } from '../contracts';
import { encodePngRecord } from '../png-frame-record';
import type { OutputRecord, RecordSink, WriteResult } from '../stream-writer';
import type { SourceFrame } from './frames';
import { sleep } from '../retry';

export interface PublishOptions {
  /** Full camera id on every record (see {@link cameraId}). */
  camera: string;
  /** Stream to write to (`camera-images` with the deployment's prefix). */
  stream: string;
  /** Seconds between frames, as the original's `delay`; 0 = as fast as allowed. */
  delay?: number;
  /** `json` (default: base64 image in JSON, the original's record) or `png` (the PNG, fields in tEXt chunks). */
  recordFormat?: 'json' | 'png';
  /** Stop after this many frames; undefined = when the source ends. */
  count?: number;
  /** Frames per second at most; 0 or undefined = unlimited. */
  rate?: number;
  /** Frames per sink call when not pacing one by one (default 2000: four 500-record PutRecords). */
  batchFrames?: number;
  /**
   * Bytes of record data per sink call at most (default {@link DEFAULT_BATCH_BYTES}): with
   * `inFlight`, bounds the memory frames take between the camera and the stream whatever their
   * size (2,000 frames of 640x480 would be over a gigabyte).
   */
  batchBytes?: number;
  /**
   * Seconds a frame may keep being refused as throttled before it counts as failed (default
   * {@link DEFAULT_MAX_THROTTLED_SECONDS}; 0 fails it after the writer's own retries).
   */
  maxThrottledSeconds?: number;
  /** Sink calls in flight at once (default 2), so the next batch is built while one is sent. */
  inFlight?: number;
  /** Stops publishing (after the batches in flight) when aborted. */
  signal?: AbortSignal;
  /** Called after each batch lands with the running totals. */
  onProgress?: (progress: { published: number; failed: number; throttled: number }) => void;
  /** Capture-time clock; injectable for tests. */
  now?: () => Date;
}

export interface PublishSummary {
  camera: string;
  stream: string;
  /** Frames written to the stream. */
  published: number;
  /** Frames the stream writer could not write after its retries. */
  failed: number;
  /**
   * Times a frame was refused as throttled and sent again later: the stream (or a local
   * pipeline's bounded backlog) asked the camera to slow down. Such frames are not lost.
   */
  throttled: number;
  /** Frames carrying a label. */
  labelled: number;
  seconds: number;
  frames_per_second: number;
  /** Why publishing ended. */
  stopped: 'source_ended' | 'count_reached' | 'aborted';
}

/**
 * The original's camera id: the camera parameter, "-", then the host name, with any character
 * a camera id may not hold replaced by "-" (host names can hold none, but a device id might).
 *
 * @throws Error when the result is still not a valid camera id (e.g. too long).
 */
export function cameraId(camera: string, host: string = hostname()): string {
  const id = `${camera}-${host}`.replace(/[^A-Za-z0-9._:@+-]/g, '-');
  const parsed = cameraIdSchema.safeParse(id);
  if (!parsed.success) throw new Error(`camera id ${JSON.stringify(id)} is invalid: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

/** Encodes one frame as a `camera-images` record: JSON with a base64 image, or a PNG record. */
export function frameRecord(
  frame: SourceFrame,
  camera: string,
  timestamp: string,
  format: 'json' | 'png' = 'json',
): OutputRecord {
  if (format === 'png')
    return { partitionKey: camera, data: encodePngRecord(frame.png, { camera, timestamp, label: frame.label }) };
  const body =
    frame.label === undefined
      ? { image: frame.png.toString('base64'), camera, timestamp }
      : { image: frame.png.toString('base64'), camera, timestamp, label: frame.label };
  return { partitionKey: camera, data: Buffer.from(JSON.stringify(body), 'utf8') };
}

/** Default bound of one sink call's record data, bytes: a handful of PutRecords calls. */
export const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024;

/** The error a stream answers when a writer must slow down (Kinesis, and a local bounded backlog). */
export const THROTTLED = 'ProvisionedThroughputExceededException';

/** Default of {@link PublishOptions.maxThrottledSeconds}. */
export const DEFAULT_MAX_THROTTLED_SECONDS = 60;

/** Longest wait between two attempts at throttled frames, ms. */
const MAX_THROTTLE_WAIT_MS = 1000;

/**
 * Writes `records` through `sink`, sending throttled entries again (after a growing wait, up to
 * {@link MAX_THROTTLE_WAIT_MS}) for as long as the stream throttles them, up to
 * `maxThrottledSeconds` (default unbounded): backpressure, not failure. Other failures are
 * reported as the sink reports them, and so are throttled entries still unwritten when `signal`
 * aborts or the time is up. `onThrottled` counts the entries sent again.
 */
export async function putWithBackpressure(
  sink: RecordSink,
  stream: string,
  records: readonly OutputRecord[],
  options: { signal?: AbortSignal; onThrottled?: (entries: number) => void; maxThrottledSeconds?: number } = {},
): Promise<WriteResult> {
  const giveUpAt = performance.now() + (options.maxThrottledSeconds ?? Number.POSITIVE_INFINITY) * 1000;
  let pending = records.map((_, index) => index);
  const errors = new Map<number, string>();
  let waitMs = 50;
  for (;;) {
    const result = await sink.put(
      stream,
      pending.map((index) => records[index] as OutputRecord),
    );
    const throttled: number[] = [];
    for (const position of result.failedIndexes) {
      const index = pending[position] as number;
      const code = result.errors?.get(position) ?? 'Unknown';
      if (code === THROTTLED) throttled.push(index);
      else errors.set(index, code);
    }
    if (throttled.length === 0 || options.signal?.aborted || performance.now() >= giveUpAt) {
      for (const index of throttled) errors.set(index, THROTTLED);
      const failedIndexes = [...errors.keys()].sort((a, b) => a - b);
      return { failedIndexes, errors };
    }
    options.onThrottled?.(throttled.length);
    pending = throttled;
    await sleep(waitMs, options.signal);
    waitMs = Math.min(waitMs * 2, MAX_THROTTLE_WAIT_MS);
  }
}

/**
 * Publishes frames until the source ends, `count` frames were taken or `signal` aborts.
 *
 * With a `delay`, frames go one per call, `delay` seconds apart (the original's pacing).
 * Otherwise they go in batches of `batchFrames` (the writer splits them into 500-record
 * PutRecords calls), at most `rate` frames per second on average, with `inFlight` batches
 * sent concurrently: records of one camera may then land slightly out of order, which no
 * stage depends on (each carries its capture time).
 */
export async function publishFrames(
  frames: AsyncIterable<SourceFrame>,
  sink: RecordSink,
  options: PublishOptions,
): Promise<PublishSummary> {
  const now = options.now ?? (() => new Date());
  const delayMs = Math.max(0, (options.delay ?? 0) * 1000);
  const rate = options.rate && options.rate > 0 ? options.rate : 0;
  const limit = options.count ?? Number.POSITIVE_INFINITY;
  let perBatch = delayMs > 0 ? 1 : Math.max(1, options.batchFrames ?? 2000);
  // Pace in ~10 batches per second so a rate limit stays smooth.
  if (rate > 0) perBatch = Math.min(perBatch, Math.max(1, Math.floor(rate / 10)));
  const maxInFlight = Math.max(1, options.inFlight ?? 2);
  const maxBatchBytes = Math.max(1, options.batchBytes ?? DEFAULT_BATCH_BYTES);

  const started = performance.now();
  let taken = 0;
  let published = 0;
  let failed = 0;
  let throttled = 0;
  let labelled = 0;
  let stopped: PublishSummary['stopped'] = 'source_ended';
  const inFlight = new Set<Promise<void>>();

  let sinkError: unknown;
  const send = (outgoing: OutputRecord[]) => {
    const tracked: Promise<void> = putWithBackpressure(sink, options.stream, outgoing, {
      ...(options.signal ? { signal: options.signal } : {}),
      maxThrottledSeconds: options.maxThrottledSeconds ?? DEFAULT_MAX_THROTTLED_SECONDS,
      onThrottled: (entries) => {
        throttled += entries;
      },
    })
      .then((result) => {
        failed += result.failedIndexes.length;
        published += outgoing.length - result.failedIndexes.length;
        options.onProgress?.({ published, failed, throttled });
      })
      .catch((error: unknown) => {
        // A sink only rejects on a bug or misuse; remember it and stop taking frames.
        sinkError ??= error;
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    return tracked;
  };

  let batch: OutputRecord[] = [];
  let batchBytes = 0;
  const flush = async (last: boolean) => {
    if (batch.length === 0) return;
    if (rate > 0) await sleep(started + ((taken - batch.length) * 1000) / rate - performance.now(), options.signal);
    const outgoing = batch;
    batch = [];
    batchBytes = 0;
    const job = send(outgoing);
    if (inFlight.size >= maxInFlight) await Promise.race(inFlight);
    if (delayMs > 0 && !last) {
      await job;
      await sleep(delayMs, options.signal);
    }
  };

  if (limit <= 0) stopped = 'count_reached';
  else {
    for await (const frame of frames) {
      if (options.signal?.aborted || sinkError !== undefined) {
        stopped = 'aborted';
        break;
      }
      const record = frameRecord(frame, options.camera, now().toISOString(), options.recordFormat);
      batch.push(record);
      batchBytes += record.data.byteLength;
      if (frame.label !== undefined) labelled++;
      taken++;
      if (taken >= limit) {
        stopped = 'count_reached';
        break;
      }
      if (batch.length >= perBatch || batchBytes >= maxBatchBytes) await flush(false);
    }
  }
  await flush(true);
  await Promise.all(inFlight);
  if (sinkError !== undefined) throw sinkError;
  const seconds = (performance.now() - started) / 1000;
  return {
    camera: options.camera,
    stream: options.stream,
    published,
    failed,
    throttled,
    labelled,
    seconds: Math.round(seconds * 1000) / 1000,
    frames_per_second: seconds > 0 ? Math.round(published / seconds) : 0,
    stopped,
  };
}
