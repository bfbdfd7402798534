/**
 * Deleting finished records from the embedded emulator's store: only the records of the shard
 * asked for, only below the bound (as numbers), readable as usual afterwards, on both hosts and
 * in the persisted LevelDB store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  PutRecordsCommand,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';

const SHARD_0 = 'shardId-000000000000';
const SHARD_1 = 'shardId-000000000001';
/** Explicit hash keys at the two ends of the hash key range: shard 0 and shard 1 of a 2-shard stream. */
const HASH_KEY = { [SHARD_0]: '0', [SHARD_1]: ((1n << 128n) - 1n).toString() };

/** Puts `count` records `<shard>-<i>` into one shard; returns their sequence numbers in order. */
async function put(client: KinesisClient, stream: string, shardId: keyof typeof HASH_KEY, count: number): Promise<string[]> {
  const out = await client.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: Array.from({ length: count }, (_, i) => ({
        PartitionKey: 'k',
        ExplicitHashKey: HASH_KEY[shardId],
        Data: Buffer.from(`${shardId}-${i}`),
      })),
    }),
  );
  expect(out.FailedRecordCount).toBe(0);
  const entries = out.Records ?? [];
  expect(entries.every((r) => r.ShardId === shardId)).toBe(true);
  return entries.map((r) => r.SequenceNumber ?? '');
}

/** Every record of a shard from `type` (the data as text). */
async function read(
  client: KinesisClient,
  stream: string,
  shardId: string,
  type: ShardIteratorType = 'TRIM_HORIZON',
  after?: string,
): Promise<string[]> {
  let iterator = (
    await client.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shardId,
        ShardIteratorType: type,
        ...(after ? { StartingSequenceNumber: after } : {}),
      }),
    )
  ).ShardIterator;
  const out: string[] = [];
  while (iterator) {
    const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
    const records = page.Records ?? [];
    out.push(...records.map((r) => Buffer.from(r.Data ?? new Uint8Array()).toString()));
    if (records.length === 0) break;
    iterator = page.NextShardIterator;
  }
  return out;
}

const names = (shardId: string, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `${shardId}-${from + i}`);
const plusOne = (seq: string): string => (BigInt(seq) + 1n).toString();

describe.each([
  ['in a worker thread', false],
  ['on the main thread', true],
])('KinesisEmulator.trim (%s)', (_mode, sameThread) => {
  let emulator: KinesisEmulator;
  let client: KinesisClient;

  beforeEach(async () => {
    emulator = await KinesisEmulator.start({ port: 0, sameThread });
    client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    await ensureStreams(client, [
      { name: 'two', shards: 2 },
      { name: 'other', shards: 1 },
    ]);
  });
  afterEach(async () => {
    client.destroy();
    await emulator.stop();
  });

  it('deletes only the shard records below the bound; TRIM_HORIZON then starts at the first record kept', async () => {
    // Prepare
    const seqs = await put(client, 'two', SHARD_0, 10);
    await put(client, 'two', SHARD_1, 5);
    await put(client, 'other', SHARD_0, 3);

    // Act: everything before record 4 of shard 0.
    const deleted = await emulator.trim('two', SHARD_0, seqs[4] as string);
    const again = await emulator.trim('two', SHARD_0, seqs[4] as string);

    // Assess
    expect({ deleted, again }).toEqual({ deleted: 4, again: 0 });
    expect(await read(client, 'two', SHARD_0)).toEqual(names(SHARD_0, 4, 10));
    expect(await read(client, 'two', SHARD_1)).toEqual(names(SHARD_1, 0, 5));
    expect(await read(client, 'other', SHARD_0)).toEqual(names(SHARD_0, 0, 3));
    expect(await emulator.trimmedRecords('two')).toBe(4);
    expect(await emulator.trimmedRecords('other')).toBe(0);
  });

  it('compares sequence numbers as numbers, whatever their length', async () => {
    // Prepare: the emulator's sequence numbers have 56 digits and start with 4 to 7.
    const seqs = await put(client, 'two', SHARD_0, 6);
    expect(seqs.every((s) => /^[4-7]\d{55}$/.test(s))).toBe(true);

    // Act + Assess: "9" sorts after them as text but is smaller as a number: nothing goes.
    expect(await emulator.trim('two', SHARD_0, '9')).toBe(0);
    expect(await read(client, 'two', SHARD_0)).toEqual(names(SHARD_0, 0, 6));
    // One past record 2, as a number: records 0-2 go, 3 stays.
    expect(await emulator.trim('two', SHARD_0, plusOne(seqs[2] as string))).toBe(3);
    expect(await read(client, 'two', SHARD_0)).toEqual(names(SHARD_0, 3, 6));
    // 57 digits sort before them as text but are larger as a number: everything goes.
    expect(await emulator.trim('two', SHARD_0, `1${'0'.repeat(56)}`)).toBe(3);
    expect(await read(client, 'two', SHARD_0)).toEqual([]);
    expect(await emulator.trimmedRecords('two')).toBe(6);
  });

  it('keeps the stream working after everything was trimmed: new puts, AFTER_SEQUENCE_NUMBER of a deleted record', async () => {
    // Prepare
    const seqs = await put(client, 'two', SHARD_0, 3);
    const last = seqs[2] as string;
    expect(await emulator.trim('two', SHARD_0, plusOne(last))).toBe(3);

    // Act
    await put(client, 'two', SHARD_0, 2);

    // Assess
    expect(await read(client, 'two', SHARD_0)).toEqual(names(SHARD_0, 0, 2));
    expect(await read(client, 'two', SHARD_0, 'AFTER_SEQUENCE_NUMBER', last)).toEqual(names(SHARD_0, 0, 2));
    expect(await read(client, 'two', SHARD_0, 'AT_SEQUENCE_NUMBER', seqs[1])).toEqual(names(SHARD_0, 0, 2));
  });

  it('refuses an unknown stream or shard and a bound that is not a sequence number', async () => {
    await put(client, 'two', SHARD_0, 2);
    await expect(emulator.trim('missing', SHARD_0, '5')).rejects.toThrow(/missing/);
    await expect(emulator.trim('two', 'shardId-000000000002', '5')).rejects.toThrow(/no shard/);
    await expect(emulator.trim('two', 'shard-0', '5')).rejects.toThrow(/not a shard id/);
    await expect(emulator.trim('two', SHARD_0, '-1')).rejects.toThrow(/not a sequence number/);
    await expect(emulator.trim('two', SHARD_0, '1e60')).rejects.toThrow(/not a sequence number/);
    expect(await read(client, 'two', SHARD_0)).toEqual(names(SHARD_0, 0, 2));
  });
});

describe('KinesisEmulator.trim with --persist (LevelDB)', () => {
  it.each([
    ['in a worker thread', false],
    ['on the main thread', true],
  ])(
    'deletes from the store on disk: gone after a restart, and the count of deleted records kept (%s)',
    async (_mode, sameThread) => {
      // Prepare
      const dir = mkdtempSync(join(tmpdir(), 'emulator-trim-'));
      let emulator = await KinesisEmulator.start({ port: 0, persistPath: dir, sameThread });
      const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
      try {
        await ensureStreams(client, [{ name: 'kept', shards: 2 }]);
        const seqs = await put(client, 'kept', SHARD_0, 8);
        await put(client, 'kept', SHARD_1, 2);

        // Act
        const deleted = await emulator.trim('kept', SHARD_0, seqs[5] as string);
        await emulator.stop();
        emulator = await KinesisEmulator.start({ port: Number(new URL(emulator.endpoint).port), persistPath: dir, sameThread });

        // Assess
        expect(deleted).toBe(5);
        expect(await read(client, 'kept', SHARD_0)).toEqual(names(SHARD_0, 5, 8));
        expect(await read(client, 'kept', SHARD_1)).toEqual(names(SHARD_1, 0, 2));
        expect(await emulator.trimmedRecords('kept')).toBe(5);
        expect(await emulator.trim('kept', SHARD_0, plusOne(seqs[7] as string))).toBe(3);
        expect(await emulator.trimmedRecords('kept')).toBe(8);
      } finally {
        client.destroy();
        await emulator.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
