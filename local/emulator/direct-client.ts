/**
 * A Kinesis client for the pipeline's own readers and writers when the emulator is embedded:
 * the same `send(new XCommand(input))` calls, answered by the emulator's actions over a
 * MessagePort instead of HTTP (local/emulator/kinesalite-direct.js). Record data travels as bytes both
 * ways, so no JSON, base64 or large strings are made for it; everything else (validations,
 * errors, sequence numbers, iterators) is kinesalite's own, exactly as over HTTP.
 *
 * It is a KinesisClient, so the runner, the stream writer and the camera source use it
 * unchanged; errors are the SDK's exception classes, so `instanceof` checks keep working; an
 * emulator that has stopped fails calls the way a refused connection does.
 */
import type { MessagePort } from 'node:worker_threads';
import * as Kinesis from '@aws-sdk/client-kinesis';
import { KinesisClient, KinesisServiceException } from '@aws-sdk/client-kinesis';
import type { RawRecord } from '../runner/get-records-raw';

/** One record read over the direct path: its data as bytes (a view of the page's buffer). */
export interface BufferRecord {
  SequenceNumber: string;
  PartitionKey: string;
  Data: Buffer;
  /** Seconds since the epoch, with fractions. */
  ApproximateArrivalTimestamp?: number;
}

export interface BufferRecordsPage {
  Records: BufferRecord[];
  NextShardIterator?: string;
  MillisBehindLatest?: number;
}

interface Reply {
  id: number;
  result?: Record<string, unknown>;
  error?: { name: string; message: string; statusCode: number };
}

interface PackedRecord {
  SequenceNumber: string;
  PartitionKey: string;
  ApproximateArrivalTimestamp?: number;
  start: number;
  end: number;
}

/** Fields the service sends as epoch seconds and the SDK hands out as Dates. */
const TIMESTAMPS = new Set(['StreamCreationTimestamp', 'ApproximateArrivalTimestamp']);

function toWire(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(toWire);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) if (field !== undefined) out[key] = toWire(field);
  return out;
}

function fromWire(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(fromWire);
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    out[key] = TIMESTAMPS.has(key) && typeof field === 'number' ? new Date(field * 1000) : fromWire(field);
  }
  return out;
}

/** The SDK's exception for an error the emulator answered with. */
function toException(error: NonNullable<Reply['error']>): Error {
  const metadata = { httpStatusCode: error.statusCode };
  const Known = (Kinesis as unknown as Record<string, unknown>)[error.name];
  if (typeof Known === 'function' && (Known as { prototype: unknown }).prototype instanceof KinesisServiceException) {
    const Exception = Known as new (options: { message: string; $metadata: typeof metadata }) => Error;
    return new Exception({ message: error.message, $metadata: metadata });
  }
  return new KinesisServiceException({
    name: error.name,
    $fault: error.statusCode >= 500 ? 'server' : 'client',
    message: error.message,
    $metadata: metadata,
  });
}

/** What a caller of a stopped emulator sees: the error of a refused connection. */
function gone(): Error {
  return Object.assign(new Error('connect ECONNREFUSED: the embedded emulator has stopped (direct path)'), {
    code: 'ECONNREFUSED',
  });
}

/** Opens a new direct port to the emulator (one that was restarted, say); throws when there is none. */
export type DirectConnect = () => MessagePort | Promise<MessagePort>;

/** A KinesisClient whose calls go to the embedded emulator over a direct port. */
export class DirectKinesisClient extends KinesisClient {
  private readonly pending = new Map<number, { resolve(reply: Reply): void; reject(error: Error): void }>();
  private nextId = 0;
  private port: MessagePort | undefined;
  private connecting: Promise<MessagePort> | undefined;
  private destroyed = false;

  /**
   * @param port a port from {@link KinesisEmulator.openDirectPort} (possibly transferred to this
   *   thread), used until it closes
   * @param reconnect opens a new port once that one has closed (the emulator stopped and came
   *   back); without it, or when it throws, calls fail like a refused connection
   */
  constructor(
    port: MessagePort | undefined,
    region = 'us-east-1',
    private readonly reconnect?: DirectConnect,
  ) {
    super({ region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    if (port) this.attach(port);
  }

  private attach(port: MessagePort): MessagePort {
    this.port = port;
    port.on('message', (reply: Reply) => {
      const call = this.pending.get(reply.id);
      if (!call) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) port.unref();
      call.resolve(reply);
    });
    port.once('close', () => {
      if (this.port === port) this.port = undefined;
      // Calls in flight on a closed port are lost with it, as with a dropped connection.
      for (const call of this.pending.values()) call.reject(gone());
      this.pending.clear();
    });
    port.unref();
    return port;
  }

  private async connected(): Promise<MessagePort> {
    if (this.port) return this.port;
    if (this.destroyed || !this.reconnect) throw gone();
    const reconnect = this.reconnect;
    if (!this.connecting) {
      // Cleared once settled (not inside: a connect that fails at once settles before this assignment).
      const connecting = (async () => this.attach(await reconnect()))().catch(() => {
        throw gone();
      });
      this.connecting = connecting;
      connecting.then(
        () => this.clearConnecting(connecting),
        () => this.clearConnecting(connecting),
      );
    }
    return this.connecting;
  }

  private clearConnecting(settled: Promise<MessagePort>): void {
    if (this.connecting === settled) this.connecting = undefined;
  }

  private async call(operation: string, input: unknown): Promise<Reply> {
    const port = await this.connected();
    return new Promise<Reply>((resolve, reject) => {
      this.nextId += 1;
      const id = this.nextId;
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) port.ref();
      port.postMessage({ id, operation, data: toWire(input) });
    });
  }

  private async result(operation: string, input: unknown): Promise<Record<string, unknown>> {
    const reply = await this.call(operation, input);
    if (reply.error) throw toException(reply.error);
    return reply.result ?? {};
  }

  /**
   * Runs a command on the emulator: its name says the operation, its input is sent as is (data
   * as bytes). Answers the SDK's output shape; fails with the SDK's exceptions.
   */
  // biome-ignore lint/suspicious/noExplicitAny: the SDK's overloaded send, narrowed by the command it is given
  override async send(command: any): Promise<any> {
    const operation = String(command?.constructor?.name ?? '').replace(/Command$/, '');
    const input = (command as { input?: unknown }).input ?? {};
    if (operation === 'GetRecords') {
      const page = await this.getRecordBuffers(input as Kinesis.GetRecordsCommandInput);
      return {
        ...page,
        Records: page.Records.map((r) => ({
          ...r,
          Data: new Uint8Array(r.Data.buffer, r.Data.byteOffset, r.Data.byteLength),
          ...(r.ApproximateArrivalTimestamp !== undefined
            ? { ApproximateArrivalTimestamp: new Date(r.ApproximateArrivalTimestamp * 1000) }
            : {}),
        })),
        $metadata: { httpStatusCode: 200 },
      };
    }
    const output = fromWire(await this.result(operation, input)) as Record<string, unknown>;
    return { ...output, $metadata: { httpStatusCode: 200 } };
  }

  /** GetRecords with each record's data as bytes: views of one buffer handed over without a copy. */
  async getRecordBuffers(input: Kinesis.GetRecordsCommandInput): Promise<BufferRecordsPage> {
    const result = await this.result('GetRecords', input);
    const data = Buffer.from(result.data as ArrayBuffer);
    const records = (result.Records as PackedRecord[]).map((r) => ({
      SequenceNumber: r.SequenceNumber,
      PartitionKey: r.PartitionKey,
      Data: data.subarray(r.start, r.end),
      ...(r.ApproximateArrivalTimestamp !== undefined ? { ApproximateArrivalTimestamp: r.ApproximateArrivalTimestamp } : {}),
    }));
    return {
      Records: records,
      ...(typeof result.NextShardIterator === 'string' ? { NextShardIterator: result.NextShardIterator } : {}),
      ...(typeof result.MillisBehindLatest === 'number' ? { MillisBehindLatest: result.MillisBehindLatest } : {}),
    };
  }

  /** GetRecords with the data as base64 text, as {@link getRecordsRaw} gives it over HTTP. */
  async getRecordsBase64(input: Kinesis.GetRecordsCommandInput): Promise<{
    Records: RawRecord[];
    NextShardIterator?: string;
    MillisBehindLatest?: number;
  }> {
    const page = await this.getRecordBuffers(input);
    return { ...page, Records: page.Records.map((r) => ({ ...r, Data: r.Data.toString('base64') })) };
  }

  /** Closes the port; calls after this fail as if the emulator were gone. */
  override destroy(): void {
    this.destroyed = true;
    this.port?.close();
    super.destroy();
  }
}
