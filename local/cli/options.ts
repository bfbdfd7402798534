/**
 * `npm start`'s options: each flag, its environment variable, its default and its help line.
 *
 * Flags win over variables, variables over defaults. The variables the functions read
 * (camera, delay, confidence, sampling, window, parallelism...) are validated by the
 * functions' own schema (functions/lib/config.ts), so the command line refuses exactly what a
 * cold start would; the command line's own settings by {@link commandLineSchema}. The defaults
 * are those two schemas' (parsed from nothing), and the help text is built from them.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { type Config, loadConfig } from '../../functions/lib/config';
import { ConfigError } from '../../functions/lib/errors';
import { DEFAULT_DATA_DIR } from '../../home/dataset';
import { DEFAULT_HOME_HOST, DEFAULT_HOME_PORT } from '../../home/serve';
import { DEFAULT_KEEP_DAYS, DEFAULT_MAX_GB, parseRetention, RetentionSettingError } from '../../home/store/retention';
import { DEFAULT_BACKLOG_BYTES, DEFAULT_EMULATOR_PORT, DEFAULT_RETAIN_CONSUMED_SECONDS } from '../emulator';
import {
  DEFAULT_UPLINK_STREAMS,
  parseUplinkSettings,
  UPLINK_DEFAULTS,
  UPLINK_POLICIES,
  type UplinkSettings,
} from '../uplink/settings';

/** Frames in one pass over the MNIST test set. */
export const MNIST_TEST_FRAMES = 10_000;

/** A bad flag or variable: printed with the help text, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Empty strings count as unset, as in functions/lib/config.ts. */
const unsetIfEmpty = (value: unknown): unknown => (value === '' ? undefined : value);
const number = (min: number, max: number) => z.preprocess(unsetIfEmpty, z.coerce.number().min(min).max(max));
const integer = (min: number, max: number) => z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).max(max));
const text = () => z.preprocess(unsetIfEmpty, z.string().optional());
/** A switch: "true" or "1" turns it on, anything else leaves it off. */
const switched = () => z.preprocess(unsetIfEmpty, z.string().optional()).transform((v) => v === 'true' || v === '1');

/** Longest --retain-consumed: a month. */
const MAX_RETAIN_SECONDS = 31 * 24 * 3600;

/** The command line's own settings (those the functions do not read), by flag, with bounds and defaults. */
const commandLineSchema = z.object({
  count: integer(0, Number.MAX_SAFE_INTEGER).optional(),
  cameras: integer(1, 100).default(1),
  rate: number(0, 1_000_000).default(0),
  shards: integer(1, 100).optional(),
  port: integer(0, 65535).default(DEFAULT_EMULATOR_PORT),
  endpoint: text(),
  out: z.preprocess(unsetIfEmpty, z.string().default('./out')),
  state: z.preprocess(unsetIfEmpty, z.string().default('./state')),
  from: z.preprocess(unsetIfEmpty, z.enum(['checkpoint', 'trim-horizon']).default('checkpoint')),
  persist: text(),
  /**
   * Seconds, or "all" (-1) to keep every record (null). The embedded emulator otherwise holds
   * every record for the streams' 24 h retention: a long --serve run would grow without bound.
   * The default keeps ~10 s of finished records readable with the AWS CLI while bounding what
   * they take: at 2,000 28x28 frames/s about 100 MB, at 15 640x480 frames/s about 90 MB (a
   * minute would be five to six times as much).
   */
  'retain-consumed': z.preprocess(
    unsetIfEmpty,
    z
      .union([z.enum(['all', '-1']).transform(() => null), z.coerce.number().min(0).max(MAX_RETAIN_SECONDS)])
      .default(DEFAULT_RETAIN_CONSUMED_SECONDS),
  ),
  serve: switched(),
  'home-port': integer(0, 65535).default(DEFAULT_HOME_PORT),
  'home-host': z.preprocess(unsetIfEmpty, z.string().default(DEFAULT_HOME_HOST)),
  token: text(),
  data: z.preprocess(unsetIfEmpty, z.string().default(DEFAULT_DATA_DIR)),
  'keep-days': text(),
  'max-gb': text(),
  'no-home': switched(),
  'in-process': switched(),
  quiet: switched(),
  /** How the pipeline's own readers and writers reach the embedded emulator (see LocalPipeline). */
  transport: z.preprocess(unsetIfEmpty, z.enum(['direct', 'http']).optional()),
  /** Megabytes of camera-images the embedded emulator holds at most before it throttles the camera. */
  'max-backlog-mb': number(1, 1_000_000).default(DEFAULT_BACKLOG_BYTES / 1024 / 1024),
  'home-endpoint': text(),
  'home-stream-prefix': z.preprocess((v) => v ?? '', z.string()),
  'uplink-max-mb': number(0.01, 1_000_000).default(UPLINK_DEFAULTS.maxMegabytes),
  'uplink-policy': z.preprocess(unsetIfEmpty, z.enum(UPLINK_POLICIES).default(UPLINK_DEFAULTS.policy)),
  'uplink-kbps': number(0, 100_000_000).default(UPLINK_DEFAULTS.kbps),
  'uplink-interval': number(0, 3600).default(UPLINK_DEFAULTS.intervalSeconds),
  'uplink-retry-max': number(0.01, 86_400).default(UPLINK_DEFAULTS.retryMaxMs / 1000),
  'uplink-predictions': switched(),
});

type CommandLine = z.output<typeof commandLineSchema>;

/** The defaults: the functions' configuration and the command line's settings, both parsed from nothing. */
const CONFIG_DEFAULTS: Config = loadConfig({});
const DEFAULTS: CommandLine = commandLineSchema.parse({});

interface Option {
  flag: string;
  /** What the value is, in the help text (N, S, DIR...); none for switches. */
  value?: string;
  env: string;
  type: 'string' | 'boolean';
  /** The default as the help text shows it. */
  shown: string;
  help: string;
  /** True when functions/lib/config.ts validates the variable (the functions read it). */
  config?: true;
}

/** The options in help order: the README's table mirrors this one. */
const OPTIONS: Option[] = [
  {
    flag: 'count',
    value: 'N',
    env: 'COUNT',
    type: 'string',
    shown: `all (${MNIST_TEST_FRAMES.toLocaleString('en-US')} per pass)`,
    help: 'frames to publish',
  },
  {
    flag: 'camera',
    value: 'ID',
    env: 'CAMERA',
    type: 'string',
    shown: CONFIG_DEFAULTS.camera,
    help: 'camera parameter; the id is <camera>-<host>',
    config: true,
  },
  {
    flag: 'cameras',
    value: 'N',
    env: 'CAMERAS',
    type: 'string',
    shown: String(DEFAULTS.cameras),
    help: 'replay as N cameras <camera>-1..N (N partition keys)',
  },
  {
    flag: 'delay',
    value: 'S',
    env: 'DELAY',
    type: 'string',
    shown: String(CONFIG_DEFAULTS.delay),
    help: 'seconds between frames',
    config: true,
  },
  {
    flag: 'repeat',
    value: 'N',
    env: 'REPEAT',
    type: 'string',
    shown: String(CONFIG_DEFAULTS.repeat),
    help: 'passes over the source, 0 = forever',
    config: true,
  },
  {
    flag: 'rate',
    value: 'R',
    env: 'RATE',
    type: 'string',
    shown: String(DEFAULTS.rate),
    help: 'at most R frames per second, 0 = no cap',
  },
  {
    flag: 'source',
    value: 'SRC',
    env: 'SOURCE',
    type: 'string',
    shown: CONFIG_DEFAULTS.source,
    help: '"mnist" or a folder of PNG files',
    config: true,
  },
  {
    flag: 'record-format',
    value: 'F',
    env: 'RECORD_FORMAT',
    type: 'string',
    shown: CONFIG_DEFAULTS.recordFormat,
    help: 'camera-images records: json or png (tEXt fields)',
    config: true,
  },
  {
    flag: 'confidence',
    value: 'P',
    env: 'CONFIDENCE_THRESHOLD',
    type: 'string',
    shown: CONFIG_DEFAULTS.confidenceThreshold.toFixed(2),
    help: 'uncertain when probability <= P',
    config: true,
  },
  {
    flag: 'sample-rate',
    value: 'R',
    env: 'SAMPLE_CERTAIN_RATE',
    type: 'string',
    shown: String(CONFIG_DEFAULTS.sampleCertainRate),
    help: 'share of certain frames also sent home (reason sampled)',
    config: true,
  },
  {
    flag: 'sample-cap',
    value: 'N',
    env: 'SAMPLE_CAP_PER_MINUTE',
    type: 'string',
    shown: String(CONFIG_DEFAULTS.sampleCapPerMinute),
    help: 'at most N sampled frames per camera per minute',
    config: true,
  },
  {
    flag: 'camera-rules',
    value: 'JSON',
    env: 'CAMERA_RULES',
    type: 'string',
    shown: 'none',
    help: 'per-camera overrides, JSON (see README)',
    config: true,
  },
  {
    flag: 'window',
    value: 'S',
    env: 'METRICS_WINDOW_SECONDS',
    type: 'string',
    shown: String(CONFIG_DEFAULTS.metricsWindowSeconds),
    help: 'metrics tumbling window, seconds',
    config: true,
  },
  {
    flag: 'shards',
    value: 'N',
    env: 'CAMERA_SHARDS',
    type: 'string',
    shown: 'serverless.yml',
    help: 'shards of camera-images',
  },
  {
    flag: 'parallelism',
    value: 'N',
    env: 'PARALLELISM',
    type: 'string',
    shown: `${CONFIG_DEFAULTS.parallelism} (N with --cameras N)`,
    help: 'classify batches in flight per shard (1-10)',
    config: true,
  },
  {
    flag: 'port',
    value: 'P',
    env: 'EMULATOR_PORT',
    type: 'string',
    shown: String(DEFAULTS.port),
    help: 'emulator port on 127.0.0.1',
  },
  {
    flag: 'endpoint',
    value: 'URL',
    env: 'KINESIS_ENDPOINT',
    type: 'string',
    shown: 'embedded emulator',
    help: 'use this Kinesis endpoint instead',
  },
  { flag: 'out', value: 'DIR', env: 'OUT_DIR', type: 'string', shown: DEFAULTS.out, help: 'home outputs folder' },
  {
    flag: 'state',
    value: 'DIR',
    env: 'STATE_DIR',
    type: 'string',
    shown: DEFAULTS.state,
    help: 'with --endpoint: checkpoints here; next run resumes',
  },
  {
    flag: 'from',
    value: 'WHERE',
    env: 'FROM',
    type: 'string',
    shown: DEFAULTS.from,
    help: 'with --endpoint: checkpoint or trim-horizon',
  },
  {
    flag: 'persist',
    value: 'DIR',
    env: 'PERSIST_DIR',
    type: 'string',
    shown: 'off (in memory)',
    help: 'keep streams + checkpoints here; a restart resumes',
  },
  {
    flag: 'retain-consumed',
    value: 'S',
    env: 'RETAIN_CONSUMED',
    type: 'string',
    shown: String(DEFAULTS['retain-consumed']),
    help: 'drop records S s after local readers finish; all = keep',
  },
  {
    flag: 'transport',
    value: 'T',
    env: 'LOCAL_TRANSPORT',
    type: 'string',
    shown: 'direct',
    help: 'how the pipeline reaches its embedded emulator: direct or http (http with --endpoint)',
  },
  {
    flag: 'max-backlog-mb',
    value: 'MB',
    env: 'MAX_BACKLOG_MB',
    type: 'string',
    shown: String(DEFAULTS['max-backlog-mb']),
    help: 'camera-images held at most before the camera is throttled',
  },
  {
    flag: 'serve',
    env: 'SERVE',
    type: 'boolean',
    shown: String(DEFAULTS.serve),
    help: 'keep serving until Ctrl-C (publishes only with --count)',
  },
  {
    flag: 'home-port',
    value: 'P',
    env: 'HOME_PORT',
    type: 'string',
    shown: String(DEFAULTS['home-port']),
    help: 'home page port, 0 = any free port',
  },
  {
    flag: 'home-host',
    value: 'H',
    env: 'HOME_HOST',
    type: 'string',
    shown: DEFAULTS['home-host'],
    help: 'home page address (not loopback: needs --token)',
  },
  {
    flag: 'token',
    value: 'T',
    env: 'HOME_TOKEN',
    type: 'string',
    shown: 'none',
    help: 'every home page request must carry this token',
  },
  {
    flag: 'data',
    value: 'DIR',
    env: 'HOME_DATA',
    type: 'string',
    shown: DEFAULTS.data,
    help: 'home data folder: frames, labels (outlives runs)',
  },
  {
    flag: 'keep-days',
    value: 'N',
    env: 'HOME_KEEP_DAYS',
    type: 'string',
    shown: String(DEFAULT_KEEP_DAYS),
    help: 'home: prune unlabelled frames older than N days, or off',
  },
  {
    flag: 'max-gb',
    value: 'X',
    env: 'HOME_MAX_GB',
    type: 'string',
    shown: String(DEFAULT_MAX_GB),
    help: 'home: bound on the data folder in GB, or off',
  },
  { flag: 'no-home', env: 'NO_HOME', type: 'boolean', shown: String(DEFAULTS['no-home']), help: 'do not serve the home page' },
  {
    flag: 'in-process',
    env: 'IN_PROCESS',
    type: 'boolean',
    shown: String(DEFAULTS['in-process']),
    help: 'run the functions in this thread, not one worker each',
  },
  { flag: 'quiet', env: 'QUIET', type: 'boolean', shown: String(DEFAULTS.quiet), help: 'no progress bar or tables' },
  {
    flag: 'home-endpoint',
    value: 'URL',
    env: 'HOME_ENDPOINT',
    type: 'string',
    shown: 'off',
    help: 'forward outputs to this home Kinesis endpoint (URL or "aws")',
  },
  {
    flag: 'home-stream-prefix',
    value: 'P',
    env: 'HOME_STREAM_PREFIX',
    type: 'string',
    shown: `'${DEFAULTS['home-stream-prefix']}'`,
    help: 'prefix of the stream names at home',
  },
  {
    flag: 'uplink-max-mb',
    value: 'MB',
    env: 'UPLINK_MAX_MB',
    type: 'string',
    shown: String(DEFAULTS['uplink-max-mb']),
    help: 'most the uplink backlog holds at the edge',
  },
  {
    flag: 'uplink-policy',
    value: 'P',
    env: 'UPLINK_POLICY',
    type: 'string',
    shown: DEFAULTS['uplink-policy'],
    help: 'when the backlog is full: reject-new or drop-oldest',
  },
  {
    flag: 'uplink-kbps',
    value: 'K',
    env: 'UPLINK_KBPS',
    type: 'string',
    shown: String(DEFAULTS['uplink-kbps']),
    help: 'uplink bandwidth cap, kilobits/s, 0 = none',
  },
  {
    flag: 'uplink-interval',
    value: 'S',
    env: 'UPLINK_INTERVAL',
    type: 'string',
    shown: String(DEFAULTS['uplink-interval']),
    help: 'send a stream once its oldest record waited S s (or 500 wait)',
  },
  {
    flag: 'uplink-retry-max',
    value: 'S',
    env: 'UPLINK_RETRY_MAX',
    type: 'string',
    shown: String(DEFAULTS['uplink-retry-max']),
    help: 'longest wait between uplink retries, seconds',
  },
  {
    flag: 'uplink-predictions',
    env: 'UPLINK_PREDICTIONS',
    type: 'boolean',
    shown: String(DEFAULTS['uplink-predictions']),
    help: 'forward every prediction home too',
  },
];

/** The usage text: every option with its variable and default. */
export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const flag = `--${o.flag}${o.value ? ` ${o.value}` : ''}`;
    return `  ${flag.padEnd(19)} ${o.help.padEnd(56)} ${o.env.padEnd(23)} ${o.shown}`;
  });
  return [
    'usage: npm start -- [options]',
    `  ${'flag'.padEnd(19)} ${'meaning'.padEnd(56)} ${'variable'.padEnd(23)} default`,
    ...rows,
    '  --help              this text',
  ].join('\n');
}

/** A value as a usage error quotes it: short ones in full, long ones (JSON rules) not at all. */
function got(value: string | undefined): string {
  return value !== undefined && value.length <= 40 ? ` (got ${JSON.stringify(value)})` : '';
}

/**
 * Parses `argv` over the environment `env`.
 *
 * @throws UsageError naming each bad flag (or variable) and what was expected.
 */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  const parsed = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: o.type }])),
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const raw = (option: Option): string | undefined => {
    const value = values[option.flag];
    if (typeof value === 'string') return value;
    if (value === true) return 'true';
    const fromEnv = env[option.env];
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  };
  const given = new Map(OPTIONS.map((o) => [o.flag, raw(o)]));
  const isSet = (flag: string): boolean => given.get(flag) !== undefined;

  // The functions' variables, checked as a cold start checks them. The pipeline sets the
  // endpoint and the stream prefix itself, so the user's values of those are not in question.
  let config: Config;
  try {
    config = loadConfig({
      ...env,
      KINESIS_ENDPOINT: undefined,
      STREAM_PREFIX: undefined,
      ...Object.fromEntries(OPTIONS.filter((o) => o.config).map((o) => [o.env, given.get(o.flag)])),
    });
  } catch (error: unknown) {
    if (!(error instanceof ConfigError)) throw error;
    const byVariable = new Map(OPTIONS.filter((o) => o.config).map((o) => [o.env, o]));
    const problems = error.problems.map(({ variable, message }) => {
      const option = byVariable.get(variable);
      return option
        ? `--${option.flag}: ${message}${got(given.get(option.flag))}`
        : `${variable}: ${message}${got(env[variable])}`;
    });
    throw new UsageError(problems.length > 0 ? problems.join('; ') : error.message);
  }

  const ownFlags = OPTIONS.filter((o) => !o.config).map((o) => [o.flag, given.get(o.flag)]);
  const own = commandLineSchema.safeParse(Object.fromEntries(ownFlags));
  if (!own.success) {
    throw new UsageError(
      own.error.issues
        .map((issue) => {
          const flag = String(issue.path[0] ?? '?');
          return `--${flag}: ${issue.message}${got(given.get(flag))}`;
        })
        .join('; '),
    );
  }
  const o = own.data;
  if (o.transport === 'direct' && o.endpoint !== undefined)
    throw new UsageError('--transport direct: needs the embedded emulator; with --endpoint the pipeline talks HTTP');
  let retention: ReturnType<typeof parseRetention>;
  try {
    retention = parseRetention({ keepDays: o['keep-days'], maxGb: o['max-gb'] });
  } catch (error: unknown) {
    if (error instanceof RetentionSettingError) throw new UsageError(error.message);
    throw error;
  }
  return {
    help: values.help === true,
    count: o.count,
    camera: config.camera,
    cameras: o.cameras,
    delay: config.delay,
    repeat: config.repeat,
    rate: o.rate,
    source: config.source,
    recordFormat: config.recordFormat,
    // Unset ones stay unset: the functions then keep serverless.yml's values.
    confidence: isSet('confidence') ? config.confidenceThreshold : undefined,
    sampleRate: isSet('sample-rate') ? config.sampleCertainRate : undefined,
    sampleCap: isSet('sample-cap') ? config.sampleCapPerMinute : undefined,
    cameraRules: given.get('camera-rules'),
    window: isSet('window') ? config.metricsWindowSeconds : undefined,
    shards: o.shards,
    parallelism: isSet('parallelism') ? config.parallelism : undefined,
    port: o.port,
    endpoint: o.endpoint,
    out: resolve(o.out),
    persist: o.persist === undefined ? undefined : resolve(o.persist),
    state: resolve(o.state),
    from: o.from,
    retainConsumed: o['retain-consumed'] ?? undefined,
    transport: o.transport,
    maxBacklogBytes: Math.round(o['max-backlog-mb'] * 1024 * 1024),
    serve: o.serve,
    quiet: o.quiet,
    inProcess: o['in-process'],
    uplink: uplinkSettings(o),
    home: !o['no-home'],
    homePort: o['home-port'],
    homeHost: o['home-host'],
    token: o.token,
    data: resolve(o.data),
    retention,
  };
}

/** What the command line asked for. */
export type Options = ReturnType<typeof parseOptions>;

/** The uplink's settings from the flags; undefined without --home-endpoint. */
function uplinkSettings(o: CommandLine): UplinkSettings | undefined {
  const endpoint = o['home-endpoint'];
  if (endpoint === undefined) return undefined;
  const retryMaxMs = Math.round(o['uplink-retry-max'] * 1000);
  try {
    return parseUplinkSettings({
      endpoint,
      streamPrefix: o['home-stream-prefix'],
      streams: o['uplink-predictions'] ? [...DEFAULT_UPLINK_STREAMS, 'predictions'] : [...DEFAULT_UPLINK_STREAMS],
      maxBytes: Math.round(o['uplink-max-mb'] * 1024 * 1024),
      policy: o['uplink-policy'],
      kbps: o['uplink-kbps'],
      intervalMs: Math.round(o['uplink-interval'] * 1000),
      retryMaxMs,
      retryBaseMs: Math.min(UPLINK_DEFAULTS.retryBaseMs, retryMaxMs),
    });
  } catch (error: unknown) {
    const issues = (error as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
    const flagOf = (path: string): string =>
      path === 'endpoint' ? '--home-endpoint' : path === 'streamPrefix' ? '--home-stream-prefix' : path;
    const detail = issues?.map((i) => `${flagOf(i.path.join('.'))}: ${i.message}`).join('; ');
    throw new UsageError(detail ?? (error instanceof Error ? error.message : String(error)));
  }
}
