/**
 * A local server speaking Greengrass Stream Manager's wire protocol as the SDK's source
 * (aws-greengrass-core-sdk/stream-manager/client.js, utilInternal.js, data/index.js) defines
 * it, for tests with the real SDK client: TCP; the client sends one connect-version byte (1)
 * then frames of a 4-byte big-endian length (operation byte + payload), a 1-byte operation
 * code and a CBOR map; the server answers the connect-version byte and frames the same way,
 * each answer carrying the request's `requestId`.
 *
 * Streams are kept in memory: sequence numbers from 0, `readMessages` with the SDK's option
 * semantics (min/max counts, read timeout, NotEnoughMessages), stream definitions stored as
 * sent (tests read the export definitions back). It exports nothing: exporting to the cloud is
 * the Stream Manager component's job, which only AWS ships.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

interface Cbor {
  encode(value: unknown): Buffer;
  decodeFirstSync(input: Buffer): unknown;
}
// The CBOR library the SDK itself uses (its own dependency), so both ends encode alike.
const cbor = require(
  require.resolve('cbor', { paths: [dirname(require.resolve('aws-greengrass-core-sdk/package.json'))] }),
) as Cbor;

const OP = {
  Connect: 1,
  CreateMessageStream: 2,
  DeleteMessageStream: 3,
  AppendMessage: 4,
  ReadMessages: 5,
  ConnectResponse: 6,
  CreateMessageStreamResponse: 7,
  DeleteMessageStreamResponse: 8,
  AppendMessageResponse: 9,
  ReadMessagesResponse: 10,
  ListStreams: 11,
  ListStreamsResponse: 12,
  DescribeMessageStream: 13,
  DescribeMessageStreamResponse: 14,
  UpdateMessageStream: 15,
  UpdateMessageStreamResponse: 16,
  UnknownOperationError: 17,
} as const;
const STATUS = { Success: 0, InvalidRequest: 3, ResourceNotFound: 5, NotEnoughMessages: 13, UnknownOperation: 18 } as const;

export interface StoredStream {
  /** The MessageStreamDefinition map as the client sent it. */
  definition: Record<string, unknown>;
  messages: Array<{ sequenceNumber: number; ingestTime: number; payload: Buffer }>;
}

export interface TestStreamManager {
  port: number;
  streams: Map<string, StoredStream>;
  /** Requests served, by operation name (tests check what the client did). */
  calls: Map<string, number>;
  /** Payloads of a stream, in order. */
  payloads(stream: string): Buffer[];
  close(): Promise<void>;
}

class Frames {
  private buffer = Buffer.alloc(0);
  private versionRead = false;
  constructor(
    private readonly onFrame: (op: number, payload: Buffer) => void,
    private readonly onVersion: (v: number) => void,
  ) {}
  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (!this.versionRead && this.buffer.length >= 1) {
      this.versionRead = true;
      this.onVersion(this.buffer.readInt8(0));
      this.buffer = this.buffer.subarray(1);
    }
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(0);
      if (this.buffer.length < 4 + length) return;
      const op = this.buffer.readInt8(4);
      const payload = this.buffer.subarray(5, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      this.onFrame(op, payload);
    }
  }
}

function frame(op: number, body: Record<string, unknown>): Buffer {
  const payload = cbor.encode(body);
  const header = Buffer.alloc(5);
  header.writeInt32BE(payload.length + 1, 0);
  header.writeInt8(op, 4);
  return Buffer.concat([header, payload]);
}

/** Starts the server on 127.0.0.1 (`port` 0 picks a free one). */
export async function startTestStreamManager(port = 0): Promise<TestStreamManager> {
  const streams = new Map<string, StoredStream>();
  const calls = new Map<string, number>();
  const waiters = new Set<() => void>();
  const sockets = new Set<Socket>();
  const count = (name: string): void => {
    calls.set(name, (calls.get(name) ?? 0) + 1);
  };

  async function read(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const name = String(body.streamName);
    const options = (body.readMessagesOptions ?? {}) as Record<string, number | null>;
    const min = options.minMessageCount ?? 1;
    const max = options.maxMessageCount ?? 1;
    const timeout = options.readTimeoutMillis ?? 0;
    const start = options.desiredStartSequenceNumber ?? 0;
    const deadline = Date.now() + timeout;
    for (;;) {
      const stream = streams.get(name);
      if (!stream) return { status: STATUS.ResourceNotFound, errorMessage: `stream ${name} not found` };
      // An earlier start than the oldest message reads from the oldest.
      const from = stream.messages.findIndex((m) => m.sequenceNumber >= start);
      const available = from < 0 ? [] : stream.messages.slice(from, from + max);
      if (available.length >= min) {
        return {
          status: STATUS.Success,
          messages: available.map((m) => ({
            streamName: name,
            sequenceNumber: m.sequenceNumber,
            ingestTime: m.ingestTime,
            payload: m.payload,
          })),
        };
      }
      if (Date.now() >= deadline) return { status: STATUS.NotEnoughMessages, errorMessage: 'not enough messages' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(1, deadline - Date.now()));
        function done(): void {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  async function serve(op: number, body: Record<string, unknown>): Promise<[number, Record<string, unknown>]> {
    switch (op) {
      case OP.CreateMessageStream: {
        count('CreateMessageStream');
        const definition = body.definition as Record<string, unknown>;
        const name = String(definition.name);
        if (streams.has(name))
          return [
            OP.CreateMessageStreamResponse,
            { status: STATUS.InvalidRequest, errorMessage: `stream ${name} already exists` },
          ];
        streams.set(name, { definition, messages: [] });
        return [OP.CreateMessageStreamResponse, { status: STATUS.Success }];
      }
      case OP.UpdateMessageStream: {
        count('UpdateMessageStream');
        const definition = body.definition as Record<string, unknown>;
        const stream = streams.get(String(definition.name));
        if (!stream)
          return [OP.UpdateMessageStreamResponse, { status: STATUS.ResourceNotFound, errorMessage: 'stream not found' }];
        stream.definition = definition;
        return [OP.UpdateMessageStreamResponse, { status: STATUS.Success }];
      }
      case OP.DeleteMessageStream: {
        count('DeleteMessageStream');
        const found = streams.delete(String(body.name));
        return [OP.DeleteMessageStreamResponse, { status: found ? STATUS.Success : STATUS.ResourceNotFound }];
      }
      case OP.AppendMessage: {
        count('AppendMessage');
        const stream = streams.get(String(body.name));
        if (!stream)
          return [
            OP.AppendMessageResponse,
            { status: STATUS.ResourceNotFound, errorMessage: `stream ${String(body.name)} not found` },
          ];
        const last = stream.messages[stream.messages.length - 1];
        const sequenceNumber = last ? last.sequenceNumber + 1 : 0;
        stream.messages.push({ sequenceNumber, ingestTime: Date.now(), payload: Buffer.from(body.payload as Uint8Array) });
        for (const wake of [...waiters]) wake();
        return [OP.AppendMessageResponse, { status: STATUS.Success, sequenceNumber }];
      }
      case OP.ReadMessages:
        count('ReadMessages');
        return [OP.ReadMessagesResponse, await read(body)];
      case OP.ListStreams:
        count('ListStreams');
        return [OP.ListStreamsResponse, { status: STATUS.Success, streams: [...streams.keys()] }];
      case OP.DescribeMessageStream: {
        count('DescribeMessageStream');
        const stream = streams.get(String(body.name));
        if (!stream)
          return [OP.DescribeMessageStreamResponse, { status: STATUS.ResourceNotFound, errorMessage: 'stream not found' }];
        const first = stream.messages[0];
        const last = stream.messages[stream.messages.length - 1];
        return [
          OP.DescribeMessageStreamResponse,
          {
            status: STATUS.Success,
            messageStreamInfo: {
              definition: stream.definition,
              storageStatus: {
                oldestSequenceNumber: first?.sequenceNumber ?? 0,
                newestSequenceNumber: last?.sequenceNumber ?? -1,
                totalBytes: stream.messages.reduce((n, m) => n + m.payload.length, 0),
              },
              exportStatuses: [],
            },
          },
        ];
      }
      default:
        return [OP.UnknownOperationError, { status: STATUS.UnknownOperation, errorMessage: `operation ${op}` }];
    }
  }

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const frames = new Frames(
      (op, payload) => {
        const body = cbor.decodeFirstSync(payload) as Record<string, unknown>;
        if (op === OP.Connect) {
          count('Connect');
          socket.write(Buffer.from([1]));
          socket.write(
            frame(OP.ConnectResponse, {
              requestId: body.requestId,
              status: STATUS.Success,
              protocolVersion: '1.1.0',
              serverVersion: 'test-1.1.0',
              clientIdentifier: 'test-client',
            }),
          );
          return;
        }
        void serve(op, body).then(([responseOp, response]) => {
          if (!socket.destroyed) socket.write(frame(responseOp, { requestId: body.requestId, ...response }));
        });
      },
      (version) => {
        if (version !== 1) socket.destroy();
      },
    );
    socket.on('data', (chunk: Buffer) => frames.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    streams,
    calls,
    payloads: (stream) => streams.get(stream)?.messages.map((m) => m.payload) ?? [],
    close: async () => {
      for (const wake of [...waiters]) wake();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
