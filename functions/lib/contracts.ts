/**
 * The records on every stream, as zod schemas: the project's public API. Field names and
 * units follow the original edge application so home-side readers keep working (times in
 * seconds, timestamps ISO-8601).
 */
import { z } from 'zod';
import { REJECT_REASONS } from './errors';

/** Stream base names; a deployment prefixes them (see `streamNames` in config). */
export const STREAMS = {
  cameraImages: 'camera-images',
  predictions: 'predictions',
  uncertainImages: 'uncertain-images',
  rejectedImages: 'rejected-images',
  metrics: 'metrics',
  /** The candidate's scores of frames while a model runs in shadow (folded into the metrics). */
  shadowScores: 'shadow-scores',
} as const;

export type StreamKey = keyof typeof STREAMS;

/** Longest camera id accepted; ids become file names in the local output folder. */
export const MAX_CAMERA_ID_LENGTH = 128;

/**
 * Camera ids: letters, digits and `. _ - : @ +`, starting with a letter or digit. No
 * spaces, control characters or path separators, so an id is always a safe file name.
 */
export const CAMERA_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+-]*$/;

export const cameraIdSchema = z
  .string()
  .min(1)
  .max(MAX_CAMERA_ID_LENGTH)
  .regex(CAMERA_ID_PATTERN, 'camera ids may hold only letters, digits and . _ - : @ +');

export const digitSchema = z.number().int().min(0).max(9);

/** ISO-8601 date-time with `Z` or an offset, as cameras send it. */
export const isoTimestampSchema = z.iso.datetime({ offset: true });

/** `camera-images`: one frame from one camera. Unknown extra fields are ignored. */
export const cameraFrameSchema = z.object({
  image: z.string(),
  camera: cameraIdSchema,
  timestamp: isoTimestampSchema,
  label: digitSchema.optional(),
});
export type CameraFrame = z.infer<typeof cameraFrameSchema>;

/**
 * A frame's fields besides its image. A `camera-images` record is either the JSON above or a
 * PNG record: the PNG file itself with these fields as tEXt chunks (png-frame-record.ts).
 */
export const frameFieldsSchema = cameraFrameSchema.omit({ image: true });
export type FrameFields = z.infer<typeof frameFieldsSchema>;

const probabilitySchema = z.number().min(0).max(1);

/** `predictions`: one per accepted frame. */
export const predictionSchema = z.object({
  frame_id: z.string(),
  camera: z.string(),
  device: z.string(),
  timestamp: z.string(),
  received_at: z.string(),
  scored_at: z.string(),
  result_class: digitSchema,
  result_probability: probabilitySchema,
  prep_time: z.number().nonnegative(),
  predict_time: z.number().nonnegative(),
  model_version: z.string(),
  blank: z.boolean(),
  label: digitSchema.optional(),
});
export type Prediction = z.infer<typeof predictionSchema>;

export const UNCERTAIN_REASONS = ['low_confidence', 'test_camera', 'sampled'] as const;
export type UncertainReason = (typeof UNCERTAIN_REASONS)[number];

/** `uncertain-images`: the original's full tuple, sent home for retraining. */
export const uncertainImageSchema = predictionSchema.extend({
  image: z.string(),
  prepared_image: z.array(z.array(z.number().int().min(0).max(255)).length(28)).length(28),
  predictions: z.array(probabilitySchema).length(10),
  reason: z.enum(UNCERTAIN_REASONS),
  /** True when `image` was emptied to keep the record under Kinesis' 1 MiB. */
  image_omitted: z.boolean().optional(),
});
export type UncertainImage = z.infer<typeof uncertainImageSchema>;

/** Bytes of the offending record kept in a reject (base64 of the first bytes). */
export const REJECT_PAYLOAD_BYTES = 4096;

/** `rejected-images`: one per frame that cannot be scored. */
export const rejectedImageSchema = z.object({
  frame_id: z.string(),
  camera: z.string().optional(),
  timestamp: z.string().optional(),
  device: z.string(),
  reason: z.enum(REJECT_REASONS),
  error: z.string(),
  payload: z.string(),
  payload_bytes: z.number().int().nonnegative(),
  payload_truncated: z.boolean(),
  received_at: z.string(),
});
export type RejectedImage = z.infer<typeof rejectedImageSchema>;

/**
 * `shadow-scores`: one per frame scored while a candidate runs in shadow. The frame's outputs
 * are the current model's, unchanged; this record carries what the candidate said of it.
 */
export const shadowScoreSchema = z.object({
  frame_id: z.string(),
  camera: z.string(),
  scored_at: z.string(),
  /** The model that scored the frame's outputs, and its answer. */
  model_version: z.string(),
  result_class: digitSchema,
  result_probability: probabilitySchema,
  /** The candidate in shadow, and its answer. */
  shadow_version: z.string(),
  shadow_class: digitSchema,
  shadow_probability: probabilitySchema,
  label: digitSchema.optional(),
});
export type ShadowScore = z.infer<typeof shadowScoreSchema>;
