/**
 * A Kinesis client whose reads are served by Stream Manager: the event source mapping runner
 * (local/runner/) takes it as its client and so drives the handlers over Stream Manager
 * streams with exactly the semantics it has over Kinesis (batches, partial batch responses,
 * bisect, retry limits, on-failure records, tumbling windows, checkpoints after success).
 *
 * The SDK's requests are answered here instead of over HTTP. Each Stream Manager stream is one
 * shard (`shardId-000000000000`) whose sequence numbers are Stream Manager's; a shard iterator
 * is the next sequence number to read. GetRecords is one `readMessages` call that returns what
 * is there (at most `Limit`) without waiting. Messages have no partition key in Stream Manager:
 * each record carries the stream's name as its key (one ordered lane per stream).
 */
import { Readable } from 'node:stream';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { type StreamManagerClientLike, streamManagerSdk } from './stream-manager';

export const SHARD_ID = 'shardId-000000000000';
/** Most messages one GetRecords returns (Kinesis' own limit is 10,000). */
const MAX_READ = 10_000;

interface Iterator {
  stream: string;
  next: number;
}

class KinesisError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const encodeIterator = (it: Iterator): string => Buffer.from(JSON.stringify(it)).toString('base64');
function decodeIterator(value: unknown): Iterator {
  try {
    const it = JSON.parse(Buffer.from(String(value), 'base64').toString('utf8')) as Iterator;
    if (typeof it.stream === 'string' && Number.isInteger(it.next) && it.next >= 0) return it;
  } catch {
    // Reported below.
  }
  throw new KinesisError('InvalidArgumentException', 'ShardIterator is not one this endpoint issued');
}

export interface StreamManagerReadEvents {
  /** Stream Manager removed messages before they were read (the stream was full or past its TTL). */
  onGap?: (stream: string, expected: number, got: number) => void;
}

/** Answers the Kinesis read API from Stream Manager. Exported for tests; use {@link kinesisClientOverStreamManager}. */
export class StreamManagerKinesisApi {
  constructor(
    private readonly client: StreamManagerClientLike,
    private readonly region: string,
    private readonly events: StreamManagerReadEvents = {},
  ) {}

  private arn(stream: string): string {
    return `arn:aws:kinesis:${this.region}:000000000000:stream/${stream}`;
  }

  private async exists(stream: string): Promise<void> {
    const streams = await this.client.listStreams();
    if (!streams.includes(stream))
      throw new KinesisError('ResourceNotFoundException', `Stream ${stream} not found in Stream Manager`);
  }

  /** One Kinesis API call: `target` as in X-Amz-Target (e.g. "GetRecords"), `input` its JSON body. */
  async call(target: string, input: Record<string, unknown>): Promise<unknown> {
    switch (target) {
      case 'ListShards': {
        const stream = String(input.StreamName ?? '');
        await this.exists(stream);
        return {
          Shards: [
            {
              ShardId: SHARD_ID,
              HashKeyRange: { StartingHashKey: '0', EndingHashKey: '340282366920938463463374607431768211455' },
              SequenceNumberRange: { StartingSequenceNumber: '0' },
            },
          ],
        };
      }
      case 'DescribeStreamSummary': {
        const stream = String(input.StreamName ?? '');
        await this.exists(stream);
        return {
          StreamDescriptionSummary: {
            StreamName: stream,
            StreamARN: this.arn(stream),
            StreamStatus: 'ACTIVE',
            RetentionPeriodHours: 24,
            StreamCreationTimestamp: 0,
            EnhancedMonitoring: [],
            OpenShardCount: 1,
          },
        };
      }
      case 'GetShardIterator':
        return { ShardIterator: encodeIterator(await this.iterator(input)) };
      case 'GetRecords':
        return this.records(decodeIterator(input.ShardIterator), Number(input.Limit ?? MAX_READ));
      default:
        throw new KinesisError('UnknownOperationException', `${target} is not served over Stream Manager (only reads are)`);
    }
  }

  private async iterator(input: Record<string, unknown>): Promise<Iterator> {
    const stream = String(input.StreamName ?? '');
    await this.exists(stream);
    const type = input.ShardIteratorType;
    const seq = (): number => {
      const n = Number(input.StartingSequenceNumber);
      if (!Number.isInteger(n) || n < 0)
        throw new KinesisError(
          'InvalidArgumentException',
          `StartingSequenceNumber ${String(input.StartingSequenceNumber)} is not a Stream Manager sequence number`,
        );
      return n;
    };
    if (type === 'TRIM_HORIZON') return { stream, next: 0 };
    if (type === 'AT_SEQUENCE_NUMBER') return { stream, next: seq() };
    if (type === 'AFTER_SEQUENCE_NUMBER') return { stream, next: seq() + 1 };
    if (type === 'LATEST') {
      const info = await this.client.describeMessageStream(stream);
      const newest = info.storageStatus?.newestSequenceNumber;
      return { stream, next: typeof newest === 'number' && newest >= 0 ? newest + 1 : 0 };
    }
    throw new KinesisError('InvalidArgumentException', `ShardIteratorType ${String(type)} is not supported over Stream Manager`);
  }

  private async records(it: Iterator, limit: number): Promise<unknown> {
    const sdk = streamManagerSdk();
    const options = new sdk.ReadMessagesOptions()
      .withDesiredStartSequenceNumber(it.next)
      .withMinMessageCount(1)
      .withMaxMessageCount(Math.max(1, Math.min(limit, MAX_READ)))
      .withReadTimeoutMillis(0);
    let messages: Awaited<ReturnType<StreamManagerClientLike['readMessages']>>;
    try {
      messages = await this.client.readMessages(it.stream, options);
    } catch (error: unknown) {
      // Nothing new yet: an empty page, as Kinesis returns at the tip of a shard.
      if (error instanceof sdk.NotEnoughMessagesException) {
        return { Records: [], NextShardIterator: encodeIterator(it), MillisBehindLatest: 0 };
      }
      if (error instanceof sdk.ResourceNotFoundException)
        throw new KinesisError('ResourceNotFoundException', (error as Error).message);
      throw error;
    }
    const first = messages[0];
    if (first && first.sequenceNumber > it.next) this.events.onGap?.(it.stream, it.next, first.sequenceNumber);
    const last = messages[messages.length - 1];
    return {
      Records: messages.map((m) => ({
        SequenceNumber: String(m.sequenceNumber),
        PartitionKey: it.stream,
        Data: Buffer.from(m.payload).toString('base64'),
        ApproximateArrivalTimestamp: m.ingestTime / 1000,
      })),
      NextShardIterator: encodeIterator({ stream: it.stream, next: last ? last.sequenceNumber + 1 : it.next }),
      MillisBehindLatest: 0,
    };
  }
}

/**
 * A KinesisClient for the runner whose read calls go to Stream Manager (see the file's
 * comment). Writes are not served: the handlers write through a {@link StreamManagerRecordSink}.
 */
export function kinesisClientOverStreamManager(
  client: StreamManagerClientLike,
  region = 'us-east-1',
  events: StreamManagerReadEvents = {},
): KinesisClient {
  const api = new StreamManagerKinesisApi(client, region, events);
  return new KinesisClient({
    region,
    endpoint: 'http://stream-manager.localhost',
    // Never sent anywhere: the client's requests are answered by Stream Manager; the SDK insists on some.
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    requestHandler: {
      async handle(request: { headers: Record<string, string>; body?: unknown }) {
        const target =
          String(request.headers['x-amz-target'] ?? '')
            .split('.')
            .pop() ?? '';
        const text =
          typeof request.body === 'string'
            ? request.body
            : new TextDecoder().decode((request.body as Uint8Array | undefined) ?? new Uint8Array());
        let status = 200;
        let payload: unknown;
        try {
          payload = await api.call(target, text ? (JSON.parse(text) as Record<string, unknown>) : {});
        } catch (error: unknown) {
          if (!(error instanceof KinesisError)) throw error;
          status = 400;
          payload = { __type: error.type, message: error.message };
        }
        const body = Buffer.from(JSON.stringify(payload));
        return {
          response: {
            statusCode: status,
            reason: status === 200 ? 'OK' : 'Bad Request',
            headers: { 'content-type': 'application/x-amz-json-1.1', 'content-length': String(body.length) },
            body: Readable.from([body]),
          },
        };
      },
      updateHttpClientConfig: () => undefined,
      httpHandlerConfigs: () => ({}),
    } as never,
  });
}
