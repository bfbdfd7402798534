/**
 * Why a frame could not be scored. Every code is a stable, machine-readable value that
 * lands in the `reason` field of a `rejected-images` record.
 */
export const REJECT_REASONS = [
  'invalid_json',
  'invalid_record',
  'invalid_camera',
  'invalid_timestamp',
  'future_timestamp',
  'invalid_label',
  'image_empty',
  'image_not_base64',
  'not_png',
  'corrupt_png',
  'image_too_large',
  'record_too_large',
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];

/**
 * What the sender should do about each reason: one sentence per reason, shown next to the
 * rejects on the home page. A reject's own `error` adds the specifics of that record.
 */
export const REJECT_ADVICE: Readonly<Record<RejectReason, string>> = {
  invalid_json: 'send one JSON object per record, encoded as UTF-8 (or a PNG record)',
  invalid_record:
    'send a JSON object with image (base64 PNG), camera and timestamp (ISO-8601), or a PNG record carrying camera and timestamp as tEXt chunks',
  invalid_camera: 'use a camera id of at most 128 letters, digits and . _ - : @ +, starting with a letter or digit',
  invalid_timestamp: 'send the capture time as ISO-8601 with Z or an offset, e.g. 2026-11-27T15:04:05.123Z',
  future_timestamp: "check the camera's clock (NTP): its capture times lie in the future",
  invalid_label: 'send label, when present, as an integer digit 0-9',
  image_empty: 'check that the camera captures a frame, and send it as base64 PNG',
  image_not_base64: 'encode the PNG file bytes with standard base64 (no line breaks)',
  not_png: 'camera frames must be PNG: re-encode the frame as PNG before sending (JPEG, GIF, WebP and SVG are not accepted)',
  corrupt_png:
    'resend the frame, and check that the camera writes complete PNG files and that nothing on the way alters the bytes (truncation, text-mode transfer, double base64)',
  image_too_large: 'send smaller frames: scale them down (e.g. to 640x480) before sending',
  record_too_large: "keep a record under Kinesis' 1 MiB: send a PNG of at most about 760 KB (1 MB as a PNG record)",
};

/**
 * A reject's `error`: what was wrong with this record, then what to do about its reason
 * ({@link REJECT_ADVICE}), so the advice is written once.
 */
export function rejectMessage(reason: RejectReason, specifics: string): string {
  return `${specifics}: ${REJECT_ADVICE[reason]}`;
}

/**
 * A frame that will never score however often it is retried: the classify stage turns it
 * into a `rejected-images` record instead of failing the batch.
 */
export class FrameRejectedError extends Error {
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
    this.name = 'FrameRejectedError';
  }
}

/** The model file is missing, corrupt or of the wrong shape: raised at cold start. */
export class ModelLoadError extends Error {
  constructor(
    readonly modelPath: string,
    message: string,
  ) {
    super(`model ${modelPath}: ${message}`);
    this.name = 'ModelLoadError';
  }
}

/** A configuration variable is missing or malformed: raised at cold start. */
export class ConfigError extends Error {
  constructor(
    message: string,
    /** Each malformed variable and what was wrong with it, for callers that name their own flags. */
    readonly problems: ReadonlyArray<{ variable: string; message: string }> = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}
