/**
 * Typed configuration from the environment, validated once. Every handler reads it at module
 * scope through {@link getConfig}, so a malformed variable fails the cold start with a
 * {@link ConfigError} naming the variable, instead of failing each record later.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { type CameraRule, CameraRulesError, parseCameraRules } from './collection';
import { STREAMS, type StreamKey } from './contracts';
import { ConfigError } from './errors';

/** Empty strings count as unset, so `FOO=` in a shell or a template falls back to the default. */
const unsetIfEmpty = (value: unknown): unknown => (value === '' ? undefined : value);

const number = (min: number, max: number, fallback: number) =>
  z.preprocess(unsetIfEmpty, z.coerce.number().min(min).max(max).default(fallback));
const integer = (min: number, max: number, fallback: number) =>
  z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).max(max).default(fallback));
const text = () => z.preprocess(unsetIfEmpty, z.string().optional());
const flag = () =>
  z.preprocess(unsetIfEmpty, z.enum(['true', 'false', '1', '0']).optional()).transform((v) => v === 'true' || v === '1');

/** Powertools Logger's levels. */
export const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT', 'CRITICAL'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The variables, their defaults and bounds: the README's configuration table mirrors this. */
const envSchema = z.object({
  STREAM_PREFIX: z.preprocess((v) => v ?? '', z.string().regex(/^[A-Za-z0-9_.-]*$/, 'letters, digits, _ . - only')),
  KINESIS_ENDPOINT: z.preprocess(unsetIfEmpty, z.url().optional()),
  AWS_REGION: text(),
  CONFIDENCE_THRESHOLD: number(0, 1, 0.7),
  TEST_CAMERA_PREFIX: z.preprocess((v) => v ?? 'Test', z.string()),
  SAMPLE_CERTAIN_RATE: number(0, 1, 0),
  SAMPLE_CAP_PER_MINUTE: integer(1, 1_000_000, 10),
  CAMERA_RULES: text(),
  MODEL_DIR: text(),
  MODEL_ROOT: text(),
  DEVICE_ID: z.preprocess(unsetIfEmpty, z.string().min(1).max(256).optional()),
  METRICS_WINDOW_SECONDS: integer(1, 900, 10),
  METRICS_COUNTED_FRAMES_DIR: text(),
  PARALLELISM: integer(1, 10, 1),
  CAMERA: z.preprocess(unsetIfEmpty, z.string().min(1).max(64).default('Camera')),
  DELAY: number(0, 3600, 0),
  REPEAT: integer(0, 1_000_000, 1),
  SOURCE: z.preprocess(unsetIfEmpty, z.string().min(1).default('mnist')),
  RECORD_FORMAT: z.preprocess(unsetIfEmpty, z.enum(['json', 'png']).default('json')),
  LOG_LEVEL: z.preprocess(
    (v) => (typeof v === 'string' && v !== '' ? v.toUpperCase() : undefined),
    z.enum(LOG_LEVELS).default('INFO'),
  ),
  MAX_FUTURE_SKEW_SECONDS: number(0, 31_536_000, 300),
  MAX_IMAGE_PIXELS: integer(1, 268_402_689, 16_777_216),
  WRITE_MAX_ATTEMPTS: integer(1, 20, 5),
  WRITE_BASE_DELAY_MS: integer(0, 10_000, 50),
  IS_LOCAL: flag(),
});

export interface Config {
  /** Prepended to every stream's base name (`edge-camera-classifier-dev-` on AWS, `''` locally). */
  readonly streamPrefix: string;
  /** Kinesis endpoint of an emulator; undefined means AWS's regional endpoint. */
  readonly kinesisEndpoint: string | undefined;
  readonly region: string | undefined;
  /** A frame is uncertain (sent home) when `result_probability <= confidenceThreshold`. */
  readonly confidenceThreshold: number;
  /** Frames from cameras whose id starts with this go home whatever their probability; '' disables. */
  readonly testCameraPrefix: string;
  /** Share of certain frames sent home anyway with reason `sampled` (deterministic per frame_id). */
  readonly sampleCertainRate: number;
  /**
   * At most this many sampled frames per camera per minute of capture time. 10 (one every
   * 6 s) fills a 500-label retraining set from one camera in under an hour, while a camera
   * of 640x480 frames (~0.6 MB records) sends at most ~100 kB/s for them.
   */
  readonly sampleCapPerMinute: number;
  /** `CAMERA_RULES`: per-camera overrides of the threshold, the Test rule and sampling. */
  readonly cameraRules: readonly CameraRule[];
  /** Where the ONNX model lives; undefined lets the model loader pick (/opt/models, then the registry). */
  readonly modelDir: string | undefined;
  /** The model registry's folder (models/ by default); used only when no MODEL_DIR or layer fixes the model. */
  readonly modelRoot: string | undefined;
  /** The edge device that scored a frame: `device` in every output record. */
  readonly deviceId: string;
  readonly metricsWindowSeconds: number;
  /**
   * Folder where the metrics aggregator keeps the frames its closed windows counted, so a
   * restart still recognises a redelivered frame; undefined (AWS) keeps them in the container only.
   */
  readonly metricsCountedFramesDir: string | undefined;
  readonly parallelism: number;
  /** Camera-source: camera parameter (the id is this + "-" + host name). */
  readonly camera: string;
  /** Camera-source: seconds between frames. */
  readonly delay: number;
  /** Camera-source: passes over the source, 0 = forever. */
  readonly repeat: number;
  /** Camera-source: `mnist` or a folder of PNG files. */
  readonly source: string;
  /** Camera-source: `json` records (base64 image) or `png` records (the PNG, fields in tEXt chunks). */
  readonly recordFormat: 'json' | 'png';
  readonly logLevel: LogLevelName;
  /** Frames stamped further than this in the future are rejected (`future_timestamp`). */
  readonly maxFutureSkewSeconds: number;
  /** Decoded-pixel cap that stops decompression bombs before sharp allocates them. */
  readonly maxImagePixels: number;
  /** Stream writer: PutRecords attempts per entry (first try included). */
  readonly writeMaxAttempts: number;
  /** Stream writer: base of the exponential backoff between attempts. */
  readonly writeBaseDelayMs: number;
  /** Set by `sls invoke local`: with no endpoint, outputs are printed instead of written. */
  readonly isLocal: boolean;
}

/**
 * Validates an environment and returns the typed configuration.
 *
 * @throws ConfigError naming every malformed variable and what was expected.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '?'), message: issue.message }));
    const described = problems.map((p) => `${p.variable}=${JSON.stringify(env[p.variable] ?? null)}: ${p.message}`);
    throw new ConfigError(`invalid configuration: ${described.join('; ')}`, problems);
  }
  const e = parsed.data;
  let cameraRules: readonly CameraRule[];
  try {
    cameraRules = parseCameraRules(e.CAMERA_RULES);
  } catch (error: unknown) {
    if (!(error instanceof CameraRulesError)) throw error;
    throw new ConfigError(`invalid configuration: CAMERA_RULES=${JSON.stringify(env.CAMERA_RULES)}: ${error.message}`, [
      { variable: 'CAMERA_RULES', message: error.message },
    ]);
  }
  return Object.freeze({
    streamPrefix: e.STREAM_PREFIX,
    kinesisEndpoint: e.KINESIS_ENDPOINT,
    region: e.AWS_REGION,
    confidenceThreshold: e.CONFIDENCE_THRESHOLD,
    testCameraPrefix: e.TEST_CAMERA_PREFIX,
    sampleCertainRate: e.SAMPLE_CERTAIN_RATE,
    sampleCapPerMinute: e.SAMPLE_CAP_PER_MINUTE,
    cameraRules,
    modelDir: e.MODEL_DIR,
    modelRoot: e.MODEL_ROOT,
    deviceId: e.DEVICE_ID ?? hostname(),
    metricsWindowSeconds: e.METRICS_WINDOW_SECONDS,
    metricsCountedFramesDir: e.METRICS_COUNTED_FRAMES_DIR,
    parallelism: e.PARALLELISM,
    camera: e.CAMERA,
    delay: e.DELAY,
    repeat: e.REPEAT,
    source: e.SOURCE,
    recordFormat: e.RECORD_FORMAT,
    logLevel: e.LOG_LEVEL,
    maxFutureSkewSeconds: e.MAX_FUTURE_SKEW_SECONDS,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    writeMaxAttempts: e.WRITE_MAX_ATTEMPTS,
    writeBaseDelayMs: e.WRITE_BASE_DELAY_MS,
    isLocal: e.IS_LOCAL,
  });
}

let cached: Config | undefined;

/**
 * The process's configuration, read from `process.env` on first use and kept: call it at
 * module scope so a bad value fails the cold start.
 *
 * @throws ConfigError when a variable is malformed.
 */
export function getConfig(): Config {
  cached ??= loadConfig(process.env);
  return cached;
}

/**
 * The full name of one of the project's streams: the deployment's prefix plus the base name
 * from the contracts (`predictions`, `uncertain-images`, ...).
 *
 * @param prefix defaults to the process configuration's `STREAM_PREFIX`.
 */
export function streamName(key: StreamKey, prefix: string = getConfig().streamPrefix): string {
  return prefix + STREAMS[key];
}
