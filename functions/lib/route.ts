/**
 * Routing of scored and rejected frames: the certainty filter of the original and the
 * builders of the records on `predictions`, `uncertain-images` and `rejected-images`.
 *
 * Records are encoded once: the uncertain record is the prediction's JSON extended in place
 * with the image fields, so a frame that goes both ways is serialised once, and the base64
 * image (already validated as base64, so it needs no escaping) is copied, never re-scanned.
 */
import { type Prediction, REJECT_PAYLOAD_BYTES, type RejectedImage, type UncertainReason } from './contracts';
import type { RejectReason } from './errors';

export interface CertaintyRule {
  /** Uncertain when `result_probability <= confidenceThreshold` (the original's `<=`). */
  confidenceThreshold: number;
  /** Cameras whose id starts with this always go home; '' turns the rule off. */
  testCameraPrefix: string;
}

/** The most probable class and its probability, clamped to [0, 1] against float rounding. */
export function topClass(probabilities: ArrayLike<number>): { resultClass: number; resultProbability: number } {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < probabilities.length; i++) {
    const value = probabilities[i] as number;
    if (value > bestValue) {
      bestValue = value;
      best = i;
    }
  }
  return { resultClass: best, resultProbability: Math.min(1, Math.max(0, bestValue)) };
}

/**
 * The certainty filter: why a scored frame goes home, or undefined when it does not.
 * A blank frame (no ink found) is always uncertain: whatever the model says about an empty
 * page is not a reading. When both rules apply, `low_confidence` wins, as it says more about
 * the frame than the camera's name does.
 */
export function uncertainReason(
  camera: string,
  resultProbability: number,
  blank: boolean,
  rule: CertaintyRule,
): UncertainReason | undefined {
  if (blank || resultProbability <= rule.confidenceThreshold) return 'low_confidence';
  if (rule.testCameraPrefix !== '' && camera.startsWith(rule.testCameraPrefix)) return 'test_camera';
  return undefined;
}

/** A 784-byte prepared image as the original's `prepared_image`: 28 rows of 28 ints. */
export function preparedImageRows(pixels: Uint8Array): number[][] {
  const rows: number[][] = [];
  for (let r = 0; r < 28; r++) rows.push(Array.from(pixels.subarray(r * 28, r * 28 + 28)));
  return rows;
}

/** JSON of {@link preparedImageRows}, written directly without building 28 arrays. */
export function preparedImageJson(pixels: Uint8Array): string {
  let out = '[';
  for (let r = 0; r < 28; r++) {
    out += r === 0 ? '[' : ',[';
    const base = r * 28;
    out += pixels[base] ?? 0;
    for (let c = 1; c < 28; c++) out += `,${pixels[base + c] ?? 0}`;
    out += ']';
  }
  return `${out}]`;
}

function probabilitiesJson(probabilities: ArrayLike<number>): string {
  let out = '[';
  for (let i = 0; i < probabilities.length; i++) {
    const p = Math.min(1, Math.max(0, probabilities[i] as number));
    out += i === 0 ? `${p}` : `,${p}`;
  }
  return `${out}]`;
}

export interface UncertainParts {
  /** The frame's original base64 PNG, exactly as received (validated as base64). */
  image: string;
  pixels: Uint8Array;
  probabilities: ArrayLike<number>;
  reason: UncertainReason;
}

/**
 * Encodes an `uncertain-images` record from the frame's prediction JSON (as produced by
 * `JSON.stringify` of a {@link Prediction}) plus the image fields.
 *
 * Size rule: a record must fit Kinesis' 1 MiB including its partition key. The input frame
 * already fitted, but the uncertain record adds ~3-4 KB (prepared image, scores), so a frame
 * near the limit would not. Then the record still goes home with every field but the
 * original image: `image` is `""` and `image_omitted` is `true`; the prepared 28x28 image,
 * the scores and the frame id (to find the original in the camera's own storage) remain.
 *
 * @param maxBytes bytes available for the data (1 MiB minus the partition key's bytes).
 */
export function encodeUncertain(
  predictionJson: string,
  parts: UncertainParts,
  maxBytes: number,
): { data: Buffer; imageOmitted: boolean } {
  const head = predictionJson.slice(0, -1);
  const tail = `,"prepared_image":${preparedImageJson(parts.pixels)},"predictions":${probabilitiesJson(parts.probabilities)},"reason":"${parts.reason}"}`;
  const full = `${head},"image":"${parts.image}"${tail}`;
  const data = Buffer.from(full, 'utf8');
  if (data.byteLength <= maxBytes) return { data, imageOmitted: false };
  return { data: Buffer.from(`${head},"image":"","image_omitted":true${tail}`, 'utf8'), imageOmitted: true };
}

export interface RejectInput {
  frameId: string;
  /** The camera id, only when it was a valid id (others may hold control characters). */
  camera?: string;
  /** The timestamp string as read, when there was one. */
  timestamp?: string;
  device: string;
  reason: RejectReason;
  /** A sentence a person can act on. */
  error: string;
  /** The whole record as received. */
  payload: Uint8Array;
  receivedAt: string;
}

/**
 * Builds a `rejected-images` record. The payload keeps the first {@link REJECT_PAYLOAD_BYTES}
 * bytes of the record as received, base64-encoded, with its full size, so a person can see
 * what was sent without the reject stream carrying megabytes per bad frame.
 */
export function rejectRecord(input: RejectInput): RejectedImage {
  const truncated = input.payload.byteLength > REJECT_PAYLOAD_BYTES;
  const kept = truncated ? input.payload.subarray(0, REJECT_PAYLOAD_BYTES) : input.payload;
  const record: RejectedImage = {
    frame_id: input.frameId,
    device: input.device,
    reason: input.reason,
    error: input.error,
    payload: Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength).toString('base64'),
    payload_bytes: input.payload.byteLength,
    payload_truncated: truncated,
    received_at: input.receivedAt,
  };
  if (input.camera !== undefined) record.camera = input.camera;
  if (input.timestamp !== undefined) record.timestamp = input.timestamp;
  return record;
}

export interface PredictionInput {
  frameId: string;
  camera: string;
  device: string;
  timestamp: string;
  receivedAt: string;
  scoredAt: string;
  probabilities: ArrayLike<number>;
  prepTime: number;
  predictTime: number;
  modelVersion: string;
  blank: boolean;
  label?: number;
}

/** Builds a `predictions` record (times in seconds, as the original). */
export function predictionRecord(input: PredictionInput): Prediction {
  const { resultClass, resultProbability } = topClass(input.probabilities);
  const record: Prediction = {
    frame_id: input.frameId,
    camera: input.camera,
    device: input.device,
    timestamp: input.timestamp,
    received_at: input.receivedAt,
    scored_at: input.scoredAt,
    result_class: resultClass,
    result_probability: resultProbability,
    prep_time: input.prepTime,
    predict_time: input.predictTime,
    model_version: input.modelVersion,
    blank: input.blank,
  };
  if (input.label !== undefined) record.label = input.label;
  return record;
}
