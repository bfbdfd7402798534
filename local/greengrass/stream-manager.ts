/**
 * Typed access to the Stream Manager client of `aws-greengrass-core-sdk` (plain JavaScript,
 * no type declarations): only the calls and data classes this project uses.
 */

/** A message as `readMessages` returns it. */
export interface StreamManagerMessage {
  streamName: string;
  sequenceNumber: number;
  ingestTime: number;
  payload: Buffer;
}

export interface StreamManagerClientLike {
  appendMessage(streamName: string, data: Buffer): Promise<number>;
  readMessages(streamName: string, options?: unknown): Promise<StreamManagerMessage[]>;
  createMessageStream(definition: unknown): Promise<void>;
  updateMessageStream(definition: unknown): Promise<void>;
  listStreams(): Promise<string[]>;
  describeMessageStream(
    streamName: string,
  ): Promise<{ storageStatus?: { oldestSequenceNumber?: number; newestSequenceNumber?: number } }>;
  onConnected(callback: () => void): void;
  onError(callback: (error: Error) => void): void;
  close(): void;
}

/** Builder-style data classes of the SDK (each `withX` returns the object). */
type BuilderMethod =
  | 'withDesiredStartSequenceNumber'
  | 'withMinMessageCount'
  | 'withMaxMessageCount'
  | 'withReadTimeoutMillis'
  | 'withName'
  | 'withMaxSize'
  | 'withStreamSegmentSize'
  | 'withTimeToLiveMillis'
  | 'withStrategyOnFull'
  | 'withPersistence'
  | 'withFlushOnWrite'
  | 'withExportDefinition'
  | 'withKinesis'
  | 'withIdentifier'
  | 'withKinesisStreamName'
  | 'withBatchSize'
  | 'withBatchIntervalMillis'
  | 'withPriority';
export type Builder = { [method in BuilderMethod]: (value: unknown) => Builder };

export interface StreamManagerModule {
  StreamManagerClient: new (options?: {
    port?: number;
    host?: string;
    logger?: unknown;
    onConnectCb?: () => void;
    onErrorCb?: (e: Error) => void;
  }) => StreamManagerClientLike;
  ReadMessagesOptions: new () => Builder;
  MessageStreamDefinition: new () => Builder;
  ExportDefinition: new () => Builder;
  KinesisConfig: new () => Builder;
  StrategyOnFull: { RejectNewData: unknown; OverwriteOldestData: unknown };
  Persistence: { File: unknown; Memory: unknown };
  ResourceNotFoundException: new (...args: unknown[]) => Error;
  NotEnoughMessagesException: new (...args: unknown[]) => Error;
  InvalidRequestException: new (...args: unknown[]) => Error;
}

/** The SDK's Stream Manager module (loaded on first use, so nothing else pays for it). */
export function streamManagerSdk(): StreamManagerModule {
  return require('aws-greengrass-core-sdk/stream-manager') as StreamManagerModule;
}

/** Connects a Stream Manager client; resolves once connected, rejects on a connection error. */
export async function connectStreamManager(
  options: { port?: number; host?: string; quiet?: boolean } = {},
): Promise<StreamManagerClientLike> {
  const sdk = streamManagerSdk();
  const silent = { error: () => undefined, info: () => undefined, debug: () => undefined, warn: () => undefined };
  return new Promise((resolve, reject) => {
    const client = new sdk.StreamManagerClient({
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.host ? { host: options.host } : {}),
      ...(options.quiet === false ? {} : { logger: silent }),
    });
    let settled = false;
    client.onConnected(() => {
      settled = true;
      resolve(client);
    });
    client.onError((error) => {
      if (settled) return;
      settled = true;
      client.close();
      reject(error);
    });
  });
}
