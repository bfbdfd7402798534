/**
 * `npm run home`: the home alone, reading `uncertain-images`, `rejected-images` and `metrics`
 * from any Kinesis endpoint (the emulator of `npm start -- --serve`, another emulator, or AWS
 * with the stack's stream prefix), with its own checkpoints in the data folder, so a restart
 * resumes where it stopped and the home can run on another machine than the edge.
 *
 *   npm run home -- --endpoint http://127.0.0.1:4567
 *   npm run home -- --endpoint aws --stream-prefix edge-camera-classifier-dev-
 *
 * Every flag has an environment variable; flags win over variables, variables over defaults.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createKinesisClient } from '../functions/lib/kinesis';
import { DEFAULT_HOME_STREAMS_PORT, type HomeStreams, startHomeStreams } from '../local/home-streams';
import { EventSourceMappingRunner } from '../local/runner';
import { DEFAULT_DATA_DIR } from './dataset';
import { modelsRootFrom } from './models';
import { addHomeReaders } from './reader';
import { checkHomeAccess, DEFAULT_HOME_HOST, DEFAULT_HOME_PORT, startHomeServer } from './serve';
import { HomeStore } from './store';
import { DEFAULT_KEEP_DAYS, DEFAULT_MAX_GB, parseRetention, RetentionSettingError } from './store/retention';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Option {
  flag: string;
  value: string;
  env: string;
  default: string;
  help: string;
}

/** The options, their variables and defaults: the README's table mirrors this one. */
export const HOME_OPTIONS: Option[] = [
  {
    flag: 'endpoint',
    value: 'URL',
    env: 'KINESIS_ENDPOINT',
    default: '(required)',
    help: 'Kinesis endpoint to read, or "aws" for AWS itself',
  },
  {
    flag: 'stream-prefix',
    value: 'P',
    env: 'STREAM_PREFIX',
    default: '""',
    help: "the streams' name prefix (the stack's, on AWS)",
  },
  { flag: 'region', value: 'R', env: 'AWS_REGION', default: 'us-east-1', help: 'AWS region' },
  {
    flag: 'data',
    value: 'DIR',
    env: 'HOME_DATA',
    default: DEFAULT_DATA_DIR,
    help: 'data folder: frames, labels, metrics, checkpoints',
  },
  {
    flag: 'keep-days',
    value: 'N',
    env: 'HOME_KEEP_DAYS',
    default: String(DEFAULT_KEEP_DAYS),
    help: 'prune unlabelled frames older than N days, or off',
  },
  {
    flag: 'max-gb',
    value: 'X',
    env: 'HOME_MAX_GB',
    default: String(DEFAULT_MAX_GB),
    help: 'bound on the data folder in GB, or off',
  },
  { flag: 'port', value: 'P', env: 'HOME_PORT', default: String(DEFAULT_HOME_PORT), help: 'port of the page, 0 = any free port' },
  {
    flag: 'host',
    value: 'H',
    env: 'HOME_HOST',
    default: DEFAULT_HOME_HOST,
    help: 'address to listen on (not loopback: needs --token)',
  },
  { flag: 'token', value: 'T', env: 'HOME_TOKEN', default: 'none', help: 'every request must carry this token' },
  {
    flag: 'models',
    value: 'DIR',
    env: 'MODEL_ROOT',
    default: 'models/',
    help: "models folder the page's model buttons change",
  },
  {
    flag: 'streams-port',
    value: 'P',
    env: 'HOME_STREAMS_PORT',
    default: String(DEFAULT_HOME_STREAMS_PORT),
    help: 'with --serve-streams: its port, 0 = any free port',
  },
  {
    flag: 'persist',
    value: 'DIR',
    env: 'HOME_STREAMS_PERSIST',
    default: 'in memory',
    help: 'with --serve-streams: keep the home streams here',
  },
];

function helpText(): string {
  return [
    'usage: npm run home -- --endpoint URL|aws [options]',
    `  ${'flag'.padEnd(20)} ${'meaning'.padEnd(52)} ${'variable'.padEnd(17)} default`,
    ...HOME_OPTIONS.map((o) => `  ${`--${o.flag} ${o.value}`.padEnd(20)} ${o.help.padEnd(52)} ${o.env.padEnd(17)} ${o.default}`),
    `  ${'--serve-streams'.padEnd(20)} ${"hold the home streams in an emulator here (the edge's --home-endpoint)".padEnd(52)} ${'HOME_SERVE_STREAMS'.padEnd(17)} off`,
    '  --help               this text',
  ].join('\n');
}

class UsageError extends Error {}

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(HOME_OPTIONS.map((o) => [o.flag, { type: 'string' as const }])),
      help: { type: 'boolean', short: 'h' },
      'serve-streams': { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  const raw = (flag: string): string | undefined => {
    const value = (values as Record<string, unknown>)[flag];
    if (typeof value === 'string') return value;
    const env = process.env[(HOME_OPTIONS.find((o) => o.flag === flag) as Option).env];
    return env === undefined || env === '' ? undefined : env;
  };
  const portText = raw('port');
  const port = portText === undefined ? DEFAULT_HOME_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(portText)}`);
  const streamsPortText = raw('streams-port');
  const streamsPort = streamsPortText === undefined ? DEFAULT_HOME_STREAMS_PORT : Number(streamsPortText);
  if (!Number.isInteger(streamsPort) || streamsPort < 0 || streamsPort > 65535)
    throw new UsageError(`--streams-port must be an integer from 0 to 65535, got ${JSON.stringify(streamsPortText)}`);
  let retention: ReturnType<typeof parseRetention>;
  try {
    retention = parseRetention({ keepDays: raw('keep-days'), maxGb: raw('max-gb') });
  } catch (error: unknown) {
    if (error instanceof RetentionSettingError) throw new UsageError(error.message);
    throw error;
  }
  const serveStreams = values['serve-streams'] === true || ['true', '1'].includes(process.env.HOME_SERVE_STREAMS ?? '');
  return {
    help: values.help === true,
    serveStreams,
    streamsPort,
    streamsPersist: raw('persist') === undefined ? undefined : resolve(raw('persist') as string),
    endpoint: raw('endpoint'),
    prefix: raw('stream-prefix') ?? '',
    region: raw('region'),
    data: resolve(raw('data') ?? DEFAULT_DATA_DIR),
    retention,
    port,
    host: raw('host') ?? DEFAULT_HOME_HOST,
    token: raw('token'),
    models: modelsRootFrom({ MODEL_ROOT: raw('models') }),
  };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    console.log(helpText());
    return 0;
  }
  if (!options.endpoint && !options.serveStreams) {
    throw new UsageError(
      '--endpoint is required: the URL of a Kinesis emulator, or "aws" (or --serve-streams to hold the streams here)',
    );
  }
  const refused = checkHomeAccess(options.host, options.token);
  if (refused) throw new UsageError(refused);

  const store = new HomeStore(options.data, { retention: options.retention });
  // The cloud's stand-in: an emulator holding the home streams, which edges forward to.
  let streams: HomeStreams | undefined;
  if (options.serveStreams) {
    try {
      streams = await startHomeStreams({
        port: options.streamsPort,
        streamPrefix: options.prefix,
        ...(options.streamsPersist ? { persistDir: options.streamsPersist } : {}),
      });
    } catch (error: unknown) {
      store.close();
      throw error;
    }
    console.log(`home streams on ${streams.endpoint}`);
  }
  const sourceEndpoint = options.endpoint ?? (streams as HomeStreams).endpoint;
  const endpoint = sourceEndpoint === 'aws' ? undefined : sourceEndpoint;
  const client = createKinesisClient({
    ...(endpoint ? { endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
  });
  const runner = new EventSourceMappingRunner({
    client,
    streamPrefix: options.prefix,
    ...(options.region ? { region: options.region } : {}),
    checkpointFile: join(options.data, 'checkpoints.json'),
  });
  addHomeReaders(runner, store);
  let home: Awaited<ReturnType<typeof startHomeServer>> | undefined;
  try {
    await runner.start();
    home = await startHomeServer(store, {
      host: options.host,
      port: options.port,
      ...(options.token ? { token: options.token } : {}),
      modelsRoot: options.models,
      source: { endpoint: sourceEndpoint, prefix: options.prefix },
    });
  } catch (error: unknown) {
    await runner.stop();
    store.close();
    client.destroy();
    await streams?.stop();
    throw error;
  }
  console.log(`home on ${home.url}`);
  console.error(
    `reading ${options.prefix}uncertain-images, ${options.prefix}rejected-images, ${options.prefix}metrics from ${sourceEndpoint}; data in ${options.data}; Ctrl-C stops`,
  );

  await new Promise<void>((resolveStop) => {
    process.once('SIGINT', () => resolveStop());
    process.once('SIGTERM', () => resolveStop());
  });
  console.error('stopping...');
  await home.close();
  await runner.stop();
  store.close();
  client.destroy();
  await streams?.stop();
  return 0;
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
    if ((error as { code?: unknown }).code === 'EADDRINUSE') {
      console.error(`${(error as Error).message}\nanother process holds the port: stop it, or pass --port (0 picks a free one)`);
      process.exitCode = 1;
      return;
    }
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  },
);
