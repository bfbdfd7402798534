/**
 * Handlers in worker threads, one worker per concurrent invocation: the local counterpart of
 * Lambda's containers. A worker loads the handler module once (a cold start) and serves
 * invocations one at a time; concurrent invocations (several shards, a parallelization
 * factor) get further workers. A crash or a timeout discards the worker, as Lambda discards
 * a container, and the next invocation starts a fresh one.
 *
 * Why: in one thread the handlers' JavaScript (preparation, inference calls, JSON) competes
 * with the runner, the home readers and the camera for the same event loop; profiling a
 * replay showed that thread saturated while the second core idled.
 */
import { join } from 'node:path';
import { type MessagePort, Worker } from 'node:worker_threads';
import type { Context } from 'aws-lambda';
import type { DirectPortMessage, HostReply, InvokeMessage } from './handler-host';
import { type StreamHandler, TAKES_RECORD_BYTES } from './types';

const HOST = join(__dirname, 'handler-host.ts');

/**
 * The event as it is posted to a container: each record's bytes copied into one buffer of the
 * batch's own size, which is transferred, not cloned. Why: records read over the direct path
 * are views of a whole GetRecords page (up to 8 MiB), and posting a view clones the buffer
 * under it, so every invocation copied the page into the container, where it stayed as
 * garbage until that thread collected it. The runner's own records are left untouched (a
 * retry posts them again).
 */
export function packedForTransfer(event: unknown): { event: unknown; transfer: ArrayBuffer[] } {
  const records = (event as { Records?: unknown } | null)?.Records;
  if (!Array.isArray(records)) return { event, transfer: [] };
  const dataOf = (record: unknown): Uint8Array | undefined => {
    const data = (record as { kinesis?: { data?: unknown } } | null)?.kinesis?.data;
    return data instanceof Uint8Array ? data : undefined;
  };
  let total = 0;
  for (const record of records) total += dataOf(record)?.byteLength ?? 0;
  if (total === 0) return { event, transfer: [] };
  const batch = new ArrayBuffer(total);
  let offset = 0;
  const packed = records.map((record: unknown) => {
    const data = dataOf(record);
    if (!data) return record;
    const view = new Uint8Array(batch, offset, data.byteLength);
    view.set(data);
    offset += data.byteLength;
    const { kinesis } = record as { kinesis: Record<string, unknown> };
    return {
      ...(record as Record<string, unknown>),
      kinesis: { ...kinesis, data: Buffer.from(batch, view.byteOffset, view.byteLength) },
    };
  });
  return { event: { ...(event as Record<string, unknown>), Records: packed }, transfer: [batch] };
}

/** The worker's bootstrap: plain CommonJS that teaches the worker TypeScript, then loads the host. */
const BOOTSTRAP = `
require(require('node:worker_threads').workerData.tsx).register();
require(require('node:worker_threads').workerData.host);
`;

class Container {
  readonly ready: Promise<void>;
  /** The OS id of the container's thread, once ready (Linux). */
  tid: number | undefined;
  private pending: { id: number; resolve(value: unknown): void; reject(error: Error): void } | undefined;
  private dead = false;

  constructor(
    readonly worker: Worker,
    private readonly openDirectPort?: () => MessagePort,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      worker.once('message', (reply: HostReply) => {
        if (reply.type === 'ready') {
          this.tid = reply.tid;
          resolve();
        } else if (reply.type === 'init-error') {
          // A failed init is retried in a fresh container by the next invocation, as on Lambda.
          this.dead = true;
          void worker.terminate();
          reject(Object.assign(new Error(reply.message), { name: reply.name }));
        } else reject(new Error('the handler worker answered before it was ready'));
        worker.on('message', (message: HostReply) => this.onMessage(message));
      });
      worker.once('error', (error) => {
        this.kill(error);
        reject(error);
      });
      worker.once('exit', (code) => {
        const error = new Error(`the handler worker exited with code ${code}`);
        this.kill(error);
        reject(error);
      });
    });
    // Avoid unhandled rejections when nobody awaits a failed start.
    this.ready.catch(() => undefined);
  }

  get alive(): boolean {
    return !this.dead;
  }

  private onMessage(message: HostReply): void {
    if (message.type === 'direct-port-request') {
      let answer: DirectPortMessage;
      try {
        if (!this.openDirectPort) throw new Error('this pool has no direct path');
        answer = { type: 'direct-port', id: message.id, port: this.openDirectPort() };
      } catch (error: unknown) {
        answer = { type: 'direct-port', id: message.id, error: error instanceof Error ? error.message : String(error) };
      }
      this.worker.postMessage(answer, answer.port ? [answer.port] : []);
      return;
    }
    const pending = this.pending;
    if (!pending || (message.type !== 'result' && message.type !== 'error') || message.id !== pending.id) return;
    this.pending = undefined;
    if (message.type === 'result') pending.resolve(message.response);
    else pending.reject(Object.assign(new Error(message.message), { name: message.name }));
  }

  kill(error: Error): void {
    this.dead = true;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }

  /** Runs one invocation with `remaining` ms before its timeout. */
  invoke(id: number, event: unknown, context: Context, remaining: number): Promise<unknown> {
    const { getRemainingTimeInMillis: _remaining, done: _done, fail: _fail, succeed: _succeed, ...fields } = context;
    const packed = packedForTransfer(event);
    const message: InvokeMessage = { id, event: packed.event, context: { ...fields, deadline: Date.now() + remaining } };
    return new Promise<unknown>((resolve, reject) => {
      // Lambda stops a function at its timeout: so does this, by discarding the worker.
      const timer = setTimeout(() => {
        const seconds = (remaining / 1000).toFixed(2);
        this.kill(new Error(`Task timed out after ${seconds} seconds`));
        void this.worker.terminate();
      }, remaining);
      const clear = (): void => clearTimeout(timer);
      this.pending = {
        id,
        resolve: (value) => {
          clear();
          resolve(value);
        },
        reject: (error) => {
          clear();
          reject(error);
        },
      };
      this.worker.postMessage(message, packed.transfer);
    });
  }
}

/** A function's containers. Call {@link HandlerPool.handler} as the mapping's handler. */
export class HandlerPool {
  private readonly idle: Container[] = [];
  private readonly all = new Set<Container>();
  private nextId = 1;
  private closed = false;

  /**
   * @param modulePath absolute path of the handler module (`.ts` is fine: workers load tsx).
   * @param exportName the handler's export (`handler`).
   */
  constructor(
    readonly modulePath: string,
    readonly exportName: string,
    private readonly options: {
      /** A direct path to the embedded emulator for each new container's stream writer. */
      openDirectPort?: () => MessagePort;
    } = {},
  ) {}

  /** The OS thread ids of the containers started so far and still running (Linux). */
  threadIds(): number[] {
    return [...this.all].flatMap((c) => (c.tid === undefined ? [] : [c.tid]));
  }

  /** Warm containers right now (idle or busy). */
  get size(): number {
    return this.all.size;
  }

  private spawn(): Container {
    const directPort = this.options.openDirectPort?.();
    const worker = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: {
        tsx: require.resolve('tsx/cjs/api'),
        host: HOST,
        modulePath: this.modulePath,
        exportName: this.exportName,
        ...(directPort ? { directPort } : {}),
      },
      transferList: directPort ? [directPort] : [],
      // The handlers read their configuration from the environment at load time.
      env: { ...process.env },
    });
    const container = new Container(worker, this.options.openDirectPort);
    this.all.add(container);
    worker.once('exit', () => this.all.delete(container));
    return container;
  }

  /**
   * The handler the runner calls: runs the invocation in an idle container, or a new one. It
   * takes record data as bytes ({@link TAKES_RECORD_BYTES}): the container makes the base64.
   */
  readonly handler: StreamHandler = Object.assign(
    async (event: unknown, context: Context): Promise<unknown> => {
      if (this.closed) throw new Error('the handler pool is closed');
      let container = this.idle.pop();
      while (container && !container.alive) container = this.idle.pop();
      container ??= this.spawn();
      // As on Lambda, a cold start does not eat into the invocation's own timeout.
      const budget = context.getRemainingTimeInMillis();
      await container.ready;
      try {
        return await container.invoke(this.nextId++, event, context, budget);
      } finally {
        if (container.alive && !this.closed) this.idle.push(container);
      }
    },
    { [TAKES_RECORD_BYTES]: true },
  ) as unknown as StreamHandler;

  /**
   * Starts one container and waits for its cold start, so the first invocation does not pay
   * it and a handler that cannot load (a missing model, bad configuration) fails here, at
   * start-up, with its own error.
   */
  async warm(): Promise<void> {
    const container = this.spawn();
    await container.ready;
    this.idle.push(container);
  }

  /** Stops every container. */
  async close(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    await Promise.all([...this.all].map((c) => c.worker.terminate()));
  }
}
