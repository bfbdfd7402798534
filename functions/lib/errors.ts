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
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
