/**
 * GetRecords with the data left as base64 must return what the SDK's own GetRecords returns,
 * and fail the way it fails.
 */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  InvalidArgumentException,
  PutRecordsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import fc from 'fast-check';
import { getRecordsRaw, parseGetRecordsBody } from '../../local/runner/get-records-raw';

let emulator: KinesisEmulator;
let client: ReturnType<typeof createKinesisClient>;

beforeAll(async () => {
  emulator = await KinesisEmulator.start({ port: 0 });
  client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
  await ensureStreams(client, [{ name: 'raw', shards: 1 }]);
});

afterAll(async () => {
  client.destroy();
  await emulator.stop();
});

const iterator = async (): Promise<string> => {
  const out = await client.send(
    new GetShardIteratorCommand({ StreamName: 'raw', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
  );
  return out.ShardIterator ?? '';
};

describe('getRecordsRaw', () => {
  it('returns the records, iterator and lag the SDK returns, data as base64', async () => {
    const payloads = [Buffer.from('{"a":1}'), Buffer.alloc(300_000, 7), Buffer.from([0, 255, 254, 1]), Buffer.from('é ✓')];
    await client.send(
      new PutRecordsCommand({ StreamName: 'raw', Records: payloads.map((data, i) => ({ PartitionKey: `k${i}`, Data: data })) }),
    );
    const start = await iterator();

    const sdk = await client.send(new GetRecordsCommand({ ShardIterator: start, Limit: 3 }));
    const raw = await getRecordsRaw(client, { ShardIterator: start, Limit: 3 });

    expect(raw.Records).toHaveLength(3);
    expect(raw.Records).toEqual(
      (sdk.Records ?? []).map((r) => ({
        SequenceNumber: r.SequenceNumber,
        PartitionKey: r.PartitionKey,
        Data: Buffer.from(r.Data ?? new Uint8Array()).toString('base64'),
        ApproximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? Number.NaN) / 1000,
      })),
    );
    expect(raw.MillisBehindLatest).toBe(sdk.MillisBehindLatest);
    const rest = await getRecordsRaw(client, { ShardIterator: raw.NextShardIterator ?? '' });
    expect(rest.Records.map((r) => Buffer.from(r.Data, 'base64'))).toEqual([payloads[3]]);
  });

  it('fails with the SDK exceptions for a bad iterator or a missing stream', async () => {
    await expect(getRecordsRaw(client, { ShardIterator: 'not-an-iterator' })).rejects.toBeInstanceOf(InvalidArgumentException);
    const start = await iterator();
    await client.send(new PutRecordsCommand({ StreamName: 'raw', Records: [{ PartitionKey: 'k', Data: Buffer.from('x') }] }));
    const deleted = await KinesisEmulator.start({ port: 0 });
    const other = createKinesisClient({ endpoint: deleted.endpoint, region: 'us-east-1' });
    try {
      // An iterator of a stream this emulator never had.
      await expect(getRecordsRaw(other, { ShardIterator: start })).rejects.toBeInstanceOf(ResourceNotFoundException);
    } finally {
      other.destroy();
      await deleted.stop();
    }
  });
});

describe('parseGetRecordsBody', () => {
  const big = Buffer.alloc(300_000, 0xab).toString('base64');
  const page = (records: unknown[]) => ({ MillisBehindLatest: 0, NextShardIterator: 'AAAA/b+c==', Records: records });
  const body = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

  it('gives what JSON.parse gives for any page, large or small', () => {
    const record = fc.record({
      SequenceNumber: fc.bigInt({ min: 0n, max: 10n ** 56n }).map(String),
      // Partition keys may hold anything, the text of a Data field included.
      PartitionKey: fc.oneof(
        fc.string({ maxLength: 20, unit: 'grapheme' }),
        fc.constant('"Data":"x'),
        fc.constant('\\"Data\\":\\"'),
      ),
      Data: fc.oneof(
        fc.constant(big),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
      ),
      ApproximateArrivalTimestamp: fc.double({ min: 0, max: 2e9, noNaN: true }),
    });
    fc.assert(
      fc.property(fc.array(record, { maxLength: 6 }), (records) => {
        const value = page(records);
        expect(parseGetRecordsBody(body(value))).toEqual(value);
      }),
      { numRuns: 200, seed: 11 },
    );
  });

  it('falls back to JSON.parse when the data is escaped or a Data field sits elsewhere', () => {
    const escaped = Buffer.from(
      `{"Records":[{"SequenceNumber":"1","PartitionKey":"k","Data":"${big.slice(0, 100)}\\/${big}"}]}`,
      'utf8',
    );
    expect(parseGetRecordsBody(escaped)).toEqual(JSON.parse(escaped.toString('utf8')));
    const elsewhere = page([{ SequenceNumber: '1', PartitionKey: 'k', Data: big }]);
    const extra = { ...elsewhere, ChildShards: [{ Data: 'not a record' }] };
    expect(parseGetRecordsBody(body(extra))).toEqual(extra);
  });

  it('throws as JSON.parse does on a malformed body', () => {
    const cut = body(page([{ SequenceNumber: '1', PartitionKey: 'k', Data: big }])).subarray(0, 350_000);
    expect(() => parseGetRecordsBody(cut)).toThrow(SyntaxError);
  });
});
