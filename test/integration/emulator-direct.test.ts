/**
 * The embedded emulator's direct path: the same store, actions and errors as over HTTP, with
 * record data as bytes; and the backlog bound, which refuses writes on both paths alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  InvalidArgumentException,
  type KinesisClient,
  PutRecordsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { DirectKinesisClient } from '../../local/emulator/direct-client';
import { ensureStreams, KinesisEmulator, RECORD_FOOTPRINT_BYTES } from '../../local/emulator';
import { getRecordsRaw } from '../../local/runner/get-records-raw';
import { isConnectionError } from '../../local/runner';

async function iterator(client: KinesisClient, stream: string): Promise<string> {
  const out = await client.send(
    new GetShardIteratorCommand({ StreamName: stream, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
  );
  return out.ShardIterator as string;
}

const payloads = [Buffer.from('{"a":1}'), Buffer.alloc(300_000, 7), Buffer.from([0, 255, 1, 254]), Buffer.alloc(1, 61)];

describe.each([
  ['in memory, worker thread', { persist: false, sameThread: false }],
  ['in memory, main thread', { persist: false, sameThread: true }],
  ['persisted', { persist: true, sameThread: false }],
])('the direct path (%s)', (_name, mode) => {
  let dir: string;
  let emulator: KinesisEmulator;
  let http: KinesisClient;
  let direct: DirectKinesisClient;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'direct-'));
    emulator = await KinesisEmulator.start({
      port: 0,
      sameThread: mode.sameThread,
      ...(mode.persist ? { persistPath: dir } : {}),
    });
    http = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    direct = new DirectKinesisClient(emulator.openDirectPort());
    await ensureStreams(direct, [{ name: 'frames', shards: 1 }]);
  });

  afterEach(async () => {
    direct.destroy();
    http.destroy();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads back over HTTP and directly the same records, whichever path wrote them', async () => {
    // Prepare: half written directly, half over HTTP
    const written = await new KinesisStreamWriter(direct).put(
      'frames',
      payloads.map((data, i) => ({ partitionKey: `cam-${i}`, data })),
    );
    await http.send(
      new PutRecordsCommand({ StreamName: 'frames', Records: payloads.map((Data, i) => ({ PartitionKey: `web-${i}`, Data })) }),
    );

    // Act
    const overHttp = await http.send(new GetRecordsCommand({ ShardIterator: await iterator(http, 'frames') }));
    const raw = await getRecordsRaw(http, { ShardIterator: await iterator(http, 'frames') });
    const directly = await direct.getRecordBuffers({ ShardIterator: await iterator(direct, 'frames') });
    const viaSend = await direct.send(new GetRecordsCommand({ ShardIterator: await iterator(direct, 'frames') }));

    // Assess
    expect(written.failedIndexes).toEqual([]);
    const expected = [...payloads, ...payloads].map((p) => p.toString('hex'));
    expect((overHttp.Records ?? []).map((r) => Buffer.from(r.Data ?? []).toString('hex'))).toEqual(expected);
    expect(raw.Records.map((r) => Buffer.from(r.Data, 'base64').toString('hex'))).toEqual(expected);
    expect(directly.Records.map((r) => r.Data.toString('hex'))).toEqual(expected);
    expect(directly.Records.map((r) => r.SequenceNumber)).toEqual((overHttp.Records ?? []).map((r) => r.SequenceNumber));
    expect(directly.Records.map((r) => r.PartitionKey)).toEqual((overHttp.Records ?? []).map((r) => r.PartitionKey));
    expect(viaSend.Records[0].ApproximateArrivalTimestamp).toEqual(overHttp.Records?.[0]?.ApproximateArrivalTimestamp);
    expect(directly.NextShardIterator).toEqual(expect.any(String));
  });

  it("answers with the SDK's exceptions, as over HTTP", async () => {
    await expect(direct.send(new DescribeStreamSummaryCommand({ StreamName: 'missing' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
    await expect(direct.send(new GetRecordsCommand({ ShardIterator: 'AAAA' }))).rejects.toBeInstanceOf(InvalidArgumentException);
    const tooBig = direct.send(
      new PutRecordsCommand({ StreamName: 'frames', Records: [{ PartitionKey: 'k', Data: Buffer.alloc(1_048_577) }] }),
    );
    await expect(tooBig).rejects.toMatchObject({ name: 'ValidationException' });
  });

  it('fails calls like a refused connection once the emulator has stopped', async () => {
    await emulator.stop();
    const error = await direct.send(new DescribeStreamSummaryCommand({ StreamName: 'frames' })).catch((e: unknown) => e);
    expect(isConnectionError(error)).toBe(true);
  });
});

describe('reconnecting', () => {
  it('fails like a refused connection while the emulator is down and reconnects once it is back on its port', async () => {
    // Prepare
    const dir = mkdtempSync(join(tmpdir(), 'direct-restart-'));
    let emulator = await KinesisEmulator.start({ port: 0, persistPath: dir });
    const port = emulator.port;
    const client = new DirectKinesisClient(undefined, 'us-east-1', () => KinesisEmulator.openDirectPortAt(port));
    try {
      await ensureStreams(client, [{ name: 'kept', shards: 1 }]);
      await client.send(new PutRecordsCommand({ StreamName: 'kept', Records: [{ PartitionKey: 'k', Data: Buffer.from('x') }] }));

      // Act
      await emulator.stop();
      const whileDown = await client.send(new DescribeStreamSummaryCommand({ StreamName: 'kept' })).catch((e: unknown) => e);
      const again = await client.send(new DescribeStreamSummaryCommand({ StreamName: 'kept' })).catch((e: unknown) => e);
      emulator = await KinesisEmulator.start({ port, persistPath: dir });
      const page = await client.getRecordBuffers({ ShardIterator: await iterator(client, 'kept') });

      // Assess
      expect(isConnectionError(whileDown)).toBe(true);
      expect(isConnectionError(again)).toBe(true);
      expect(page.Records.map((r) => r.Data.toString())).toEqual(['x']);
    } finally {
      client.destroy();
      await emulator.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the backlog bound', () => {
  it('is under pressure when many small records weigh half the bound, counted with their footprint in the store', async () => {
    // Prepare: a bound of 1 MB on "frames"; small records on another stream
    const emulator = await KinesisEmulator.start({ port: 0, backlogLimits: { frames: 1024 * 1024 } });
    const direct = new DirectKinesisClient(emulator.openDirectPort());
    try {
      await ensureStreams(direct, [
        { name: 'frames', shards: 1 },
        { name: 'other', shards: 1 },
      ]);
      const small = (n: number) => Array.from({ length: n }, (_, i) => ({ PartitionKey: `k${i}`, Data: Buffer.alloc(10, 1) }));
      const footprint = RECORD_FOOTPRINT_BYTES + 10;
      const underHalf = Math.floor((512 * 1024) / footprint) - 1;

      // Act: just under half the bound, then past it
      await direct.send(new PutRecordsCommand({ StreamName: 'other', Records: small(underHalf) }));
      const before = await emulator.underPressure();
      await direct.send(new PutRecordsCommand({ StreamName: 'other', Records: small(2) }));
      const after = await emulator.underPressure();

      // Assess: the data alone (a few kB) is far below the bound
      expect((await emulator.holdings()).other).toMatchObject({ heldBytes: (underHalf + 2) * 10, heldRecords: underHalf + 2 });
      expect([before, after]).toEqual([false, true]);
    } finally {
      direct.destroy();
      await emulator.stop();
    }
  });

  it("refuses HTTP puts to a full stream from the raw body with kinesalite's own answer, and parses any other spelling", async () => {
    // Prepare: "frames" over its 1 MB bound
    const emulator = await KinesisEmulator.start({ port: 0, backlogLimits: { frames: 1024 * 1024 } });
    const direct = new DirectKinesisClient(emulator.openDirectPort());
    try {
      await ensureStreams(direct, [{ name: 'frames', shards: 1 }]);
      const half = { PartitionKey: 'a', Data: Buffer.alloc(600_000) };
      await direct.send(new PutRecordsCommand({ StreamName: 'frames', Records: [half, half] }));
      const records = [
        { Data: Buffer.alloc(3000, 1).toString('base64'), PartitionKey: 'cam "StreamName":"frames"' },
        { Data: 'AAAA', PartitionKey: 'b' },
      ];
      const post = async (body: string) => {
        const response = await fetch(emulator.endpoint, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/x-amz-json-1.1',
            'X-Amz-Target': 'Kinesis_20131202.PutRecords',
            'X-Amz-Date': '20260101T000000Z',
            Authorization:
              'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00',
          },
          body,
        });
        return { status: response.status, body: (await response.json()) as unknown };
      };

      // Act: the SDK's compact JSON (read from the raw bytes) and the same request spaced out (parsed by kinesalite)
      const compact = await post(JSON.stringify({ Records: records, StreamName: 'frames' }));
      const spaced = await post(JSON.stringify({ Records: records, StreamName: 'frames' }, null, 1));
      // Not parsed at all: a record kinesalite would reject as invalid base64 is refused as throttled.
      const unparsed = await post(JSON.stringify({ Records: [{ Data: 'A===', PartitionKey: 'c' }], StreamName: 'frames' }));

      // Assess
      const message = 'Rate exceeded for stream frames: the local backlog holds 1 MB (limit 1 MB)';
      const refusal = { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: message };
      expect(compact).toEqual({ status: 200, body: { FailedRecordCount: 2, Records: [refusal, refusal] } });
      expect(spaced).toEqual(compact);
      expect(unparsed).toEqual({ status: 200, body: { FailedRecordCount: 1, Records: [refusal] } });
      expect((await emulator.holdings()).frames).toMatchObject({ heldRecords: 2, throttledRecords: 5 });
    } finally {
      direct.destroy();
      await emulator.stop();
    }
  });

  it('refuses entries past the bound on both paths, counts them, and accepts again once records are trimmed', async () => {
    // Prepare: a bound of 1 MB on "frames"
    const emulator = await KinesisEmulator.start({ port: 0, backlogLimits: { frames: 1024 * 1024 } });
    const http = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    const direct = new DirectKinesisClient(emulator.openDirectPort());
    try {
      await ensureStreams(direct, [
        { name: 'frames', shards: 1 },
        { name: 'other', shards: 1 },
      ]);
      const frame = (k: string) => ({ PartitionKey: k, Data: Buffer.alloc(400_000, 1) });

      // Act: three frames fill it (the last put is accepted while under the bound)
      const first = await direct.send(new PutRecordsCommand({ StreamName: 'frames', Records: [frame('a'), frame('b')] }));
      const second = await http.send(new PutRecordsCommand({ StreamName: 'frames', Records: [frame('c')] }));
      const refusedDirect = await direct.send(new PutRecordsCommand({ StreamName: 'frames', Records: [frame('d')] }));
      const refusedHttp = await http.send(new PutRecordsCommand({ StreamName: 'frames', Records: [frame('e'), frame('f')] }));
      const unbounded = await direct.send(
        new PutRecordsCommand({ StreamName: 'other', Records: [frame('x'), frame('y'), frame('z')] }),
      );
      const full = await emulator.holdings();
      const page = await direct.getRecordBuffers({ ShardIterator: await iterator(direct, 'frames') });
      const deleted = await emulator.trim(
        'frames',
        'shardId-000000000000',
        (BigInt(page.Records[2]?.SequenceNumber ?? '0') + 1n).toString(),
      );
      const after = await direct.send(new PutRecordsCommand({ StreamName: 'frames', Records: [frame('g')] }));

      // Assess
      expect([first.FailedRecordCount, second.FailedRecordCount, unbounded.FailedRecordCount]).toEqual([0, 0, 0]);
      expect(refusedDirect.FailedRecordCount).toBe(1);
      expect(refusedHttp.FailedRecordCount).toBe(2);
      expect(refusedHttp.Records?.[0]?.ErrorCode).toBe('ProvisionedThroughputExceededException');
      expect(full.frames).toEqual({ heldBytes: 1_200_000, heldRecords: 3, throttledRecords: 3, limitBytes: 1024 * 1024 });
      expect(full.other).toMatchObject({ heldBytes: 1_200_000, heldRecords: 3, throttledRecords: 0 });
      expect(page.Records).toHaveLength(3);
      expect(deleted).toBe(3);
      expect(after.FailedRecordCount).toBe(0);
      expect((await emulator.holdings()).frames).toMatchObject({ heldBytes: 400_000, heldRecords: 1 });
    } finally {
      direct.destroy();
      http.destroy();
      await emulator.stop();
    }
  });
});
