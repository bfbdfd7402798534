/**
 * `npm start`: the whole pipeline on this machine. Starts the embedded Kinesis emulator on
 * 127.0.0.1, creates the streams, runs the real handlers with the mappings of serverless.yml,
 * replays the MNIST test set through it with a progress bar, prints each metrics window, and
 * writes what was sent home into the output folder, ending with a summary.
 *
 *   npm start                              replay the 10,000 MNIST test frames once
 *   npm start -- --count 500 --camera Test every frame of a Test camera goes home
 *   npm start -- --serve                   keep serving on 127.0.0.1:4567 until Ctrl-C
 *   npm start -- --endpoint http://127.0.0.1:4566   use another emulator (or AWS)
 *
 * Every flag has an environment variable; flags win over variables, variables over defaults.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { framesFrom } from '../../functions/lib/camera-source/frames';
import { parseCameraRules } from '../../functions/lib/collection';
import { cameraId, type PublishSummary, publishFrames } from '../../functions/lib/camera-source/publish';
import { STREAMS } from '../../functions/lib/contracts';
import { renderMetricsTable } from '../../functions/lib/metrics/table';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { DEFAULT_EMULATOR_PORT } from '../emulator';
import { isEarlierFrame } from '../earlier-records';
import { LocalPipeline } from '../pipeline';
import { DEFAULT_RETAIN_CONSUMED_SECONDS } from '../emulator';
import { StateFileError, writeFileAtomic } from '../state-file';
import {
  DEFAULT_UPLINK_STREAMS,
  parseUplinkSettings,
  UPLINK_DEFAULTS,
  UPLINK_POLICIES,
  type UplinkSettings,
} from '../uplink/settings';
import { summaryLines as uplinkSummaryLines } from '../uplink/status';
import { DEFAULT_DATA_DIR } from '../../home/dataset';
import { checkHomeAccess, DEFAULT_HOME_HOST, DEFAULT_HOME_PORT, type RunningHome, startHomeServer } from '../../home/serve';
import { HomeStore } from '../../home/store';

// The SDK warns that releases after January 2027 need Node 22; this project pins its SDK
// version (package.json), so the warning would only clutter every local run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Frames in one pass over the MNIST test set. */
const MNIST_TEST_FRAMES = 10_000;

interface Option {
  flag: string;
  /** What the value is, in the help text (N, S, DIR...); none for switches. */
  value?: string;
  env: string;
  type: 'string' | 'boolean';
  default: string;
  help: string;
}

/** The options, their variables and defaults: the README's table mirrors this one. */
const OPTIONS: Option[] = [
  { flag: 'count', value: 'N', env: 'COUNT', type: 'string', default: 'all (10,000 per pass)', help: 'frames to publish' },
  {
    flag: 'camera',
    value: 'ID',
    env: 'CAMERA',
    type: 'string',
    default: 'Camera',
    help: 'camera parameter; the id is <camera>-<host>',
  },
  {
    flag: 'cameras',
    value: 'N',
    env: 'CAMERAS',
    type: 'string',
    default: '1',
    help: 'replay as N cameras <camera>-1..N (N partition keys)',
  },
  { flag: 'delay', value: 'S', env: 'DELAY', type: 'string', default: '0', help: 'seconds between frames' },
  { flag: 'repeat', value: 'N', env: 'REPEAT', type: 'string', default: '1', help: 'passes over the source, 0 = forever' },
  { flag: 'rate', value: 'R', env: 'RATE', type: 'string', default: '0', help: 'at most R frames per second, 0 = no cap' },
  { flag: 'source', value: 'SRC', env: 'SOURCE', type: 'string', default: 'mnist', help: '"mnist" or a folder of PNG files' },
  {
    flag: 'record-format',
    value: 'F',
    env: 'RECORD_FORMAT',
    type: 'string',
    default: 'json',
    help: 'camera-images records: json or png (tEXt fields)',
  },
  {
    flag: 'confidence',
    value: 'P',
    env: 'CONFIDENCE_THRESHOLD',
    type: 'string',
    default: '0.70',
    help: 'uncertain when probability <= P',
  },
  {
    flag: 'sample-rate',
    value: 'R',
    env: 'SAMPLE_CERTAIN_RATE',
    type: 'string',
    default: '0',
    help: 'share of certain frames also sent home (reason sampled)',
  },
  {
    flag: 'sample-cap',
    value: 'N',
    env: 'SAMPLE_CAP_PER_MINUTE',
    type: 'string',
    default: '10',
    help: 'at most N sampled frames per camera per minute',
  },
  {
    flag: 'camera-rules',
    value: 'JSON',
    env: 'CAMERA_RULES',
    type: 'string',
    default: 'none',
    help: 'per-camera overrides, JSON (see README)',
  },
  {
    flag: 'window',
    value: 'S',
    env: 'METRICS_WINDOW_SECONDS',
    type: 'string',
    default: '10',
    help: 'metrics tumbling window, seconds',
  },
  { flag: 'shards', value: 'N', env: 'CAMERA_SHARDS', type: 'string', default: '1', help: 'shards of camera-images' },
  {
    flag: 'parallelism',
    value: 'N',
    env: 'PARALLELISM',
    type: 'string',
    default: '1 (N with --cameras N)',
    help: 'classify batches in flight per shard (1-10)',
  },
  {
    flag: 'port',
    value: 'P',
    env: 'EMULATOR_PORT',
    type: 'string',
    default: String(DEFAULT_EMULATOR_PORT),
    help: 'emulator port on 127.0.0.1',
  },
  {
    flag: 'endpoint',
    value: 'URL',
    env: 'KINESIS_ENDPOINT',
    type: 'string',
    default: 'embedded emulator',
    help: 'use this Kinesis endpoint instead',
  },
  { flag: 'out', value: 'DIR', env: 'OUT_DIR', type: 'string', default: './out', help: 'home outputs folder' },
  {
    flag: 'state',
    value: 'DIR',
    env: 'STATE_DIR',
    type: 'string',
    default: './state',
    help: 'with --endpoint: checkpoints here; next run resumes',
  },
  {
    flag: 'from',
    value: 'WHERE',
    env: 'FROM',
    type: 'string',
    default: 'checkpoint',
    help: 'with --endpoint: checkpoint or trim-horizon',
  },
  {
    flag: 'persist',
    value: 'DIR',
    env: 'PERSIST_DIR',
    type: 'string',
    default: 'off (in memory)',
    help: 'keep streams + checkpoints here; a restart resumes',
  },
  {
    flag: 'retain-consumed',
    value: 'S',
    env: 'RETAIN_CONSUMED',
    type: 'string',
    default: String(DEFAULT_RETAIN_CONSUMED_SECONDS),
    help: 'drop records S s after local readers finish; all = keep',
  },
  {
    flag: 'serve',
    env: 'SERVE',
    type: 'boolean',
    default: 'false',
    help: 'keep serving until Ctrl-C (publishes only with --count)',
  },
  {
    flag: 'home-port',
    value: 'P',
    env: 'HOME_PORT',
    type: 'string',
    default: String(DEFAULT_HOME_PORT),
    help: 'home page port, 0 = any free port',
  },
  {
    flag: 'home-host',
    value: 'H',
    env: 'HOME_HOST',
    type: 'string',
    default: DEFAULT_HOME_HOST,
    help: 'home page address (not loopback: needs --token)',
  },
  {
    flag: 'token',
    value: 'T',
    env: 'HOME_TOKEN',
    type: 'string',
    default: 'none',
    help: 'every home page request must carry this token',
  },
  {
    flag: 'data',
    value: 'DIR',
    env: 'HOME_DATA',
    type: 'string',
    default: DEFAULT_DATA_DIR,
    help: 'home data folder: frames, labels (outlives runs)',
  },
  { flag: 'no-home', env: 'NO_HOME', type: 'boolean', default: 'false', help: 'do not serve the home page' },
  {
    flag: 'in-process',
    env: 'IN_PROCESS',
    type: 'boolean',
    default: 'false',
    help: 'run the functions in this thread, not one worker each',
  },
  { flag: 'quiet', env: 'QUIET', type: 'boolean', default: 'false', help: 'no progress bar or tables' },
  {
    flag: 'home-endpoint',
    value: 'URL',
    env: 'HOME_ENDPOINT',
    type: 'string',
    default: 'off',
    help: 'forward outputs to this home Kinesis endpoint (URL or "aws")',
  },
  {
    flag: 'home-stream-prefix',
    value: 'P',
    env: 'HOME_STREAM_PREFIX',
    type: 'string',
    default: "''",
    help: 'prefix of the stream names at home',
  },
  {
    flag: 'uplink-max-mb',
    value: 'MB',
    env: 'UPLINK_MAX_MB',
    type: 'string',
    default: String(UPLINK_DEFAULTS.maxMegabytes),
    help: 'most the uplink backlog holds at the edge',
  },
  {
    flag: 'uplink-policy',
    value: 'P',
    env: 'UPLINK_POLICY',
    type: 'string',
    default: UPLINK_DEFAULTS.policy,
    help: 'when the backlog is full: reject-new or drop-oldest',
  },
  {
    flag: 'uplink-kbps',
    value: 'K',
    env: 'UPLINK_KBPS',
    type: 'string',
    default: '0',
    help: 'uplink bandwidth cap, kilobits/s, 0 = none',
  },
  {
    flag: 'uplink-interval',
    value: 'S',
    env: 'UPLINK_INTERVAL',
    type: 'string',
    default: String(UPLINK_DEFAULTS.intervalSeconds),
    help: 'send a stream once its oldest record waited S s (or 500 wait)',
  },
  {
    flag: 'uplink-retry-max',
    value: 'S',
    env: 'UPLINK_RETRY_MAX',
    type: 'string',
    default: String(UPLINK_DEFAULTS.retryMaxMs / 1000),
    help: 'longest wait between uplink retries, seconds',
  },
  {
    flag: 'uplink-predictions',
    env: 'UPLINK_PREDICTIONS',
    type: 'boolean',
    default: 'false',
    help: 'forward every prediction home too',
  },
];

function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const flag = `--${o.flag}${o.value ? ` ${o.value}` : ''}`;
    return `  ${flag.padEnd(19)} ${o.help.padEnd(56)} ${o.env.padEnd(23)} ${o.default}`;
  });
  return [
    'usage: npm start -- [options]',
    `  ${'flag'.padEnd(19)} ${'meaning'.padEnd(56)} ${'variable'.padEnd(23)} default`,
    ...rows,
    '  --help              this text',
  ].join('\n');
}

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function parseOptions(argv: string[]) {
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
  const raw = (flag: string): string | undefined => {
    const option = OPTIONS.find((o) => o.flag === flag) as Option;
    const value = values[flag];
    if (typeof value === 'string') return value;
    if (value === true) return 'true';
    const env = process.env[option.env];
    return env === undefined || env === '' ? undefined : env;
  };
  const num = (flag: string, min: number, max: number, integer = false): number | undefined => {
    const value = raw(flag);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new UsageError(
        `--${flag} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
  const bool = (flag: string): boolean => {
    const value = raw(flag);
    return value === 'true' || value === '1';
  };
  return {
    help: values.help === true,
    count: num('count', 0, Number.MAX_SAFE_INTEGER, true),
    camera: raw('camera') ?? 'Camera',
    cameras: num('cameras', 1, 100, true) ?? 1,
    delay: num('delay', 0, 3600) ?? 0,
    repeat: num('repeat', 0, 1_000_000, true) ?? 1,
    rate: num('rate', 0, 1_000_000) ?? 0,
    source: raw('source') ?? 'mnist',
    recordFormat: recordFormat(raw('record-format')),
    confidence: num('confidence', 0, 1),
    sampleRate: num('sample-rate', 0, 1),
    sampleCap: num('sample-cap', 1, 1_000_000, true),
    cameraRules: cameraRules(raw('camera-rules')),
    window: num('window', 1, 900, true),
    shards: num('shards', 1, 100, true),
    parallelism: num('parallelism', 1, 10, true),
    port: num('port', 0, 65535, true) ?? DEFAULT_EMULATOR_PORT,
    endpoint: raw('endpoint'),
    out: resolve(raw('out') ?? './out'),
    persist: raw('persist') === undefined ? undefined : resolve(raw('persist') as string),
    state: resolve(raw('state') ?? './state'),
    from: startFrom(raw('from')),
    retainConsumed: retainConsumed(raw('retain-consumed')),
    serve: bool('serve'),
    quiet: bool('quiet'),
    inProcess: bool('in-process'),
    uplink: uplinkSettings(raw('home-endpoint'), {
      streamPrefix: raw('home-stream-prefix') ?? '',
      maxMegabytes: num('uplink-max-mb', 0.01, 1_000_000) ?? UPLINK_DEFAULTS.maxMegabytes,
      policy: raw('uplink-policy') ?? UPLINK_DEFAULTS.policy,
      kbps: num('uplink-kbps', 0, 100_000_000) ?? UPLINK_DEFAULTS.kbps,
      intervalSeconds: num('uplink-interval', 0, 3600) ?? UPLINK_DEFAULTS.intervalSeconds,
      retryMaxSeconds: num('uplink-retry-max', 0.01, 86_400) ?? UPLINK_DEFAULTS.retryMaxMs / 1000,
      predictions: bool('uplink-predictions'),
    }),
    home: !bool('no-home'),
    homePort: num('home-port', 0, 65535, true) ?? DEFAULT_HOME_PORT,
    homeHost: raw('home-host') ?? DEFAULT_HOME_HOST,
    token: raw('token'),
    data: resolve(raw('data') ?? DEFAULT_DATA_DIR),
  };
}

function startFrom(value: string | undefined): 'checkpoint' | 'trim-horizon' {
  if (value === undefined || value === 'checkpoint' || value === 'trim-horizon') return value ?? 'checkpoint';
  throw new UsageError(`--from must be checkpoint or trim-horizon, got ${JSON.stringify(value)}`);
}

/** The uplink's settings from the flags; undefined without --home-endpoint. */
function uplinkSettings(
  endpoint: string | undefined,
  o: {
    streamPrefix: string;
    maxMegabytes: number;
    policy: string;
    kbps: number;
    intervalSeconds: number;
    retryMaxSeconds: number;
    predictions: boolean;
  },
): UplinkSettings | undefined {
  if (endpoint === undefined) return undefined;
  if (!(UPLINK_POLICIES as readonly string[]).includes(o.policy)) {
    throw new UsageError(`--uplink-policy must be ${UPLINK_POLICIES.join(' or ')}, got ${JSON.stringify(o.policy)}`);
  }
  try {
    return parseUplinkSettings({
      endpoint,
      streamPrefix: o.streamPrefix,
      streams: o.predictions ? [...DEFAULT_UPLINK_STREAMS, 'predictions'] : [...DEFAULT_UPLINK_STREAMS],
      maxBytes: Math.round(o.maxMegabytes * 1024 * 1024),
      policy: o.policy as UplinkSettings['policy'],
      kbps: o.kbps,
      intervalMs: Math.round(o.intervalSeconds * 1000),
      retryMaxMs: Math.round(o.retryMaxSeconds * 1000),
      retryBaseMs: Math.min(UPLINK_DEFAULTS.retryBaseMs, Math.round(o.retryMaxSeconds * 1000)),
    });
  } catch (error: unknown) {
    const issues = (error as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
    const detail = issues
      ?.map(
        (i) =>
          `${i.path.join('.') === 'endpoint' ? '--home-endpoint' : i.path.join('.') === 'streamPrefix' ? '--home-stream-prefix' : i.path.join('.')}: ${i.message}`,
      )
      .join('; ');
    throw new UsageError(detail ?? (error instanceof Error ? error.message : String(error)));
  }
}

/** `--camera-rules`: checked here so a mistake is a usage error, not a failed cold start. */
function cameraRules(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    parseCameraRules(value);
  } catch (error: unknown) {
    throw new UsageError(`--camera-rules: ${error instanceof Error ? error.message : String(error)}`);
  }
  return value;
}

function recordFormat(value: string | undefined): 'json' | 'png' {
  if (value === undefined || value === 'json' || value === 'png') return value ?? 'json';
  throw new UsageError(`--record-format must be json or png, got ${JSON.stringify(value)}`);
}

/**
 * `--retain-consumed`: seconds, or undefined to keep every record ("all" or -1). The embedded
 * emulator otherwise holds every record for the streams' 24 h retention: a long --serve run
 * would grow without bound. The default keeps ~10 s of finished records readable with the AWS
 * CLI while bounding what they take: at 2,000 28x28 frames/s about 100 MB, at 15 640x480
 * frames/s about 90 MB (a minute would be five to six times as much).
 */
function retainConsumed(value: string | undefined): number | undefined {
  if (value === undefined) return DEFAULT_RETAIN_CONSUMED_SECONDS;
  if (value === 'all' || value === '-1') return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 31 * 24 * 3600) {
    throw new UsageError(`--retain-consumed must be seconds from 0 to ${31 * 24 * 3600}, or "all", got ${JSON.stringify(value)}`);
  }
  return n;
}

type Options = ReturnType<typeof parseOptions>;

/** A one-line progress bar on stderr (only when stderr is a terminal, unless forced). */
class Progress {
  private last = '';
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly enabled: boolean,
    private readonly render: () => string,
  ) {}
  start(): void {
    if (!this.enabled) return;
    this.timer = setInterval(() => this.draw(), 200);
  }
  draw(): void {
    if (!this.enabled) return;
    const line = this.render();
    if (line === this.last) return;
    this.last = line;
    process.stderr.write(`\r${line}\u001b[K`);
  }
  /** Clears the bar so other output can be printed, then redraws it. */
  around(print: () => void): void {
    if (this.enabled && this.last) process.stderr.write('\r\u001b[K');
    print();
    this.last = '';
    this.draw();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.enabled) {
      this.draw();
      process.stderr.write('\n');
    }
  }
}

function bar(done: number, total: number | undefined, width = 30): string {
  if (total === undefined || total <= 0) return `${done} frames`;
  const share = Math.min(1, done / total);
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${(share * 100).toFixed(0)}%`;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Camera `i`'s part of `total` frames split over `n` cameras. */
function share(total: number, n: number, i: number): number {
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

/**
 * One source read by several cameras: each frame goes to exactly one of them, and a camera
 * that stops (its count reached) does not end the source for the others.
 */
function shared<T>(source: AsyncGenerator<T>): AsyncIterable<T> {
  const iterator: AsyncIterator<T> = {
    next: () => source.next(),
    return: async () => ({ done: true, value: undefined }),
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

/** The pipeline with the options of the command line (and the home's readers when it is served). */
function startPipeline(
  options: Options,
  parallelism: number | undefined,
  homeStore: HomeStore | undefined,
  printWindow: (text: string) => void,
  uplinkLog: (line: string) => void,
): Promise<LocalPipeline> {
  return LocalPipeline.start({
    ...(options.endpoint ? { endpoint: options.endpoint, stateDir: options.state, from: options.from } : { port: options.port }),
    ...(options.persist ? { persistDir: options.persist } : {}),
    ...(options.retainConsumed !== undefined ? { retainConsumedSeconds: options.retainConsumed } : {}),
    outDir: options.out,
    ...(options.confidence !== undefined ? { confidence: options.confidence } : {}),
    ...(options.window !== undefined ? { windowSeconds: options.window } : {}),
    ...(options.shards !== undefined ? { shards: options.shards } : {}),
    ...(parallelism !== undefined ? { parallelism } : {}),
    isolation: options.inProcess ? 'in-process' : 'worker',
    env: {
      CAMERA: options.camera,
      DELAY: String(options.delay),
      REPEAT: String(options.repeat),
      SOURCE: options.source,
      ...(options.sampleRate !== undefined ? { SAMPLE_CERTAIN_RATE: String(options.sampleRate) } : {}),
      ...(options.sampleCap !== undefined ? { SAMPLE_CAP_PER_MINUTE: String(options.sampleCap) } : {}),
      ...(options.cameraRules !== undefined ? { CAMERA_RULES: options.cameraRules } : {}),
    },
    onWindow: (merged) => printWindow(`\n${renderMetricsTable(merged)}\n`),
    onResolve: () => console.error('reading the mappings from serverless.yml (sls print; cached after this run)...'),
    ...(homeStore ? { homeStore } : {}),
    ...(options.uplink ? { uplink: { settings: options.uplink, log: uplinkLog } } : {}),
  });
}

async function main(): Promise<number> {
  const options: Options = parseOptions(process.argv.slice(2));
  // Lambda keeps one partition key's records in order, so concurrency needs several keys:
  // with N cameras, N batches of one shard can be classified at once.
  const parallelism = options.parallelism ?? (options.cameras > 1 ? Math.min(options.cameras, 10) : undefined);
  let cameraIds: string[];
  try {
    cameraIds =
      options.cameras > 1
        ? range(options.cameras).map((i) => cameraId(`${options.camera}-${i + 1}`))
        : [cameraId(options.camera)];
  } catch (error: unknown) {
    throw new UsageError(`--camera: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (options.help) {
    console.log(helpText());
    return 0;
  }
  const interactive = !options.quiet && process.stderr.isTTY === true;
  let progress: Progress | undefined;
  const printWindow = (text: string): void => {
    if (options.quiet) return;
    if (progress) progress.around(() => console.log(text));
    else console.log(text);
  };
  // The uplink's down / up lines are printed even with --quiet: they are news, not progress.
  const uplinkLog = (line: string): void => {
    if (progress) progress.around(() => console.error(line));
    else console.error(line);
  };

  if (options.home) {
    const refused = checkHomeAccess(options.homeHost, options.token);
    if (refused) throw new UsageError(refused);
  }
  // Opened first: a data folder another home is using stops the run before anything starts.
  const homeStore = options.home ? new HomeStore(options.data) : undefined;
  let pipeline: LocalPipeline;
  try {
    pipeline = await startPipeline(options, parallelism, homeStore, printWindow, uplinkLog);
  } catch (error: unknown) {
    homeStore?.close();
    throw error;
  }
  let homeServer: RunningHome | undefined;
  if (homeStore) {
    try {
      homeServer = await startHomeServer(homeStore, {
        host: options.homeHost,
        port: options.homePort,
        ...(options.token ? { token: options.token } : {}),
        source: { endpoint: pipeline.endpoint, prefix: '' },
        ...(pipeline.uplink ? { uplinkStatus: pipeline.uplink.status.bind(pipeline.uplink) } : {}),
      });
    } catch (error: unknown) {
      await pipeline.stop();
      homeStore.close();
      if ((error as { code?: unknown }).code === 'EADDRINUSE') {
        throw new UsageError(
          `the home port ${options.homePort} is taken: stop what holds it, or pass --home-port (0 picks a free one) or --no-home`,
        );
      }
      throw error;
    }
    console.log(`home on ${homeServer.url}`);
  }
  const { home } = pipeline;
  const classify = pipeline.mapping('classify');
  if (pipeline.earlier && pipeline.earlier.records > 0) {
    console.error(
      options.from === 'trim-horizon'
        ? `warning: --from trim-horizon: the ${pipeline.earlier.records} records already in ${STREAMS.cameraImages} will be ` +
            'classified again and their outputs written again to the shared output streams'
        : `${pipeline.earlier.records} records already in ${STREAMS.cameraImages} from earlier runs: resuming from the ` +
            `checkpoints in ${pipeline.checkpointFile ?? 'memory'} (those behind them are not scored again)`,
    );
  }
  console.error(
    `kinesis ${pipeline.endpoint}${pipeline.emulator ? ' (embedded kinesalite, loopback only)' : ''}; ` +
      `outputs in ${options.out}; classify batch ${classify?.batchSize ?? '?'} x${classify?.parallelizationFactor ?? 1}, ` +
      `metrics window ${pipeline.mapping('aggregate-metrics')?.tumblingWindowInSeconds ?? '?'} s`,
  );
  if (pipeline.uplink) {
    const u = options.uplink as UplinkSettings;
    console.error(
      `uplink to ${u.endpoint}${u.streamPrefix ? ` (prefix ${u.streamPrefix})` : ''}: ${u.streams.join(', ')}; backlog up to ` +
        `${(u.maxBytes / 1024 / 1024).toFixed(0)} MB ${options.persist ? 'on disk' : 'in memory'}, ${u.policy} when full` +
        `${u.kbps > 0 ? `, ${u.kbps} kbit/s` : ''}; status in ${options.out}/uplink.json`,
    );
  }

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals += 1;
    if (signals > 1) process.exit(130); // a second Ctrl-C does not wait
    console.error('\nstopping (Ctrl-C again to quit at once)...');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const publish = !options.serve || options.count !== undefined;
  const expected = publish
    ? (options.count ?? (options.source === 'mnist' && options.repeat > 0 ? MNIST_TEST_FRAMES * options.repeat : undefined))
    : undefined;
  let published = 0;
  progress = new Progress(interactive, () => {
    const arrived = home.counts.predicted + home.counts.rejected;
    const trimmed = pipeline.trimmer ? `  trimmed ${pipeline.trimmer.total}` : '';
    return `${bar(arrived, expected)}  published ${published}  uncertain ${home.counts.uncertain}  rejected ${home.counts.rejected}${trimmed}`;
  });
  progress.start();

  const started = performance.now();
  const startedAt = Date.now();
  let summary: PublishSummary | undefined;
  let framesInStream: number | undefined;
  try {
    if (options.serve) {
      progress.around(() =>
        console.error(
          `serving on ${pipeline.endpoint}: put PNG frames into "${STREAMS.cameraImages}" and read ` +
            `${[STREAMS.predictions, STREAMS.uncertainImages, STREAMS.rejectedImages, STREAMS.metrics].join(', ')}; Ctrl-C stops`,
        ),
      );
    }
    if (publish) {
      const writer = new KinesisStreamWriter(pipeline.client);
      const frames = shared(framesFrom(options.source, options.repeat));
      const perCamera = cameraIds.map(() => 0);
      const summaries = await Promise.all(
        cameraIds.map((camera, i) =>
          publishFrames(frames, writer, {
            camera,
            stream: STREAMS.cameraImages,
            recordFormat: options.recordFormat,
            delay: options.delay,
            ...(options.count !== undefined ? { count: share(options.count, cameraIds.length, i) } : {}),
            rate: options.rate / cameraIds.length,
            signal: stop.signal,
            onProgress: (p) => {
              perCamera[i] = p.published;
              published = perCamera.reduce((a, b) => a + b, 0);
            },
          }),
        ),
      );
      summary = summaries.reduce((total, s) => ({
        ...total,
        published: total.published + s.published,
        failed: total.failed + s.failed,
        labelled: total.labelled + s.labelled,
      }));
      published = summary.published;
    }
    if (options.serve) {
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    // Let what is in the streams finish (bounded after Ctrl-C), then close the last window.
    await pipeline.drain(stop.signal.aborted ? 15_000 : 600_000).catch((error: unknown) => {
      console.error(`\nnot everything finished: ${error instanceof Error ? error.message : String(error)}`);
    });
    // A resumed run's input includes what earlier runs published into the persisted stream,
    // and a served one's what other clients put: count the stream itself.
    if (options.persist || (options.serve && pipeline.emulator)) {
      framesInStream = await pipeline.countRecords(STREAMS.cameraImages);
    }
    if (pipeline.uplink && pipeline.uplink.backlog.records > 0) {
      // Persisted, the backlog waits on disk for the next start; in memory it would be lost.
      const owed = await pipeline.uplink.drain(stop.signal.aborted || options.persist ? 10_000 : 60_000, stop.signal);
      if (owed > 0) {
        progress.around(() =>
          console.error(
            options.persist
              ? `uplink: ${owed} records not yet acknowledged by the home; kept in ${options.persist}/uplink, sent on the next start`
              : `uplink: ${owed} records not acknowledged by the home are dropped with this process (listed in uplink-dropped.jsonl); --persist keeps them`,
          ),
        );
      }
    }
  } finally {
    progress.stop();
    await homeServer?.close();
    await pipeline.stop();
    homeStore?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const seconds = (performance.now() - started) / 1000;
  const counts = home.counts;
  const framesIn = framesInStream ?? summary?.published ?? counts.predicted + counts.rejected;
  const outputSpan = home.lastOutputAt > 0 ? (home.lastOutputAt - home.firstOutputAt) / 1000 : 0;
  // Publish start to the last frame's output arriving home: the end-to-end time of the run.
  const pipelineSeconds = home.lastOutputAt > startedAt ? (home.lastOutputAt - startedAt) / 1000 : seconds;
  const [p50, p99] = home.endToEnd.percentiles([50, 99]);
  // Against a shared endpoint only this run's frames count: earlier runs' are reported apart.
  const { earlier } = pipeline;
  const isEarlier = (frameId: string): boolean => (earlier ? isEarlierFrame(earlier, frameId) : false);
  let deadLetteredFrames = 0;
  let earlierDeadLettered = 0;
  for (const d of pipeline.runner.deadLetters) {
    if (!d.KinesisBatchInfo.streamArn.endsWith(`/${STREAMS.cameraImages}`)) continue;
    for (const r of d.records) {
      if (isEarlier(`${d.KinesisBatchInfo.shardId}-${r.sequenceNumber}`)) earlierDeadLettered += 1;
      else deadLetteredFrames += 1;
    }
  }
  const earlierFinished = counts.earlier.predicted + counts.earlier.rejected + earlierDeadLettered;
  const result = {
    frames_in: framesIn,
    predicted: counts.predicted,
    uncertain: counts.uncertain,
    rejected: counts.rejected,
    accuracy: counts.labelled > 0 ? Math.round((counts.correct / counts.labelled) * 1e5) / 1e5 : null,
    labelled: counts.labelled,
    frames_per_second: pipelineSeconds > 0 ? Math.round((counts.predicted + counts.rejected) / pipelineSeconds) : 0,
    seconds: Math.round(pipelineSeconds * 1000) / 1000,
    output_span_seconds: Math.round(outputSpan * 1000) / 1000,
    latency_p50_seconds: p50 ?? null,
    latency_p99_seconds: p99 ?? null,
    // Frames neither predicted, rejected nor held by the dead-letter file: lost.
    unaccounted: Math.max(0, framesIn - counts.predicted - counts.rejected - deadLetteredFrames),
    publish_failed: summary?.failed ?? 0,
    dead_lettered: pipeline.runner.deadLetters.length,
    dead_lettered_frames: deadLetteredFrames,
    duplicates_dropped: counts.duplicates,
    unreadable_outputs: counts.unreadable,
    rejected_by_reason: counts.rejectedByReason,
    uncertain_by_reason: counts.uncertainByReason,
    // Shadow scoring over the run: frames both models scored, and how many they agreed on.
    shadow: [...home.shadowTotals.values()],
    metrics_windows: home.windowCount,
    // Records the embedded emulator deleted once every in-process reader had finished them.
    trimmed_records: pipeline.trimmer?.total ?? 0,
    model_versions: [...home.modelVersions],
    confidence: Number(process.env.CONFIDENCE_THRESHOLD),
    cameras: cameraIds,
    endpoint: pipeline.endpoint,
    ...(earlier
      ? {
          // Records camera-images held before this run; those finished now were left unfinished
          // by an earlier run (or re-read with --from trim-horizon); the rest were skipped.
          earlier_records: earlier.records,
          earlier_finished: earlierFinished,
          earlier_skipped: Math.max(0, earlier.records - earlierFinished),
          state_file: pipeline.checkpointFile ?? null,
        }
      : {}),
    ...(pipeline.uplink ? { uplink: pipeline.uplink.status() } : {}),
  };
  writeFileAtomic(home.path('summary'), `${JSON.stringify(result, null, 2)}\n`);
  if (!options.quiet) {
    const pct = (n: number) => (framesIn > 0 ? ` (${((100 * n) / framesIn).toFixed(1)}%)` : '');
    console.log(
      [
        '',
        `frames in   ${framesIn}`,
        `predicted   ${counts.predicted}${pct(counts.predicted)}`,
        `uncertain   ${counts.uncertain}${pct(counts.uncertain)}  (sent home as PNG + JSON)`,
        `rejected    ${counts.rejected}${pct(counts.rejected)}`,
        `accuracy    ${result.accuracy === null ? '-' : `${(result.accuracy * 100).toFixed(2)}% of ${counts.labelled} labelled`}`,
        `throughput  ${result.frames_per_second} frames/s end to end (${result.seconds} s)`,
        `latency     p50 ${p50 === null || p50 === undefined ? '-' : `${(p50 * 1000).toFixed(0)} ms`}, p99 ${p99 === null || p99 === undefined ? '-' : `${(p99 * 1000).toFixed(0)} ms`} capture to scoring`,
        ...(earlier
          ? [
              `earlier     ${earlier.records} records from before this run: ${earlierFinished} finished now, ` +
                `${Math.max(0, earlier.records - earlierFinished)} skipped (not counted above)`,
            ]
          : []),
        `dead-letter ${result.dead_lettered} batches (${deadLetteredFrames} frames, see dead-letter.jsonl)   duplicates dropped ${counts.duplicates}   unaccounted ${result.unaccounted}`,
        ...(pipeline.trimmer
          ? [`emulator    ${pipeline.trimmer.total} finished records deleted (--retain-consumed ${options.retainConsumed} s)`]
          : []),
        ...(pipeline.uplink ? uplinkSummaryLines(pipeline.uplink.status()) : []),
        ...[...home.shadowTotals.values()].map(
          (s) =>
            `shadow      ${s.candidate} agreed with ${s.current} on ${s.agree} of ${s.count} frames` +
            `${s.labelled > 0 ? ` (labelled ${s.labelled}: ${s.current_correct} vs ${s.candidate_correct} right)` : ''}`,
        ),
        `outputs     ${options.out}`,
      ].join('\n'),
    );
  }
  // Records an in-memory uplink could not send before exit are lost to the home: not a clean run.
  const uplinkLost = result.uplink
    ? Object.values(result.uplink.streams).reduce((n, s) => n + (s.dropped['not-sent-before-exit'] ?? 0), 0)
    : 0;
  return result.unaccounted === 0 && result.dead_lettered === 0 && uplinkLost === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && /Unknown option|argument/.test(error.message))) {
      console.error(`${error.message}\n\n${helpText()}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof StateFileError) {
      console.error(error.message);
      process.exitCode = 1;
      return;
    }
    if ((error as { code?: unknown }).code === 'EADDRINUSE') {
      console.error(`${(error as Error).message}\nanother process holds the port: stop it, or pass --port (0 picks a free one)`);
      process.exitCode = 1;
      return;
    }
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
