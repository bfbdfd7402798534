/**
 * The whole pipeline on one machine: the embedded emulator (or any Kinesis endpoint), the
 * streams, the real handlers run by the event source mapping runner with the mappings of
 * serverless.yml, and the home outputs in a folder. `npm start` drives it; tests and the
 * benchmark use it too.
 */
import { dirname, join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import { GetShardIteratorCommand, type KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { getRecordsRaw } from './runner/get-records-raw';
import { type Config, loadConfig } from '../functions/lib/config';
import { createKinesisClient } from '../functions/lib/kinesis';
import { useHostKinesisClient } from '../functions/lib/stream-writer';
import { DirectKinesisClient } from './emulator/direct-client';
import { osThreadId } from './thread-id';
import { STREAMS } from '../functions/lib/contracts';
import { DEFAULT_BACKLOG_BYTES, DEFAULT_EMULATOR_PORT, ensureStreams, KinesisEmulator } from './emulator';
import { HandlerPool } from './runner/handler-pool';
import { HOME_FILES, HomeOutputs, safeFileName } from './home';
import { applyOverrides, loadServiceDefinition, REPO_ROOT, type ServiceDefinition, type StreamMapping } from './runner/mappings';
import { EventSourceMappingRunner, type InvocationReport, type RunnerLogger, type StreamHandler } from './runner';
import { ConsumedRecordTrimmer } from './emulator';
import { type EarlierRecords, isEarlierFrame, scanEarlierRecords } from './earlier-records';
import { createHash } from 'node:crypto';
import { Uplink } from './uplink/uplink';
import type { UplinkSettings } from './uplink/settings';
import type { MetricsDocument } from '../functions/lib/metrics/document';
import { COUNTED_FRAMES_FOLDER } from '../functions/lib/metrics/counted-frames-store';
import { addHomeReaders } from '../home/reader';
import type { HomeStore } from '../home/store';

export interface LocalPipelineOptions {
  /** Use this Kinesis endpoint instead of starting the embedded emulator. */
  endpoint?: string;
  /** Endpoint the handlers write to, when it differs from the runner's (a fault-injecting proxy in tests). */
  handlerEndpoint?: string;
  /**
   * On the direct path: where the handlers' stream writer opens its ports, when it differs from
   * the runner's (a fault-injecting relay in tests, the direct counterpart of `handlerEndpoint`).
   */
  handlerDirectPort?: () => MessagePort;
  /** Embedded emulator port on 127.0.0.1 (default 4567; 0 picks a free one). */
  port?: number;
  /** Keep the emulator's data and the runner's checkpoints here, so a restart resumes. */
  persistDir?: string;
  /**
   * With `endpoint`: keep the runner's checkpoints here, in a folder per endpoint, so the
   * next run against the same endpoint continues where this one stopped (unset: in memory,
   * and every run starts at its own start).
   */
  stateDir?: string;
  /**
   * With `endpoint`: where consumers without a checkpoint start. `checkpoint` (default): this
   * run's start, so no earlier record is scored again; `trim-horizon`: the oldest record, and
   * saved checkpoints are ignored (re-scoring on purpose).
   */
  from?: 'checkpoint' | 'trim-horizon';
  /**
   * How the pipeline's own readers and writers (the runner, the handlers' stream writer, the
   * camera source through {@link LocalPipeline.client}) reach the embedded emulator: `direct`,
   * kinesalite's actions in this process with record data as bytes, or `http`, the Kinesis API
   * over loopback as external clients use it. Default: LOCAL_TRANSPORT, else `direct`. With
   * `client` or `handlerEndpoint` the parts concerned use HTTP regardless. With `endpoint`,
   * HTTP unless `direct` is asked for here, which needs that endpoint's emulator to run in this
   * process (tests that stop and restart it).
   */
  transport?: Transport;
  /**
   * Bytes of camera-images records the embedded emulator holds at most while records are
   * trimmed once consumed (`retainConsumedSeconds`): past it the camera's writes are refused as
   * throttled until the pipeline catches up (default {@link DEFAULT_BACKLOG_BYTES}).
   */
  maxBacklogBytes?: number;
  /** Home outputs folder. */
  outDir: string;
  /** CONFIDENCE_THRESHOLD for classify (default: serverless.yml's). */
  confidence?: number;
  /** Tumbling window of the metrics aggregator, seconds (default: serverless.yml's). */
  windowSeconds?: number;
  /** Shards of camera-images (default: serverless.yml's). */
  shards?: number;
  /** ParallelizationFactor of classify: concurrent batches per shard (default: serverless.yml's). */
  parallelism?: number;
  /** Environment for the handlers besides the above (e.g. TEST_CAMERA_PREFIX, LOG_LEVEL). */
  env?: Record<string, string>;
  /** Replace a function's handler (key as in serverless.yml); the real module is loaded otherwise. */
  handlers?: Record<string, StreamHandler>;
  /** An already resolved definition (skips `sls print`). */
  definition?: ServiceDefinition;
  /** Kinesis client for the handlers' side is created by them; this one serves runner and home. */
  client?: KinesisClient;
  onInvocation?: (report: InvocationReport) => void;
  /** Called when serverless.yml has to be resolved with the framework (not cached yet). */
  onResolve?: () => void;
  onWindow?: (merged: MetricsDocument) => void;
  logger?: RunnerLogger;
  /**
   * Where the functions run: each concurrent invocation in its own worker thread, like a
   * Lambda container (default), or all in this thread.
   */
  isolation?: 'worker' | 'in-process';
  /** Runner retry base delay (ms). */
  retryBaseDelayMs?: number;
  /**
   * Delete records from the embedded emulator once every consumer in this process (the
   * functions' mappings and the home readers) has finished them and this many seconds have
   * passed (0 = at once). Unset keeps every record for the stream's retention, as kinesalite
   * does. Never applies with `endpoint`: other readers may need the records there.
   */
  retainConsumedSeconds?: number;
  /** Time between trimming passes, ms (default: see {@link ConsumedRecordTrimmer}). */
  trimIntervalMs?: number;
  /**
   * Forward output streams to a home Kinesis endpoint through the store-and-forward uplink
   * (backlog in `<persistDir>/uplink` with `persistDir`, status and dropped records in the
   * output folder).
   */
  uplink?: { settings: UplinkSettings; log?: (line: string) => void };
  /** The home application's store: its readers run on this runner, so trimming waits for them too. */
  homeStore?: HomeStore;
}

/** The two ways the pipeline's own readers and writers reach the embedded emulator. */
export type Transport = 'direct' | 'http';

/**
 * Record data each shard's consumer reads ahead of its handler: enough to keep a couple of
 * classify batches of large frames (6 MB each at most) ready, little enough that a backlog of
 * them stays in the emulator instead of in the runner's memory (32 MiB ran no faster).
 */
const READ_AHEAD_BYTES = 16 * 1024 * 1024;

/** The transport asked for: the option, else LOCAL_TRANSPORT, else direct. */
export function transportOf(option: Transport | undefined): Transport {
  const chosen = option ?? process.env.LOCAL_TRANSPORT ?? 'direct';
  if (chosen !== 'direct' && chosen !== 'http')
    throw new Error(`LOCAL_TRANSPORT must be direct or http, got ${JSON.stringify(chosen)}`);
  return chosen;
}

/** Files the uplink writes into the output folder. */
export const UPLINK_FILES = { status: 'uplink.json', dropped: 'uplink-dropped.jsonl' } as const;

/** A runner mapping for a local reader of an output stream (home readers, the uplink). */
function readerMapping(functionName: string, stream: string): Parameters<EventSourceMappingRunner['add']>[0] {
  return {
    functionName,
    stream,
    batchSize: 10_000,
    batchWindowSeconds: 0,
    startingPosition: 'TRIM_HORIZON',
    parallelizationFactor: 1,
    reportBatchItemFailures: false,
    bisectBatchOnFunctionError: false,
    maximumRetryAttempts: -1,
    maximumRecordAgeInSeconds: -1,
    tumblingWindowInSeconds: 0,
    onFailure: undefined,
    timeoutSeconds: 300,
  };
}

/** The streams' base names; run locally with no prefix, they are the stream names. */
export const OUTPUT_STREAMS = [STREAMS.predictions, STREAMS.uncertainImages, STREAMS.rejectedImages, STREAMS.metrics] as const;

/** Environment variables the handlers read, set for the in-process handlers before they load. */
function handlerEnvironment(
  definition: ServiceDefinition,
  options: LocalPipelineOptions,
  endpoint: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(definition.environment)) {
    if (key === 'NODE_OPTIONS' || key === 'STREAM_PREFIX') continue;
    // What the user exported wins over serverless.yml's defaults.
    env[key] = process.env[key] ?? value;
  }
  env.STREAM_PREFIX = '';
  env.KINESIS_ENDPOINT = endpoint;
  // The embedded pipeline prints its own tables; CloudWatch EMF lines would drown them.
  env.POWERTOOLS_METRICS_DISABLED = process.env.POWERTOOLS_METRICS_DISABLED ?? 'true';
  env.LOG_LEVEL = process.env.LOG_LEVEL ?? 'WARN';
  if (options.confidence !== undefined) env.CONFIDENCE_THRESHOLD = String(options.confidence);
  if (options.windowSeconds !== undefined) env.METRICS_WINDOW_SECONDS = String(options.windowSeconds);
  if (options.parallelism !== undefined) env.PARALLELISM = String(options.parallelism);
  return { ...env, ...options.env };
}

function handlerLocation(mapping: StreamMapping): { modulePath: string; exportName: string } {
  const dot = mapping.handler.lastIndexOf('.');
  return { modulePath: join(REPO_ROOT, mapping.handler.slice(0, dot)), exportName: mapping.handler.slice(dot + 1) };
}

async function loadHandler(mapping: StreamMapping, writerClient: KinesisClient | undefined): Promise<StreamHandler> {
  const { modulePath, exportName } = handlerLocation(mapping);
  if (writerClient) useHostKinesisClient(writerClient);
  // The handler modules read their configuration at load time: required only now, after
  // the environment is set, exactly as Lambda loads them in a fresh container.
  const loaded = require(modulePath) as Record<string, unknown>;
  const handler = loaded[exportName];
  if (typeof handler !== 'function') throw new Error(`${mapping.handler}: no exported function ${exportName}`);
  // Asynchronous cold-start work (the model session) must succeed before the first event.
  await loaded.ready;
  return handler as StreamHandler;
}

/**
 * The state folder's subfolder for one endpoint: readable (host and port) and unique (a
 * digest of the whole URL), so two endpoints never share checkpoints.
 */
export function endpointStateFolder(endpoint: string): string {
  let readable = endpoint;
  try {
    readable = new URL(endpoint).host;
  } catch {
    // not a URL: the digest keeps it apart
  }
  const digest = createHash('sha256').update(endpoint).digest('hex').slice(0, 12);
  return `${safeFileName(readable, 60)}-${digest}`;
}

/** A running local pipeline. */
export class LocalPipeline {
  private constructor(
    readonly endpoint: string,
    readonly client: KinesisClient,
    readonly runner: EventSourceMappingRunner,
    readonly home: HomeOutputs,
    readonly definition: ServiceDefinition,
    readonly emulator: KinesisEmulator | undefined,
    private readonly ownsClient: boolean,
    private readonly pools: HandlerPool[] = [],
    /** Deletes consumed records from the embedded emulator; undefined when it keeps them. */
    readonly trimmer?: ConsumedRecordTrimmer,
    /** With `endpoint`: what camera-images held before this run (read before anything was published). */
    readonly earlier?: EarlierRecords,
    /** Where the runner's checkpoints are kept; undefined in memory. */
    readonly checkpointFile?: string,
  ) {}

  /** The store-and-forward uplink to the home endpoint, when one was asked for. */
  uplink: Uplink | undefined;

  /** How the pipeline's own readers and writers reach the emulator. */
  transport: Transport = 'http';

  /** The direct client given to handlers in this thread, closed at stop. */
  private hostClient: DirectKinesisClient | undefined;

  /**
   * The Kinesis client handlers in this thread write with (the direct path's), or undefined when
   * they write to their configured endpoint. For a handler module loaded in a separate module
   * registry (a test's), which must be given it through its own useHostKinesisClient.
   */
  get handlerKinesisClient(): KinesisClient | undefined {
    return this.hostClient;
  }

  /** The environment the handlers were loaded with: this process's plus the local settings. */
  handlerEnv: Readonly<NodeJS.ProcessEnv> = {};

  /** The configuration the handlers run with, read from their environment as they read it. */
  handlerConfig(): Config {
    return loadConfig(this.handlerEnv);
  }

  /**
   * Starts the emulator (unless an endpoint is given), creates missing streams, loads the
   * handlers with the local environment and starts every mapping plus the home readers.
   * Rejects when serverless.yml cannot be resolved, the port is taken or a stream is missing.
   */
  static async start(options: LocalPipelineOptions): Promise<LocalPipeline> {
    const base =
      options.definition ??
      (await loadServiceDefinition({ stage: 'local', ...(options.onResolve ? { onResolve: options.onResolve } : {}) }));
    const cameraStream = STREAMS.cameraImages;
    const definition = applyOverrides(base, {
      ...(options.windowSeconds !== undefined ? { windowSeconds: options.windowSeconds } : {}),
      ...(options.parallelism !== undefined ? { parallelizationFactor: options.parallelism } : {}),
      ...(options.shards !== undefined ? { shards: { [cameraStream]: options.shards } } : {}),
    });
    const transport = transportOf(options.transport);
    // The backlog bound needs the trimmer to release what was consumed.
    const bounded = options.retainConsumedSeconds !== undefined;
    const emulator = options.endpoint
      ? undefined
      : await KinesisEmulator.start({
          port: options.port ?? DEFAULT_EMULATOR_PORT,
          ...(options.persistDir ? { persistPath: join(options.persistDir, 'kinesis') } : {}),
          ...(bounded ? { backlogLimits: { [cameraStream]: options.maxBacklogBytes ?? DEFAULT_BACKLOG_BYTES } } : {}),
        });
    const endpoint = options.endpoint ?? (emulator as KinesisEmulator).endpoint;
    const openDirectPort = directPath(emulator, endpoint, options.endpoint ? options.transport : transport);
    const client =
      options.client ??
      (openDirectPort
        ? new DirectKinesisClient(undefined, definition.region, openDirectPort)
        : createKinesisClient({ endpoint }));
    // The handlers' stream writer: through the direct path unless told to write elsewhere.
    const handlersDirect =
      openDirectPort && options.handlerEndpoint === undefined ? (options.handlerDirectPort ?? openDirectPort) : undefined;
    let hostClient: DirectKinesisClient | undefined;
    const pools: HandlerPool[] = [];
    let uplink: Uplink | undefined;
    try {
      const declared = new Map(definition.streams.map((s) => [s.name, s.shards]));
      // shadow-scores carries a shadow candidate's answers from classify to the aggregator.
      const names = [cameraStream, ...OUTPUT_STREAMS, STREAMS.shadowScores];
      await ensureStreams(
        client,
        names.map((name) => ({ name, shards: declared.get(name) ?? 1 })),
      );
      const checkpointFile = options.persistDir
        ? join(options.persistDir, 'checkpoints.json')
        : options.endpoint && options.stateDir
          ? join(options.stateDir, endpointStateFolder(endpoint), 'checkpoints.json')
          : undefined;
      Object.assign(process.env, handlerEnvironment(definition, options, options.handlerEndpoint ?? endpoint));
      // Beside the checkpoints: the metrics aggregator's memory of the frames its closed windows
      // counted, so that a restart (which redelivers what followed the last checkpoint) does
      // not count those frames again in a later window.
      if (checkpointFile) process.env.METRICS_COUNTED_FRAMES_DIR = join(dirname(checkpointFile), COUNTED_FRAMES_FOLDER);
      else delete process.env.METRICS_COUNTED_FRAMES_DIR;

      // A shared endpoint holds earlier runs' records: note where each shard stood, so that
      // this run's frames can be told from theirs.
      const earlier = options.endpoint ? await scanEarlierRecords(client, cameraStream) : undefined;
      const home = new HomeOutputs(options.outDir, {
        resume: options.persistDir !== undefined,
        ...(options.onWindow ? { onWindow: options.onWindow } : {}),
        ...(earlier ? { isEarlier: (frameId: string) => isEarlierFrame(earlier, frameId) } : {}),
      });
      const runner = new EventSourceMappingRunner({
        maxBufferedBytes: READ_AHEAD_BYTES,
        client,
        streamPrefix: '',
        region: definition.region,
        deadLetterFile: home.path('deadLetter'),
        ...(checkpointFile ? { checkpointFile } : {}),
        ...(options.endpoint ? { firstPosition: options.from === 'trim-horizon' ? 'trim-horizon' : 'run-start' } : {}),
        ...(options.onInvocation ? { onInvocation: options.onInvocation } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
        ...(options.retryBaseDelayMs !== undefined ? { retryBaseDelayMs: options.retryBaseDelayMs } : {}),
      });
      const poolsByFunction = new Map<string, HandlerPool>();
      // Handlers in this thread write through one direct client, given before they load.
      const hostWriterClient = (): DirectKinesisClient | undefined => {
        if (!handlersDirect) return undefined;
        hostClient ??= new DirectKinesisClient(undefined, definition.region, handlersDirect);
        return hostClient;
      };
      if (options.handlers && Object.keys(options.handlers).length > 0) {
        // Overrides may load the real handler modules lazily, at their first event.
        const writerClient = hostWriterClient();
        if (writerClient) useHostKinesisClient(writerClient);
      }
      for (const mapping of definition.mappings) {
        const override = options.handlers?.[mapping.functionKey];
        if (override) {
          runner.add(mapping, override);
        } else if ((options.isolation ?? 'worker') === 'worker') {
          // One pool per function, whatever the number of its mappings (aggregate-metrics reads two streams).
          let pool = poolsByFunction.get(mapping.functionKey);
          if (!pool) {
            const { modulePath, exportName } = handlerLocation(mapping);
            pool = new HandlerPool(`${modulePath}.ts`, exportName, handlersDirect ? { openDirectPort: handlersDirect } : {});
            poolsByFunction.set(mapping.functionKey, pool);
            pools.push(pool);
          }
          runner.add(mapping, pool.handler);
        } else {
          runner.add(mapping, await loadHandler(mapping, hostWriterClient()));
        }
      }
      // Cold starts before the first record (and a handler that cannot load fails start-up).
      await Promise.all(pools.map((pool) => pool.warm()));
      const homeHandlers = home.handlers();
      for (const stream of OUTPUT_STREAMS) {
        runner.add(readerMapping(`home-${stream}`, stream), homeHandlers[stream] as StreamHandler);
      }
      if (options.uplink) {
        // A reader like the home readers: the trimmer keeps each record until it is in the backlog.
        uplink = new Uplink({
          settings: options.uplink.settings,
          ...(options.persistDir ? { dir: join(options.persistDir, 'uplink') } : {}),
          droppedFile: join(options.outDir, UPLINK_FILES.dropped),
          statusFile: join(options.outDir, UPLINK_FILES.status),
          ...(options.uplink.log ? { log: options.uplink.log } : {}),
        });
        for (const stream of uplink.streams)
          runner.add(readerMapping(`uplink-${stream}`, stream), uplink.handler(stream) as StreamHandler);
      }
      if (options.homeStore) addHomeReaders(runner, options.homeStore);
      if (options.from === 'trim-horizon') runner.checkpoints.clear();
      await runner.start();
      uplink?.start();
      let trimmer: ConsumedRecordTrimmer | undefined;
      if (emulator && options.retainConsumedSeconds !== undefined) {
        trimmer = new ConsumedRecordTrimmer(emulator, runner, {
          retainSeconds: options.retainConsumedSeconds,
          ...(options.trimIntervalMs !== undefined ? { intervalMs: options.trimIntervalMs } : {}),
          ...(options.logger ? { logger: options.logger } : {}),
        });
        trimmer.start();
      }
      const pipeline = new LocalPipeline(
        endpoint,
        client,
        runner,
        home,
        definition,
        emulator,
        options.client === undefined,
        pools,
        trimmer,
        earlier,
        checkpointFile,
      );
      pipeline.uplink = uplink;
      pipeline.transport = openDirectPort && options.client === undefined ? 'direct' : 'http';
      pipeline.hostClient = hostClient;
      pipeline.handlerEnv = { ...process.env };
      return pipeline;
    } catch (error: unknown) {
      await uplink?.stop();
      await Promise.all(pools.map((pool) => pool.close()));
      if (options.client === undefined) client.destroy();
      if (hostClient) releaseHostClient(hostClient);
      await emulator?.stop();
      throw error;
    }
  }

  /** The mapping of a function, as run (overrides applied). */
  mapping(functionKey: string): StreamMapping | undefined {
    return this.definition.mappings.find((m) => m.functionKey === functionKey);
  }

  /**
   * Waits until everything in the streams has been processed and read home, then ends the
   * open metrics windows (their documents are written and read home too).
   */
  async drain(timeoutMs = 600_000): Promise<void> {
    await this.runner.waitForIdle(timeoutMs);
    await this.runner.closeWindows();
    await this.runner.waitForIdle(timeoutMs);
  }

  /**
   * Records a stream has held: those it holds now (every shard, from the oldest) plus those
   * the embedded emulator deleted after every consumer had finished them (counted in its
   * store, so a persisted stream's earlier runs count too). A resumed run counts its input
   * this way, since frames published before a restart are part of it.
   */
  async countRecords(stream: string): Promise<number> {
    // A record trimmed between reading the stream and reading the trimmed count would count
    // twice (or not at all, the other way round): no trimming pass runs while this counts.
    const count = async (): Promise<number> => {
      const shards = (await this.client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
      let total = 0;
      for (const shard of shards) {
        let iterator = (
          await this.client.send(
            new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
          )
        ).ShardIterator;
        while (iterator) {
          // Counted, not read: the data stays base64 (no decoding of 640x480 frames).
          const page = await getRecordsRaw(this.client, { ShardIterator: iterator, Limit: 10_000 });
          const n = page.Records.length;
          total += n;
          if (n === 0) break;
          iterator = page.NextShardIterator;
        }
      }
      return total + (this.emulator ? await this.emulator.trimmedRecords(stream) : 0);
    };
    return this.trimmer ? this.trimmer.exclusive(count) : count();
  }

  /**
   * Which OS thread runs what (Linux): this thread, the emulator's and each function's
   * containers, so a profile of the process's threads can be read by role.
   */
  threadRoles(): Record<string, number[]> {
    const roles: Record<string, number[]> = {};
    const main = osThreadId();
    if (main !== undefined) roles.main = [main];
    if (this.emulator?.threadId !== undefined) roles.emulator = [this.emulator.threadId];
    for (const pool of this.pools) {
      const name = pool.modulePath.replace(/\.ts$/, '').split('/').pop() ?? pool.modulePath;
      roles[name] = [...(roles[name] ?? []), ...pool.threadIds()];
    }
    return roles;
  }

  /** Stops trimming, then the runner (checkpoints written), then the emulator. */
  async stop(): Promise<void> {
    await this.trimmer?.stop();
    await this.runner.stop();
    await this.uplink?.stop();
    await Promise.all(this.pools.map((pool) => pool.close()));
    if (this.ownsClient) this.client.destroy();
    if (this.hostClient) releaseHostClient(this.hostClient);
    await this.emulator?.stop();
  }
}

/**
 * How to open a direct port to the pipeline's emulator, when the direct path is to be used: the
 * embedded one, or with `endpoint` one running in this process (opened afresh after a restart).
 */
function directPath(
  emulator: KinesisEmulator | undefined,
  endpoint: string,
  transport: Transport | undefined,
): (() => MessagePort) | undefined {
  if (transport !== 'direct') return undefined;
  const port = emulator?.port ?? Number(new URL(endpoint).port);
  if (!emulator && !KinesisEmulator.inProcessAt(port)) {
    throw new Error(`the direct transport needs the emulator at ${endpoint} to run in this process`);
  }
  return () => KinesisEmulator.openDirectPortAt(port);
}

/** Closes a direct client given to in-process handlers, and stops giving it to handlers loaded later. */
function releaseHostClient(client: DirectKinesisClient): void {
  useHostKinesisClient(undefined);
  client.destroy();
}

export { HOME_FILES };
