/**
 * Test helpers for the local event source mapping runner: mapping factories with Lambda's
 * defaults, a recording handler, and record producers against the real emulator.
 */
import { PutRecordsCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import type { Context, KinesisStreamEvent, KinesisStreamTumblingWindowEvent } from 'aws-lambda';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { KinesisEmulator } from '../../local/emulator';
import { DirectKinesisClient } from '../../local/emulator/direct-client';
import { EventSourceMappingRunner, type RunnerMapping, type RunnerOptions } from '../../local/runner';

let counter = 0;
/** A stream name not used by any other test in the file. */
export function uniqueStream(prefix = 'test'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** A mapping with Lambda's defaults for a Kinesis source, then `overrides`. */
export function mappingFor(stream: string, overrides: Partial<RunnerMapping> = {}): RunnerMapping {
  return {
    functionName: `fn-${stream}`,
    stream,
    batchSize: 100,
    batchWindowSeconds: 0,
    startingPosition: 'TRIM_HORIZON',
    parallelizationFactor: 1,
    reportBatchItemFailures: true,
    bisectBatchOnFunctionError: false,
    maximumRetryAttempts: -1,
    maximumRecordAgeInSeconds: -1,
    tumblingWindowInSeconds: 0,
    onFailure: { arn: 'arn:aws:sqs:us-east-1:000000000000:test-dlq', type: 'sqs' },
    timeoutSeconds: 30,
    ...overrides,
  };
}

/** Puts `bodies` as JSON records, in order, one partition key per record unless given. */
export async function putJson(
  client: KinesisClient,
  stream: string,
  bodies: readonly unknown[],
  partitionKey: (index: number) => string = (i) => `key-${i}`,
): Promise<string[]> {
  const sequenceNumbers: string[] = [];
  for (let start = 0; start < bodies.length; start += 500) {
    const chunk = bodies.slice(start, start + 500);
    const out = await client.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: chunk.map((body, i) => ({
          PartitionKey: partitionKey(start + i),
          Data: Buffer.from(JSON.stringify(body)),
        })),
      }),
    );
    if (out.FailedRecordCount) throw new Error(`put failed for ${out.FailedRecordCount} records`);
    for (const r of out.Records ?? []) sequenceNumbers.push(r.SequenceNumber ?? '');
  }
  return sequenceNumbers;
}

/** Decodes an event record's payload as JSON. */
export function bodyOf(record: KinesisStreamEvent['Records'][number]): unknown {
  return JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
}

export interface Invocation {
  event: KinesisStreamEvent & Partial<KinesisStreamTumblingWindowEvent> & { shardId?: string; eventSourceARN?: string };
  context: Context;
  /** Payload `n` field of each record, for compact assertions. */
  ns: number[];
}

/** Records every invocation and delegates the response to `respond`. */
export function recordingHandler(
  respond: (event: Invocation['event'], call: number) => unknown | Promise<unknown> = () => ({ batchItemFailures: [] }),
): { handler: (event: never, context: Context) => Promise<unknown>; calls: Invocation[] } {
  const calls: Invocation[] = [];
  const handler = async (raw: never, context: Context): Promise<unknown> => {
    const event = raw as Invocation['event'];
    const ns = event.Records.map((r) => (bodyOf(r) as { n: number }).n);
    calls.push({ event, context, ns });
    return respond(event, calls.length);
  };
  return { handler, calls };
}

export interface RunnerSuite {
  /** A client of the suite's emulator (set once its `beforeAll` has run). */
  readonly client: KinesisClient;
  /** A runner on `kinesis` (the suite's emulator by default) with quick polls, stopped after the test. */
  runnerFor(options?: Partial<RunnerOptions>, kinesis?: KinesisClient): EventSourceMappingRunner;
}

/**
 * Registers the hooks of a runner suite: one emulator for the suite, and every runner made by
 * `runnerFor` stopped after each test. `warn` receives the runners' warnings.
 */
/** How the runner under test reaches the emulator: HTTP, or the embedded emulator's direct path. */
export type RunnerTransport = 'http' | 'direct';

/**
 * A client of an emulator running in this process over `transport` (a direct one reconnects to
 * an emulator restarted on the same port).
 */
export function clientOf(emulator: KinesisEmulator, transport: RunnerTransport = 'http'): KinesisClient {
  if (transport === 'http') return createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
  const port = emulator.port;
  return new DirectKinesisClient(undefined, 'us-east-1', () => KinesisEmulator.openDirectPortAt(port));
}

export function runnerSuite(warn: (message: string) => void = () => undefined, transport: RunnerTransport = 'http'): RunnerSuite {
  let emulator: KinesisEmulator | undefined;
  let client: KinesisClient | undefined;
  const runners: EventSourceMappingRunner[] = [];
  beforeAll(async () => {
    emulator = await KinesisEmulator.start({ port: 0 });
    client = clientOf(emulator, transport);
  });
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    client?.destroy();
    await emulator?.stop();
  });
  const suite: RunnerSuite = {
    get client(): KinesisClient {
      if (!client) throw new Error('the runner suite has no emulator yet: use its client inside a test');
      return client;
    },
    runnerFor(options = {}, kinesis = suite.client) {
      const runner = new EventSourceMappingRunner({
        client: kinesis,
        retryBaseDelayMs: 5,
        maxIdlePollMs: 30,
        logger: { debug: () => undefined, warn },
        ...options,
      });
      runners.push(runner);
      return runner;
    },
  };
  return suite;
}
