/**
 * The embedded Kinesis emulator: kinesalite, in process, bound to loopback only.
 *
 * kinesalite was chosen over kinesis-local (the emulator LocalStack uses) because it starts
 * in process in milliseconds and is an order of magnitude faster here: ~8.8k PutRecords
 * records/s and ~14k GetRecords records/s against ~700 and ~1.5k/s for kinesis-local, which
 * would cap the pipeline far below its 2,000 frames/s target. Both implement the real Kinesis
 * API, so nothing here is specific to one of them: `--endpoint` points the same code at
 * either, or at AWS.
 */
import { Server as HttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { sleep } from '../../functions/lib/retry';
import { osThreadId } from '../thread-id';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-kinesis';

/** The loopback port `npm start` serves on unless told otherwise. */
export const DEFAULT_EMULATOR_PORT = 4567;

/**
 * Default bound of the camera-images backlog the embedded pipeline's emulator holds, bytes:
 * about 55 frames of 640x480 (as PNG records), 55,000 of 28x28: over a second of work for the
 * classify stage at either size. 64 MiB ran no faster and held 40-50 MB more at the peak
 * (`npx tsx bench/memory.ts 640 300 1`).
 */
export const DEFAULT_BACKLOG_BYTES = 32 * 1024 * 1024;

/**
 * What a record costs the in-memory store beyond its data, bytes: kinesalite's key, record
 * object and index entries and the collector's slack. Measured: 10 s of finished 28x28 records
 * kept at ~3,000 frames/s (about 75,000 records over four streams) took ~200 MB of the
 * emulator thread's heap and buffers (README, "The pipeline's own path to its emulator").
 */
export const RECORD_FOOTPRINT_BYTES = 2048;

/** Estimated memory the store's records take: their data plus {@link RECORD_FOOTPRINT_BYTES} each. */
export function storeFootprint(holdings: readonly StreamHolding[]): number {
  return holdings.reduce((sum, h) => sum + h.heldBytes + h.heldRecords * RECORD_FOOTPRINT_BYTES, 0);
}

/** The only interface the emulator binds to: it has no authentication. */
export const EMULATOR_HOST = '127.0.0.1';

export interface EmulatorOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one (tests). Default 4567. */
  port?: number;
  /** Folder for kinesalite's LevelDB store; unset keeps everything in memory. */
  persistPath?: string;
  /** Most shards per stream kinesalite allows (its own default is 10). */
  shardLimit?: number;
  /**
   * Run kinesalite on the main thread instead of a worker thread. The worker (default) lets
   * the emulator's JSON and store work use the second core instead of competing with the
   * handlers' JavaScript.
   */
  sameThread?: boolean;
  /**
   * Use the BigInt versions of kinesalite's sequence-number helpers and read request bodies
   * in one piece (default). Off runs kinesalite exactly as published, for comparisons.
   */
  fastPaths?: boolean;
  /**
   * Streams whose backlog is bounded, with the bound in bytes of record data held (not yet
   * deleted once consumed): past it, PutRecords entries fail with
   * ProvisionedThroughputExceededException, over HTTP and the direct path alike.
   */
  backlogLimits?: Record<string, number>;
}

/** Bytes held and entries refused by the backlog bound, per stream. */
export interface StreamHolding {
  heldBytes: number;
  /** Records held (every stream counts them, bounded or not). */
  heldRecords: number;
  throttledRecords: number;
  limitBytes?: number;
}

interface KinesaliteOptions {
  createStreamMs: number;
  deleteStreamMs: number;
  updateStreamMs: number;
  shardLimit: number;
  path?: string;
}
type KinesaliteFactory = (options: KinesaliteOptions) => Server;

/** BigInt versions of kinesalite's sequence-number helpers and a linear body reader (see the file for the measurements). */
const FAST_PATHS = join(__dirname, 'kinesalite-fast-paths.js');
interface FastPaths {
  install(): void;
  collectRequestBodies(server: Server, answerEarly?: EarlyAnswer): Server;
}
/** Answers a request before kinesalite parses its body (JSON text), or undefined. */
type EarlyAnswer = (request: IncomingMessage, body: Buffer) => string | undefined;

/** Where kinesalite departs from Kinesis in ways the runner meets (see the file). */
const FIXES = join(__dirname, 'kinesalite-fixes.js');

/** The direct path and the backlog bound (see the file). */
const DIRECT = join(__dirname, 'kinesalite-direct.js');
interface DirectPath {
  install(): void;
  serve(port: MessagePort, store: KinesaliteStore): void;
  earlyRefusal(store: KinesaliteStore): EarlyAnswer;
  setLimits(store: KinesaliteStore, limits: Record<string, number> | undefined, persisted: boolean): void;
  stats(store: KinesaliteStore): Record<string, StreamHolding>;
  closePorts(store: KinesaliteStore): number;
  activeCalls(store: KinesaliteStore): number;
}

/** Deletes records every in-process consumer has finished from kinesalite's store (see the file). */
const TRIM = join(__dirname, 'kinesalite-trim.js');
/** kinesalite's store: opaque here, handed back to the functions of kinesalite-trim.js. */
type KinesaliteStore = object;
interface StoreTrimming {
  createServer(kinesalite: KinesaliteFactory, options: KinesaliteOptions): { server: Server; store: KinesaliteStore };
  trim(store: KinesaliteStore, stream: string, shardId: string, upToExclusive: string): Promise<number>;
  trimmedCount(store: KinesaliteStore, stream: string): Promise<number>;
}
/** The store operations the host runs next to kinesalite (in its worker, when it has one). */
type StoreCall =
  | { method: 'trim'; args: [stream: string, shardId: string, upToExclusive: string] }
  | { method: 'trimmedCount'; args: [stream: string] }
  | { method: 'stats'; args: [] };

/** kinesalite in a worker thread: plain CommonJS, so it runs the same under tsx and jest. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
require(workerData.fixes).install();
const fastPaths = workerData.fastPaths ? require(workerData.fastPaths) : undefined;
if (fastPaths) fastPaths.install();
const direct = require(workerData.direct);
direct.install();
const trimming = require(workerData.trim);
const { server, store } = trimming.createServer(require(workerData.module), workerData.options);
direct.setLimits(store, workerData.backlogLimits, workerData.storesText);
if (fastPaths) fastPaths.collectRequestBodies(server, direct.earlyRefusal(store));
server.keepAliveTimeout = 5000;
let active = 0;
let calls = 0;
server.on('request', (request, response) => {
  active += 1;
  response.once('close', () => { active -= 1; });
});
server.once('error', (error) => parentPort.postMessage({ type: 'error', message: error.message, code: error.code }));
server.listen(workerData.port, workerData.host, () => {
  let tid;
  try { tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()); } catch {}
  parentPort.postMessage({ type: 'listening', port: server.address().port, tid });
});
parentPort.on('message', async (message) => {
  if (message && message.type === 'port') {
    // A direct path for an in-process reader or writer.
    direct.serve(message.port, store);
    return;
  }
  if (message && message.type === 'call') {
    // Store operations asked by the main thread (trimming consumed records).
    calls += 1;
    try {
      if (message.method !== 'trim' && message.method !== 'trimmedCount' && message.method !== 'stats') throw new Error('unknown store call ' + message.method);
      const value = message.method === 'stats' ? direct.stats(store) : await trimming[message.method](store, ...message.args);
      parentPort.postMessage({ type: 'result', id: message.id, value });
    } catch (error) {
      parentPort.postMessage({ type: 'result', id: message.id, message: error instanceof Error ? error.message : String(error) });
    } finally {
      calls -= 1;
    }
    return;
  }
  if (message !== 'stop') return;
  // kinesalite's close() shuts its store first and the HTTP server after: a request still in
  // flight then reads a closed LevelDB, which throws or crashes the process. So stop accepting
  // first, let the requests (and store calls) in flight finish (bounded), and only then close
  // the store.
  require('node:http').Server.prototype.close.call(server);
  server.closeIdleConnections();
  direct.closePorts(store);
  for (const deadline = Date.now() + 2000; (active > 0 || calls > 0 || direct.activeCalls(store) > 0) && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  server.closeAllConnections();
  server.close((error) => {
    // The listener is already closed above; only a store error matters here.
    const failed = error && error.code !== 'ERR_SERVER_NOT_RUNNING' ? error.message : undefined;
    parentPort.postMessage({ type: 'stopped', message: failed });
    parentPort.close();
  });
});
`;

interface WorkerMessage {
  type: 'listening' | 'error' | 'stopped' | 'result';
  /** The worker's OS thread id ('listening', Linux). */
  tid?: number;
  port?: number;
  message?: string;
  code?: string;
  /** A store call's id and result ('result'). */
  id?: number;
  value?: unknown;
}

/** The two ways of hosting kinesalite: an http.Server here, or one in a worker thread. */
interface Host {
  close(): Promise<void>;
  /** Runs a store operation where kinesalite lives. */
  call(call: StoreCall): Promise<unknown>;
  /** Serves direct calls arriving on `port` where kinesalite lives. */
  serveDirect(port: MessagePort): void;
}

function hostOnThisThread(server: Server, store: KinesaliteStore, trimming: StoreTrimming, direct: DirectPath): Host {
  // Same order as the worker: kinesalite's close() shuts its store before its HTTP server, so
  // stop accepting, let requests in flight finish (bounded), and only then close the store.
  let active = 0;
  let calls = 0;
  server.on('request', (_request, response: ServerResponse) => {
    active += 1;
    response.once('close', () => {
      active -= 1;
    });
  });
  return {
    call: async (call) => {
      calls += 1;
      try {
        if (call.method === 'stats') return direct.stats(store);
        return call.method === 'trim'
          ? await trimming.trim(store, ...call.args)
          : await trimming.trimmedCount(store, ...call.args);
      } finally {
        calls -= 1;
      }
    },
    serveDirect: (port) => direct.serve(port, store),
    close: async () => {
      httpServerClose.call(server);
      server.closeIdleConnections();
      direct.closePorts(store);
      for (
        const deadline = Date.now() + 2000;
        (active > 0 || calls > 0 || direct.activeCalls(store) > 0) && Date.now() < deadline;
      ) {
        await sleep(5);
      }
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => {
        server.close((error?: Error) => {
          const code = (error as { code?: unknown } | undefined)?.code;
          if (error && code !== 'ERR_SERVER_NOT_RUNNING') reject(error);
          else resolve();
        });
      });
    },
  };
}

/** http.Server's own close: kinesalite replaces it on its instance with one that shuts the store first. */
const httpServerClose = HttpServer.prototype.close;

/** Emulators running in this process, by port: where a direct path can be opened. */
const running = new Map<number, KinesisEmulator>();

/** A running kinesalite server on loopback. */
export class KinesisEmulator {
  private stopped = false;

  /** The OS id of the thread kinesalite runs on (Linux; for per-thread CPU figures). */
  threadId: number | undefined;

  /**
   * A direct path to the emulator serving `port` in this process (it may have been restarted
   * since the last one was opened). Throws, like a refused connection, when none does.
   */
  static openDirectPortAt(port: number): MessagePort {
    const emulator = running.get(port);
    if (!emulator) {
      throw Object.assign(new Error(`connect ECONNREFUSED: no emulator on port ${port} in this process`), {
        code: 'ECONNREFUSED',
      });
    }
    return emulator.openDirectPort();
  }

  /** The emulator serving `port` in this process, if one does. */
  static inProcessAt(port: number): KinesisEmulator | undefined {
    return running.get(port);
  }

  private constructor(
    private readonly host: Host,
    /** The port actually bound (useful when 0 was asked for). */
    readonly port: number,
    readonly persistPath: string | undefined,
  ) {
    running.set(port, this);
  }

  /** `http://127.0.0.1:<port>`: what clients pass as their endpoint. */
  get endpoint(): string {
    return `http://${EMULATOR_HOST}:${this.port}`;
  }

  /**
   * Starts kinesalite in process on 127.0.0.1. Streams become ACTIVE at once (no simulated
   * creation delay). Rejects when the port is taken or the persistence folder is unusable.
   */
  static async start(options: EmulatorOptions = {}): Promise<KinesisEmulator> {
    if (options.persistPath) mkdirSync(options.persistPath, { recursive: true });
    const kinesaliteOptions: KinesaliteOptions = {
      createStreamMs: 0,
      deleteStreamMs: 0,
      updateStreamMs: 0,
      shardLimit: options.shardLimit ?? 100,
      ...(options.persistPath ? { path: options.persistPath } : {}),
    };
    const port = options.port ?? DEFAULT_EMULATOR_PORT;
    const fastPaths = options.fastPaths !== false;
    // Records are kept as objects (direct data as Buffers) only in memory with the fast paths.
    const storesText = options.persistPath !== undefined || !fastPaths;
    if (!options.sameThread) {
      return KinesisEmulator.startWorker(kinesaliteOptions, port, options.persistPath, fastPaths, {
        backlogLimits: options.backlogLimits ?? {},
        storesText,
      });
    }
    (require(FIXES) as { install(): void }).install();
    const paths = fastPaths ? (require(FAST_PATHS) as FastPaths) : undefined;
    paths?.install();
    const direct = require(DIRECT) as DirectPath;
    direct.install();
    // kinesalite ships no types; its factory returns a plain http.Server.
    const kinesalite = require('kinesalite') as KinesaliteFactory;
    const trimming = require(TRIM) as StoreTrimming;
    const { server, store } = trimming.createServer(kinesalite, kinesaliteOptions);
    direct.setLimits(store, options.backlogLimits, storesText);
    paths?.collectRequestBodies(server, direct.earlyRefusal(store));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.once('error', onError);
      server.listen(port, EMULATOR_HOST, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const emulator = new KinesisEmulator(
      hostOnThisThread(server, store, trimming, direct),
      (server.address() as AddressInfo).port,
      options.persistPath,
    );
    emulator.threadId = osThreadId();
    return emulator;
  }

  private static async startWorker(
    options: KinesaliteOptions,
    port: number,
    persistPath: string | undefined,
    fastPaths: boolean,
    direct: { backlogLimits: Record<string, number>; storesText: boolean },
  ): Promise<KinesisEmulator> {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        module: require.resolve('kinesalite'),
        fixes: FIXES,
        fastPaths: fastPaths ? FAST_PATHS : undefined,
        trim: TRIM,
        direct: DIRECT,
        backlogLimits: direct.backlogLimits,
        storesText: direct.storesText,
        options,
        port,
        host: EMULATOR_HOST,
      },
    });
    // The worker must not keep a finished CLI alive; stop() waits for it explicitly.
    worker.unref();
    let threadId: number | undefined;
    const bound = await new Promise<number>((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`kinesalite worker exited with code ${code} before listening`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (message: WorkerMessage) => {
        worker.off('exit', onExit);
        worker.off('error', reject);
        if (message.type === 'listening' && message.port !== undefined) {
          threadId = message.tid;
          return resolve(message.port);
        }
        void worker.terminate();
        const error = new Error(`kinesalite could not listen on ${EMULATOR_HOST}:${port}: ${message.message ?? 'unknown error'}`);
        Object.assign(error, { code: message.code });
        reject(error);
      });
    });
    // Store calls in flight, by id: answered by 'result' messages, failed if the worker goes.
    const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
    let nextId = 0;
    const failPending = (why: string): void => {
      for (const { reject } of pending.values()) reject(new Error(why));
      pending.clear();
    };
    worker.on('message', (message: WorkerMessage) => {
      if (message.type !== 'result' || message.id === undefined) return;
      const call = pending.get(message.id);
      pending.delete(message.id);
      if (message.message !== undefined) call?.reject(new Error(message.message));
      else call?.resolve(message.value);
    });
    worker.once('exit', () => failPending('the kinesalite worker has exited'));
    const host: Host = {
      call: (call) =>
        new Promise<unknown>((resolve, reject) => {
          nextId += 1;
          const id = nextId;
          pending.set(id, { resolve, reject });
          worker.postMessage({ type: 'call', id, method: call.method, args: call.args });
        }),
      serveDirect: (port) => worker.postMessage({ type: 'port', port }, [port]),
      close: () =>
        new Promise<void>((resolve, reject) => {
          const onMessage = (message: WorkerMessage): void => {
            if (message.type !== 'stopped') return;
            worker.off('message', onMessage);
            if (message.message) reject(new Error(message.message));
            else resolve();
          };
          worker.on('message', onMessage);
          worker.once('exit', () => resolve());
          worker.postMessage('stop');
        }),
    };
    const emulator = new KinesisEmulator(host, bound, persistPath);
    emulator.threadId = threadId;
    return emulator;
  }

  /**
   * Deletes the records of a shard whose sequence number is below `upToExclusive` (a decimal
   * sequence number; compared as a number, not as text) from the emulator's store, in memory
   * or persisted alike. For records every reader has finished: kinesalite would otherwise keep
   * them for the stream's whole retention. Afterwards TRIM_HORIZON starts at the first record
   * kept. Resolves with the number of records deleted; rejects for an unknown stream or shard,
   * a malformed sequence number, or a stopped emulator.
   */
  async trim(stream: string, shardId: string, upToExclusive: string): Promise<number> {
    if (this.stopped) throw new Error('the emulator is stopped');
    return Number(await this.host.call({ method: 'trim', args: [stream, shardId, upToExclusive] }));
  }

  /**
   * A new direct path to the store: a port on which a {@link DirectKinesisClient} (in this
   * thread or, transferred, in a worker thread) reaches kinesalite's actions without HTTP.
   * The port closes when the emulator stops.
   */
  openDirectPort(): MessagePort {
    if (this.stopped) throw new Error('the emulator is stopped');
    const { port1, port2 } = new MessageChannel();
    this.host.serveDirect(port2);
    return port1;
  }

  /** Bytes held and entries refused by the backlog bound, per stream. */
  async holdings(): Promise<Record<string, StreamHolding>> {
    if (this.stopped) throw new Error('the emulator is stopped');
    return (await this.host.call({ method: 'stats', args: [] })) as Record<string, StreamHolding>;
  }

  /**
   * True when a stream with a backlog bound holds half of it or more, or when all streams
   * together weigh half the largest bound or more, each record counted with its footprint in
   * the store ({@link storeFootprint}): finished records then go at once (see
   * {@link ConsumedRecordTrimmer}), so the time they are kept cannot hold hundreds of MB.
   */
  async underPressure(): Promise<boolean> {
    const holdings = Object.values(await this.holdings());
    const bounds = holdings.flatMap((h) => (h.limitBytes === undefined ? [] : [h.limitBytes]));
    if (bounds.length === 0) return false;
    return (
      holdings.some((h) => h.limitBytes !== undefined && h.heldBytes * 2 >= h.limitBytes) ||
      storeFootprint(holdings) * 2 >= Math.max(...bounds)
    );
  }

  /** Records {@link trim} has deleted from a stream so far (kept in the store, so persisted ones count after a restart too). */
  async trimmedRecords(stream: string): Promise<number> {
    if (this.stopped) throw new Error('the emulator is stopped');
    return Number(await this.host.call({ method: 'trimmedCount', args: [stream] }));
  }

  /**
   * Stops listening, drops open connections and closes the store (flushing LevelDB when
   * persistent). Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (running.get(this.port) === this) running.delete(this.port);
    await this.host.close();
  }
}

export interface StreamSpec {
  /** Full stream name (prefix included). */
  name: string;
  shards: number;
}

/**
 * Creates every stream that does not exist yet and waits until all are ACTIVE. Existing
 * streams are left as they are, whatever their shard count (an `--endpoint` may point at
 * streams someone else manages). Throws when a stream stays unavailable past `timeoutMs`.
 */
export async function ensureStreams(client: KinesisClient, streams: readonly StreamSpec[], timeoutMs = 120_000): Promise<void> {
  await Promise.all(
    streams.map(async ({ name, shards }) => {
      try {
        await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
      } catch (error: unknown) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
      await waitForActive(client, name, timeoutMs);
    }),
  );
}

async function waitForActive(client: KinesisClient, name: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    try {
      const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      const status = summary.StreamDescriptionSummary?.StreamStatus;
      if (status === 'ACTIVE' || status === 'UPDATING') return;
    } catch (error: unknown) {
      // Right after CreateStream some implementations do not list the stream yet.
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
    if (Date.now() > deadline) throw new Error(`stream ${name} did not become ACTIVE within ${timeoutMs} ms`);
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
}
