import {
  ConsoleSink,
  KinesisStreamWriter,
  chunkIndexes,
  type OutputRecord,
  sinkFromConfig,
} from '../../functions/lib/stream-writer';
import { withPutRecordsFaults } from '../helpers/failing-kinesis-client';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { loadConfig } from '../../functions/lib/config';

const record = (i: number, bytes = 0): OutputRecord => ({
  partitionKey: `camera-${i % 7}`,
  data: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(bytes) })),
});

const indexOf = (data: Buffer) => (JSON.parse(data.toString('utf8')) as { i: number }).i;

describe('chunkIndexes', () => {
  it('splits at 500 records per call', () => {
    const records = Array.from({ length: 1201 }, (_, i) => record(i));
    const chunks = chunkIndexes(
      records,
      records.map((_, i) => i),
    );
    expect(chunks.map((c) => c.length)).toEqual([500, 500, 201]);
    expect(chunks.flat()).toEqual(records.map((_, i) => i));
  });

  it('splits at 5 MiB per call, counting partition keys', () => {
    // 12 records of ~1,000,000 bytes: 5 fit under 5 MiB (5,242,880), the sixth does not.
    const records = Array.from({ length: 12 }, (_, i) => record(i, 1_000_000));
    const chunks = chunkIndexes(
      records,
      records.map((_, i) => i),
    );
    expect(chunks.map((c) => c.length)).toEqual([5, 5, 2]);
  });
});

describe('KinesisStreamWriter against kinesalite', () => {
  let kinesis: TestKinesis;
  let stream = 0;
  const nextStream = async () => {
    const name = `writer-test-${++stream}`;
    await kinesis.createStreams([name], 2);
    return name;
  };

  beforeAll(async () => {
    kinesis = await startKinesalite();
  });
  afterAll(async () => {
    await kinesis.close();
  });

  it('writes 1,200 records in three PutRecords calls and reads every one back', async () => {
    const name = await nextStream();
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {});
    const writer = new KinesisStreamWriter(faulty.client);
    const records = Array.from({ length: 1200 }, (_, i) => record(i));

    const result = await writer.put(name, records);

    expect(result.failedIndexes).toEqual([]);
    expect(faulty.calls.map((c) => c.entries)).toEqual([500, 500, 200]);
    const stored = await kinesis.readAll(name);
    expect(stored.map((r) => indexOf(r.data)).sort((a, b) => a - b)).toEqual(records.map((_, i) => i));
  });

  it('retries exactly the entries a successful call reported as failed', async () => {
    const name = await nextStream();
    // Entries 3, 10 and 11 fail on their first two sends, then land.
    const flaky = new Set([3, 10, 11]);
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {
      failEntry: (e) =>
        flaky.has(indexOf(e.data)) && e.timesSeenBefore < 2 ? 'ProvisionedThroughputExceededException' : undefined,
    });
    const writer = new KinesisStreamWriter(faulty.client, { maxAttempts: 3, baseDelayMs: 1 });
    const records = Array.from({ length: 20 }, (_, i) => record(i));

    const result = await writer.put(name, records);

    expect(result.failedIndexes).toEqual([]);
    expect(result.retriedEntries).toBe(6);
    expect(faulty.calls.map((c) => [c.entries, c.failedEntries])).toEqual([
      [20, 3],
      [3, 3],
      [3, 0],
    ]);
    const stored = (await kinesis.readAll(name)).map((r) => indexOf(r.data)).sort((a, b) => a - b);
    expect(stored).toEqual(records.map((_, i) => i)); // each exactly once
  });

  it('reports the entries still failing after the bound, and writes all the others once', async () => {
    const name = await nextStream();
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {
      failEntry: (e) => (indexOf(e.data) % 5 === 0 ? 'InternalFailure' : undefined),
    });
    const writer = new KinesisStreamWriter(faulty.client, { maxAttempts: 4, baseDelayMs: 1 });
    const records = Array.from({ length: 23 }, (_, i) => record(i));

    const result = await writer.put(name, records);

    expect(result.failedIndexes).toEqual([0, 5, 10, 15, 20]);
    expect(result.errors?.get(5)).toBe('InternalFailure');
    expect(faulty.calls).toHaveLength(4);
    const stored = (await kinesis.readAll(name)).map((r) => indexOf(r.data)).sort((a, b) => a - b);
    expect(stored).toEqual(records.map((_, i) => i).filter((i) => i % 5 !== 0));
  });

  it('retries a call that throws a transient error, and gives up at once on a missing stream', async () => {
    const name = await nextStream();
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {
      failCall: ({ call }) => (call === 1 ? Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }) : undefined),
    });
    const writer = new KinesisStreamWriter(faulty.client, { maxAttempts: 3, baseDelayMs: 1 });
    const records = Array.from({ length: 4 }, (_, i) => record(i));

    expect((await writer.put(name, records)).failedIndexes).toEqual([]);
    expect(await kinesis.readAll(name)).toHaveLength(4);

    const missing = await writer.put('no-such-stream', records);
    expect(missing.failedIndexes).toEqual([0, 1, 2, 3]);
    expect(missing.errors?.get(0)).toBe('ResourceNotFoundException');
    expect(faulty.calls.filter((c) => c.stream === 'no-such-stream')).toHaveLength(1);
  });

  it('never sends a record over 1 MiB (it would fail its whole call) and reports it', async () => {
    const name = await nextStream();
    const writer = new KinesisStreamWriter(createKinesisClient({ endpoint: kinesis.endpoint }));
    const records = [record(0), record(1, 1024 * 1024), record(2)];

    const result = await writer.put(name, records);

    expect(result.failedIndexes).toEqual([1]);
    expect(result.errors?.get(1)).toBe('RecordTooLarge');
    expect((await kinesis.readAll(name)).map((r) => indexOf(r.data)).sort()).toEqual([0, 2]);
  });
});

describe('ConsoleSink and sinkFromConfig', () => {
  it('prints one JSON line per record', async () => {
    const lines: string[] = [];
    const sink = new ConsoleSink((line) => lines.push(line));
    await sink.put('predictions', [record(1), { partitionKey: 'k', data: Buffer.from([0xff, 0x00]) }]);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
      { stream: 'predictions', partitionKey: 'camera-1', record: { i: 1, pad: '' } },
      { stream: 'predictions', partitionKey: 'k', data: '/wA=' },
    ]);
  });

  it('prints under sls invoke local with no endpoint, writes to Kinesis otherwise', () => {
    expect(sinkFromConfig(loadConfig({ IS_LOCAL: 'true' }))).toBeInstanceOf(ConsoleSink);
    expect(sinkFromConfig(loadConfig({ IS_LOCAL: 'true', KINESIS_ENDPOINT: 'http://127.0.0.1:4567' }))).toBeInstanceOf(
      KinesisStreamWriter,
    );
    expect(sinkFromConfig(loadConfig({}))).toBeInstanceOf(KinesisStreamWriter);
  });
});
