/**
 * Runs inside a worker thread: one "container" of a function. Loads the handler module once
 * (its cold start), then answers invocations posted by {@link ./handler-pool}. Each message
 * carries the event and the context fields; the reply is the handler's response or its error.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { Context } from 'aws-lambda';
import { useHostKinesisClient } from '../../functions/lib/stream-writer';
import { DirectKinesisClient } from '../emulator/direct-client';
import { osThreadId } from '../thread-id';

interface HostData {
  modulePath: string;
  exportName: string;
  /** The embedded emulator's direct path: the handlers' stream writer writes through it. */
  directPort?: MessagePort;
}

/**
 * A Lambda event carries each record's data as base64 text. The runner may hand the records
 * over as bytes instead (cheaper to pass between threads): they become the base64 text here,
 * in the function's own thread, so the handler sees exactly what Lambda gives it.
 */
export function withBase64Data(event: unknown): unknown {
  const records = (event as { Records?: unknown } | null)?.Records;
  if (!Array.isArray(records)) return event;
  for (const record of records) {
    const kinesis = (record as { kinesis?: { data?: unknown } } | null)?.kinesis;
    if (kinesis && kinesis.data instanceof Uint8Array) {
      kinesis.data = Buffer.from(kinesis.data.buffer, kinesis.data.byteOffset, kinesis.data.byteLength).toString('base64');
    }
  }
  return event;
}

export interface InvokeMessage {
  id: number;
  event: unknown;
  context: Omit<Context, 'getRemainingTimeInMillis' | 'done' | 'fail' | 'succeed'> & { deadline: number };
}

/** The answer to a `direct-port-request`: a new port, or why there is none. */
export interface DirectPortMessage {
  type: 'direct-port';
  id: number;
  port?: MessagePort;
  error?: string;
}

export type HostReply =
  | { type: 'ready'; tid?: number | undefined }
  /** The direct path closed (the emulator restarted): a new port, please. */
  | { type: 'direct-port-request'; id: number }
  | { type: 'init-error'; name: string; message: string }
  | { type: 'result'; id: number; response: unknown }
  | { type: 'error'; id: number; name: string; message: string };

function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error ? { name: error.name, message: error.message } : { name: 'Error', message: String(error) };
}

const port = parentPort;
if (port) {
  const { modulePath, exportName, directPort } = workerData as HostData;
  const portRequests = new Map<number, { resolve(port: MessagePort): void; reject(error: Error): void }>();
  let nextPortRequest = 0;
  const reconnect = (): Promise<MessagePort> =>
    new Promise<MessagePort>((resolve, reject) => {
      nextPortRequest += 1;
      portRequests.set(nextPortRequest, { resolve, reject });
      port.postMessage({ type: 'direct-port-request', id: nextPortRequest } satisfies HostReply);
    });
  if (directPort) useHostKinesisClient(new DirectKinesisClient(directPort, process.env.AWS_REGION, reconnect));
  let handler: ((event: unknown, context: Context, callback: never) => unknown) | undefined;
  // Cold start: load the module, then wait for its `ready` promise (asynchronous init such as
  // the model session), so a handler that can never work fails here and not at its first event.
  (async () => {
    const loaded = require(modulePath) as Record<string, unknown>;
    const candidate = loaded[exportName];
    if (typeof candidate !== 'function') throw new Error(`${modulePath}: no exported function ${exportName}`);
    await loaded.ready;
    handler = candidate as typeof handler;
  })().then(
    () => port.postMessage({ type: 'ready', tid: osThreadId() } satisfies HostReply),
    (error: unknown) => port.postMessage({ type: 'init-error', ...describe(error) } satisfies HostReply),
  );
  port.on('message', (message: InvokeMessage | DirectPortMessage) => {
    if ('type' in message) {
      const request = portRequests.get(message.id);
      portRequests.delete(message.id);
      if (message.port) request?.resolve(message.port);
      else request?.reject(new Error(message.error ?? 'no direct path'));
      return;
    }
    const { deadline, ...fields } = message.context;
    const unsupported = (): never => {
      throw new Error('callback-style completion is not supported by the local runner; return a promise');
    };
    const context: Context = {
      ...fields,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: unsupported,
      fail: unsupported,
      succeed: unsupported,
    };
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error('the handler module failed to load');
        return handler(withBase64Data(message.event), context, undefined as never);
      })
      .then(
        (response: unknown) => port.postMessage({ type: 'result', id: message.id, response } satisfies HostReply),
        (error: unknown) => port.postMessage({ type: 'error', id: message.id, ...describe(error) } satisfies HostReply),
      )
      .catch((error: unknown) => {
        // The response could not be cloned (a function, a class instance...): Lambda would fail
        // to serialise it too.
        port.postMessage({
          type: 'error',
          id: message.id,
          name: 'Runtime.ResponseNotSerializable',
          message: describe(error).message,
        });
      });
  });
}
