/**
 * A real Kinesis emulator for tests: kinesalite in-process on a free loopback port, with
 * helpers to create streams and read back everything written to them.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { CreateStreamCommand, DescribeStreamCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { streamReader } from './stream-reader';
import { waitUntil } from './wait';

type KinesaliteFactory = (options: {
  createStreamMs: number;
  deleteStreamMs?: number;
  updateStreamMs?: number;
  shardLimit?: number;
}) => Server;
// kinesalite ships no types; it returns a plain http.Server.
const kinesalite = require('kinesalite') as KinesaliteFactory;

export interface StoredRecord {
  stream: string;
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
}

export interface TestKinesis {
  endpoint: string;
  client: KinesisClient;
  createStreams(names: readonly string[], shardCount?: number): Promise<void>;
  /** Every record currently in the stream, all shards, in shard then sequence order. */
  readAll(stream: string): Promise<StoredRecord[]>;
  /** `readAll` with each record's data parsed as JSON. */
  readJson(stream: string): Promise<unknown[]>;
  close(): Promise<void>;
}

/** Starts kinesalite on 127.0.0.1 (random port) with instant stream creation. */
export async function startKinesalite(): Promise<TestKinesis> {
  // kinesalite caps an account at 10 shards by default; tests create a stream set per case.
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10_000 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createKinesisClient({ endpoint, region: 'us-east-1' });

  const createStreams = async (names: readonly string[], shardCount = 1) => {
    for (const name of names) {
      await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
      let status: string | undefined;
      await waitUntil(
        async () => {
          const described = await client.send(new DescribeStreamCommand({ StreamName: name }));
          status = described.StreamDescription?.StreamStatus;
          return status === 'ACTIVE';
        },
        `stream ${name} to become ACTIVE`,
        30_000,
        () => `status ${status}`,
      );
    }
  };

  const readAll = async (stream: string): Promise<StoredRecord[]> =>
    (await streamReader(client).readAll(stream)).map((record) => ({ stream, ...record }));

  return {
    endpoint,
    client,
    createStreams,
    readAll,
    readJson: async (stream) => (await readAll(stream)).map((r) => JSON.parse(r.data.toString('utf8')) as unknown),
    close: async () => {
      client.destroy();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
