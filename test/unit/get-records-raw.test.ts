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
import { getRecordsRaw } from '../../local/get-records-raw';

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
    await client.send(new PutRecordsCommand({ StreamName: 'raw', Records: payloads.map((data, i) => ({ PartitionKey: `k${i}`, Data: data })) }));
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
