/** Reads back everything a stream holds, every shard, from the oldest record. */
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';

export interface StoredRecord {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
}

export function streamReader(client: KinesisClient): { readAll(stream: string): Promise<StoredRecord[]> } {
  return {
    async readAll(stream) {
      const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
      const out: StoredRecord[] = [];
      for (const shard of shards) {
        const shardId = shard.ShardId ?? '';
        let iterator = (
          await client.send(
            new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
          )
        ).ShardIterator;
        while (iterator) {
          const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
          const records = page.Records ?? [];
          for (const r of records) {
            out.push({
              shardId,
              sequenceNumber: r.SequenceNumber ?? '',
              partitionKey: r.PartitionKey ?? '',
              data: Buffer.from(r.Data ?? new Uint8Array()),
            });
          }
          if (records.length === 0) break;
          iterator = page.NextShardIterator;
        }
      }
      return out;
    },
  };
}
