/**
 * The embedded emulator and the mappings read from serverless.yml.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import { applyOverrides, loadServiceDefinition, parseServiceDefinition } from '../../local/runner/mappings';

describe('KinesisEmulator', () => {
  it.each([
    ['in a worker thread', false],
    ['on the main thread', true],
  ])('listens on loopback only and creates missing streams idempotently (%s)', async (_mode, sameThread) => {
    const emulator = await KinesisEmulator.start({ port: 0, sameThread });
    const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    try {
      expect(emulator.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await ensureStreams(client, [
        { name: 'a', shards: 3 },
        { name: 'b', shards: 1 },
      ]);
      await ensureStreams(client, [
        { name: 'a', shards: 5 },
        { name: 'c', shards: 1 },
      ]);

      const listed = await client.send(new ListStreamsCommand({}));
      const a = await client.send(new DescribeStreamSummaryCommand({ StreamName: 'a' }));
      expect(listed.StreamNames).toEqual(['a', 'b', 'c']);
      expect(a.StreamDescriptionSummary?.OpenShardCount).toBe(3);
    } finally {
      client.destroy();
      await emulator.stop();
    }
  });

  it('keeps streams and records across a restart when persistent, and loses them when not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'emulator-'));
    const first = await KinesisEmulator.start({ port: 0, persistPath: dir });
    const port = first.port;
    const client = createKinesisClient({ endpoint: first.endpoint, region: 'us-east-1' });
    await ensureStreams(client, [{ name: 'kept', shards: 1 }]);
    await client.send(new PutRecordCommand({ StreamName: 'kept', PartitionKey: 'k', Data: Buffer.from('x') }));
    await first.stop();
    await first.stop(); // a second stop is harmless

    const second = await KinesisEmulator.start({ port, persistPath: dir });
    const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: 'kept' }));
    await second.stop();
    const volatile = await KinesisEmulator.start({ port });
    const listed = await client.send(new ListStreamsCommand({}));
    await volatile.stop();
    client.destroy();
    rmSync(dir, { recursive: true, force: true });

    expect(summary.StreamDescriptionSummary?.StreamStatus).toBe('ACTIVE');
    expect(listed.StreamNames).toEqual([]);
  });

  it.each([
    ['in a worker thread', false],
    ['on the main thread', true],
  ])(
    'takes multi-megabyte bodies whole, still answers 413 above 7 MB and survives aborted requests (%s)',
    async (_mode, sameThread) => {
      const emulator = await KinesisEmulator.start({ port: 0, sameThread });
      const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
      try {
        await ensureStreams(client, [{ name: 'big', shards: 1 }]);
        // Five 900 kB records: a 6 MB JSON body arriving in ~100 chunks.
        const records = [1, 2, 3, 4, 5].map((seed) => Buffer.alloc(900_000, seed));
        const put = await client.send(
          new PutRecordsCommand({ StreamName: 'big', Records: records.map((data) => ({ PartitionKey: 'k', Data: data })) }),
        );
        expect(put.FailedRecordCount).toBe(0);

        // A request the client abandons half way must not take the emulator down.
        await new Promise<void>((resolve) => {
          const half = request(`${emulator.endpoint}/`, {
            method: 'POST',
            headers: {
              'content-type': 'application/x-amz-json-1.1',
              'content-length': '1000000',
              'x-amz-target': 'Kinesis_20131202.PutRecords',
            },
          });
          half.on('error', () => undefined);
          half.on('close', () => resolve());
          half.write('{"StreamName":"big","Records":[', () => setTimeout(() => half.destroy(), 50));
        });

        const tooBig = Array.from({ length: 8 }, () => ({ PartitionKey: 'k', Data: Buffer.alloc(700_000, 9) }));
        await expect(client.send(new PutRecordsCommand({ StreamName: 'big', Records: tooBig }))).rejects.toMatchObject({
          $metadata: { httpStatusCode: 413 },
        });

        const iterator = await client.send(
          new GetShardIteratorCommand({ StreamName: 'big', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
        );
        const read = await client.send(new GetRecordsCommand({ ShardIterator: iterator.ShardIterator }));
        // Compared as digests: jest's deep equality walks buffers byte by byte.
        const digest = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
        expect(read.Records?.map((r) => digest(r.Data ?? new Uint8Array()))).toEqual(records.map(digest));
      } finally {
        client.destroy();
        await emulator.stop();
      }
    },
  );

  it('reads back the same records with and without its fast paths, twice over', async () => {
    // Each emulator in its own worker, so the plain one runs kinesalite exactly as published.
    const readAll = async (fastPaths: boolean) => {
      const emulator = await KinesisEmulator.start({ port: 0, fastPaths });
      const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
      try {
        await ensureStreams(client, [{ name: 'mix', shards: 3 }]);
        const records = Array.from({ length: 40 }, (_, i) => ({
          PartitionKey: `camera-${i % 7}`,
          Data: Buffer.alloc(1 + ((i * 7919) % 50_000), i),
          ...(i % 9 === 0 ? { ExplicitHashKey: String(BigInt(i) * 10n ** 36n) } : {}),
        }));
        await client.send(new PutRecordsCommand({ StreamName: 'mix', Records: records }));
        const reads = [];
        for (let pass = 0; pass < 2; pass++) {
          for (const shard of [0, 1, 2]) {
            const iterator = await client.send(
              new GetShardIteratorCommand({
                StreamName: 'mix',
                ShardId: `shardId-00000000000${shard}`,
                ShardIteratorType: 'TRIM_HORIZON',
              }),
            );
            const read = await client.send(new GetRecordsCommand({ ShardIterator: iterator.ShardIterator }));
            reads.push(
              (read.Records ?? []).map((r) => ({
                shard,
                key: r.PartitionKey,
                data: createHash('sha256')
                  .update(r.Data ?? new Uint8Array())
                  .digest('hex'),
                fields: Object.keys(r).sort(),
              })),
            );
          }
        }
        return reads;
      } finally {
        client.destroy();
        await emulator.stop();
      }
    };
    const [fast, plain] = await Promise.all([readAll(true), readAll(false)]);
    expect(fast.flat()).toHaveLength(80);
    expect(fast).toEqual(plain);
  });

  it.each([
    ['in a worker thread', false],
    ['on the main thread', true],
  ])('answers AT_TIMESTAMP past the last record with the end of the shard, as Kinesis does (%s)', async (_mode, sameThread) => {
    // kinesalite as published never answers this request.
    const emulator = await KinesisEmulator.start({ port: 0, sameThread });
    const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    try {
      await ensureStreams(client, [
        { name: 'at', shards: 1 },
        { name: 'empty', shards: 1 },
      ]);
      await client.send(new PutRecordCommand({ StreamName: 'at', PartitionKey: 'k', Data: Buffer.from('before') }));
      const after = new Date(Date.now() + 1000);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const iterator = async (stream: string, timestamp: Date) =>
        (
          await client.send(
            new GetShardIteratorCommand({
              StreamName: stream,
              ShardId: 'shardId-000000000000',
              ShardIteratorType: 'AT_TIMESTAMP',
              Timestamp: timestamp,
            }),
          )
        ).ShardIterator;

      const atEnd = await iterator('at', after);
      const onEmpty = await iterator('empty', new Date(Date.now() - 60_000));
      const fromStart = await iterator('at', new Date(Date.now() - 60_000));
      await client.send(new PutRecordCommand({ StreamName: 'at', PartitionKey: 'k', Data: Buffer.from('later') }));

      const read = async (it: string | undefined) =>
        ((await client.send(new GetRecordsCommand({ ShardIterator: it }))).Records ?? []).map((r) =>
          Buffer.from(r.Data ?? []).toString(),
        );
      expect(await read(atEnd)).toEqual(['later']);
      expect(await read(fromStart)).toEqual(['before', 'later']);
      expect(await read(onEmpty)).toEqual([]);
    } finally {
      client.destroy();
      await emulator.stop();
    }
  });

  it('refuses a port that is already taken', async () => {
    const first = await KinesisEmulator.start({ port: 0 });
    try {
      await expect(KinesisEmulator.start({ port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first.stop();
    }
  });
});

describe('mappings from serverless.yml', () => {
  it('resolves every stream event of serverless.yml with the framework', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sls-cache-'));
    const definition = await loadServiceDefinition({ cacheDir: dir });
    const cached = await loadServiceDefinition({ cacheDir: dir });
    rmSync(dir, { recursive: true, force: true });

    expect(cached).toEqual(definition);
    expect(definition.streamPrefix).toBe(`${definition.service}-${definition.stage}-`);
    const classify = definition.mappings.find((m) => m.functionKey === 'classify');
    expect(classify).toMatchObject({
      handler: 'functions/classify.handler',
      stream: 'camera-images',
      startingPosition: 'TRIM_HORIZON',
      reportBatchItemFailures: true,
      bisectBatchOnFunctionError: true,
      tumblingWindowInSeconds: 0,
    });
    expect(classify?.onFailure?.arn).toMatch(/^arn:aws:sqs:[a-z0-9-]+:000000000000:edge-camera-classifier-\w+-classify-dlq$/);
    const metrics = definition.mappings.filter((m) => m.functionKey === 'aggregate-metrics');
    expect(metrics.map((m) => m.stream)).toEqual(['predictions', 'shadow-scores', 'rejected-images']);
    for (const m of metrics) expect(m.tumblingWindowInSeconds).toBeGreaterThan(0);
    expect(definition.streams.map((s) => s.name).sort()).toEqual([
      'camera-images',
      'metrics',
      'predictions',
      'rejected-images',
      'shadow-scores',
      'uncertain-images',
    ]);
  });

  const printed = {
    service: 'svc',
    provider: { stage: 'prod', region: 'eu-west-1', timeout: 30, environment: { STREAM_PREFIX: 'svc-prod-' } },
    functions: {
      f: {
        handler: 'functions/f.handler',
        events: [
          {
            stream: {
              type: 'kinesis',
              arn: { 'Fn::GetAtt': ['S', 'Arn'] },
              tumblingWindowInSeconds: 30,
              destinations: { onFailure: 'arn:aws:sns:eu-west-1:1:topic' },
            },
          },
          { stream: 'arn:aws:kinesis:eu-west-1:1:stream/svc-prod-other' },
          { http: { path: '/' } },
        ],
      },
    },
    resources: { Resources: { S: { Type: 'AWS::Kinesis::Stream', Properties: { Name: 'svc-prod-s', ShardCount: 4 } } } },
  };

  it("fills in Lambda's defaults and strips the deployment prefix", () => {
    const definition = parseServiceDefinition(printed);

    expect(definition.mappings).toHaveLength(2);
    expect(definition.mappings[0]).toMatchObject({
      stream: 's',
      batchSize: 100,
      batchWindowSeconds: 0,
      parallelizationFactor: 1,
      maximumRetryAttempts: -1,
      maximumRecordAgeInSeconds: -1,
      reportBatchItemFailures: false,
      tumblingWindowInSeconds: 30,
      timeoutSeconds: 30,
      functionName: 'svc-prod-f',
      onFailure: { arn: 'arn:aws:sns:eu-west-1:1:topic' },
    });
    expect(definition.mappings[1]?.stream).toBe('other');
    expect(definition.streams).toEqual([{ name: 's', shards: 4 }]);
  });

  it('applies local overrides without touching the declared definition', () => {
    const definition = parseServiceDefinition(printed);
    const changed = applyOverrides(definition, { windowSeconds: 2, parallelizationFactor: 3, shards: { s: 2 } });

    expect(changed.mappings[0]?.tumblingWindowInSeconds).toBe(2);
    expect(changed.mappings[0]?.parallelizationFactor).toBe(1); // windows need a factor of 1
    expect(changed.mappings[1]?.parallelizationFactor).toBe(3);
    expect(changed.streams).toEqual([{ name: 's', shards: 2 }]);
    expect(definition.mappings[0]?.tumblingWindowInSeconds).toBe(30);
  });

  it('rejects a tumbling window with a parallelization factor above 1', () => {
    const bad = structuredClone(printed);
    Object.assign(bad.functions.f.events[0]?.stream as object, { parallelizationFactor: 2 });
    expect(() => parseServiceDefinition(bad)).toThrow(/parallelizationFactor 1/);
  });
});
