/**
 * The boundary of the classify stage: one `camera-images` record's bytes in, either a valid
 * frame with its decoded PNG bytes or the reason it can never be scored. Nothing here
 * throws: every way a record can be wrong is a value the caller routes to `rejected-images`.
 */
import type { z } from 'zod';
import { type FrameFields, MAX_CAMERA_ID_LENGTH, cameraFrameSchema, cameraIdSchema, frameFieldsSchema } from './contracts';
import type { RejectReason } from './errors';
import { isPngRecord, readPngRecordText } from './png-frame-record';
import { KINESIS_LIMITS } from './kinesis-records';

export interface AcceptedFrame {
  ok: true;
  frame: FrameFields;
  /** The PNG file: decoded from the JSON's base64 `image`, or the PNG record itself. */
  png: Buffer;
  /**
   * The image as the JSON record carried it (checked base64), so the uncertain record can
   * copy it instead of encoding the PNG again; absent for PNG records.
   */
  imageBase64?: string;
}

export interface RefusedFrame {
  ok: false;
  reason: RejectReason;
  /** A sentence a person can act on. */
  error: string;
  /** The camera id when the record held a valid one. */
  camera?: string;
  /** The timestamp string when the record held one (at most 64 characters kept). */
  timestamp?: string;
}

export type FrameCheck = AcceptedFrame | RefusedFrame;

export interface FrameCheckOptions {
  /** Current time in epoch milliseconds. */
  nowMs: number;
  /** How far in the future a capture time may lie (camera clocks drift). */
  maxFutureSkewSeconds: number;
}

const MAX_TIMESTAMP_KEPT = 64;

/** Standard or URL-safe base64 alphabet with optional padding, nothing else. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

const decoder = new TextDecoder('utf-8');

/** What could be read of camera and timestamp, for the reject record. */
function readable(value: unknown): { camera?: string; timestamp?: string } {
  if (typeof value !== 'object' || value === null) return {};
  const out: { camera?: string; timestamp?: string } = {};
  const { camera, timestamp } = value as { camera?: unknown; timestamp?: unknown };
  if (cameraIdSchema.safeParse(camera).success) out.camera = camera as string;
  if (typeof timestamp === 'string') out.timestamp = timestamp.slice(0, MAX_TIMESTAMP_KEPT);
  return out;
}

/** Exact decoded length of a padded or unpadded base64 string, or -1 when impossible. */
function base64DecodedLength(text: string): number {
  let padding = 0;
  if (text.endsWith('==')) padding = 2;
  else if (text.endsWith('=')) padding = 1;
  const body = text.length - padding;
  if (padding > 0 && text.length % 4 !== 0) return -1;
  if (body % 4 === 1) return -1;
  return Math.floor((body * 3) / 4);
}

/** Maps zod's issues on a frame to one reason code and a readable sentence. */
function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  input: Record<string, unknown>,
): { reason: RejectReason; error: string } {
  const missing = issues.filter((issue) => issue.path.length === 1 && input[String(issue.path[0])] === undefined);
  if (missing.length > 0) {
    const names = missing.map((issue) => String(issue.path[0])).join(', ');
    return {
      reason: 'invalid_record',
      error: `the record has no ${names}: a frame needs image (base64 PNG), camera and timestamp (ISO-8601)`,
    };
  }
  const field = String(issues[0]?.path[0] ?? '');
  switch (field) {
    case 'camera': {
      const camera = input.camera;
      if (typeof camera !== 'string') return { reason: 'invalid_camera', error: 'camera must be a string id' };
      if (camera.length > MAX_CAMERA_ID_LENGTH) {
        return {
          reason: 'invalid_camera',
          error: `the camera id is ${camera.length} characters long; at most ${MAX_CAMERA_ID_LENGTH} are allowed: use a shorter id`,
        };
      }
      return {
        reason: 'invalid_camera',
        error: `the camera id ${JSON.stringify(camera.slice(0, 40))} is not allowed: use letters, digits and . _ - : @ + only, starting with a letter or digit (no spaces, control characters or slashes)`,
      };
    }
    case 'timestamp':
      return {
        reason: 'invalid_timestamp',
        error: 'timestamp must be an ISO-8601 date-time with Z or an offset, e.g. 2026-11-27T15:04:05.123Z',
      };
    case 'label':
      return { reason: 'invalid_label', error: 'label, when present, must be an integer digit 0-9' };
    case 'image':
      return { reason: 'invalid_record', error: 'image must be a string holding the base64 of a PNG file' };
    default:
      return {
        reason: 'invalid_record',
        error: `the record does not match the camera-images contract: ${issues[0]?.message ?? 'unknown problem'}`,
      };
  }
}

/**
 * Checks one `camera-images` record: size within Kinesis' 1 MiB, UTF-8 JSON object, the
 * contract's fields (unknown extra fields are ignored), a capture time that is a real date
 * and not more than `maxFutureSkewSeconds` ahead, and an image that is non-empty standard
 * (or URL-safe) base64. Whether the bytes are a readable PNG is for the preparation step.
 */
export function checkFrame(data: Uint8Array, options: FrameCheckOptions): FrameCheck {
  if (data.byteLength > KINESIS_LIMITS.maxRecordBytes) {
    return {
      ok: false,
      reason: 'record_too_large',
      error: `the record is ${data.byteLength} bytes; Kinesis carries at most ${KINESIS_LIMITS.maxRecordBytes} bytes per record, so send a PNG of at most about 760 KB (1 MB as a PNG record)`,
    };
  }
  if (isPngRecord(data)) return checkPngRecord(data, options);
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data));
  } catch (error: unknown) {
    const detail = error instanceof Error ? error.message : String(error);
    return {
      ok: false,
      reason: 'invalid_json',
      error: `the record is not valid JSON (${detail.slice(0, 120)}): send one JSON object per record`,
    };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return {
      ok: false,
      reason: 'invalid_record',
      error: 'the record must be a JSON object with image (base64 PNG), camera and timestamp',
    };
  }
  const result = cameraFrameSchema.safeParse(parsed);
  if (!result.success) {
    return { ok: false, ...describeIssues(result.error.issues, parsed as Record<string, unknown>), ...readable(parsed) };
  }
  const { image, ...fields } = result.data;
  const known = knownOf(fields);
  const late = checkCaptureTime(fields, options);
  if (late) return late;
  if (image.length === 0) {
    return {
      ok: false,
      reason: 'image_empty',
      error: 'image is empty: the camera sent no picture; check that it captures a frame, and send it as base64 PNG',
      ...known,
    };
  }
  // Node's decoder silently skips characters outside the alphabet, so check them first; the
  // image is later copied unescaped into the uncertain record's JSON, which this makes safe.
  const expected = BASE64.test(image) ? base64DecodedLength(image) : -1;
  const png = expected < 0 ? undefined : Buffer.from(image, 'base64');
  if (png === undefined || png.byteLength !== expected) {
    return {
      ok: false,
      reason: 'image_not_base64',
      error: 'image is not base64: encode the PNG file bytes with standard base64 (no line breaks)',
      ...known,
    };
  }
  if (png.byteLength === 0) {
    return {
      ok: false,
      reason: 'image_empty',
      error: 'image decodes to zero bytes: the camera sent no picture; check that it captures a frame, and send it as base64 PNG',
      ...known,
    };
  }
  return { ok: true, frame: fields, png, imageBase64: image };
}

/** A valid frame's camera and timestamp, as a reject record keeps them. */
function knownOf(fields: FrameFields): { camera: string; timestamp: string } {
  return { camera: fields.camera, timestamp: fields.timestamp.slice(0, MAX_TIMESTAMP_KEPT) };
}

/** The capture time is a real date and not too far ahead; undefined when it is fine. */
function checkCaptureTime(fields: FrameFields, options: FrameCheckOptions): RefusedFrame | undefined {
  const known = knownOf(fields);
  const captured = Date.parse(fields.timestamp);
  if (!Number.isFinite(captured)) {
    return {
      ok: false,
      reason: 'invalid_timestamp',
      error: `timestamp ${JSON.stringify(known.timestamp)} is not a real date: send the capture time as ISO-8601, e.g. 2026-11-27T15:04:05.123Z`,
      ...known,
    };
  }
  if (captured > options.nowMs + options.maxFutureSkewSeconds * 1000) {
    return {
      ok: false,
      reason: 'future_timestamp',
      error: `timestamp ${fields.timestamp} is more than ${options.maxFutureSkewSeconds} s in the future: check the camera's clock (NTP)`,
      ...known,
    };
  }
  return undefined;
}

/**
 * Checks a PNG record: camera, timestamp and optional label read from its tEXt chunks and
 * held to the same contract as the JSON fields. The PNG bytes themselves are the decoder's
 * to judge, as for a JSON record's image.
 */
function checkPngRecord(data: Uint8Array, options: FrameCheckOptions): FrameCheck {
  const read = readPngRecordText(data);
  if (!read.ok) return { ok: false, reason: 'invalid_record', error: read.error };
  const { camera, timestamp, label } = read.text;
  const missing = [camera === undefined ? 'camera' : '', timestamp === undefined ? 'timestamp' : ''].filter(
    (name) => name !== '',
  );
  if (missing.length > 0) {
    return {
      ok: false,
      reason: 'invalid_record',
      error: `the PNG record has no ${missing.join(' or ')} text chunk: a PNG record carries camera and timestamp (ISO-8601) as tEXt chunks before its image data; or send JSON with image, camera and timestamp`,
      ...readable({ camera, timestamp }),
    };
  }
  const candidate: Record<string, unknown> = { camera, timestamp };
  if (label !== undefined) candidate.label = /^[0-9]$/.test(label) ? Number(label) : label;
  const result = frameFieldsSchema.safeParse(candidate);
  if (!result.success) return { ok: false, ...describeIssues(result.error.issues, candidate), ...readable(candidate) };
  const late = checkCaptureTime(result.data, options);
  if (late) return late;
  return { ok: true, frame: result.data, png: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
}
