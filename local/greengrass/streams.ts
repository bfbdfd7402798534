/**
 * The device's Stream Manager streams, from edge/stream-manager/streams.json (the one place
 * they are defined): parsed with zod, with `PREFIX-` in export stream names replaced by the
 * deployment's prefix, and created (or updated to match) through the Stream Manager client.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from '../runner/mappings';
import { type Builder, type StreamManagerClientLike, streamManagerSdk } from './stream-manager';

export const STREAMS_FILE = join(REPO_ROOT, 'edge', 'stream-manager', 'streams.json');

const kinesisExportSchema = z.object({
  identifier: z.string().regex(/^[\w ,.-]{1,255}$/),
  kinesisStreamName: z.string().min(1),
  batchSize: z.number().int().min(1).max(500).optional(),
  batchIntervalMillis: z.number().int().min(60_000).optional(),
  priority: z.number().int().min(1).max(10).optional(),
});

const streamSchema = z.object({
  name: z.string().regex(/^[\w ,.-]{1,255}$/),
  maxSize: z.number().int().min(1024),
  streamSegmentSize: z.number().int().min(1024),
  timeToLiveMillis: z.number().int().min(60_000).optional(),
  strategyOnFull: z.enum(['RejectNewData', 'OverwriteOldestData']),
  persistence: z.enum(['File', 'Memory']),
  flushOnWrite: z.boolean(),
  exportDefinition: z.object({ kinesis: z.array(kinesisExportSchema) }).optional(),
});
export type StreamDefinition = z.infer<typeof streamSchema>;

const fileSchema = z.object({ streams: z.array(streamSchema).min(1) });

/** Reads and checks the stream definitions; `prefix` replaces `PREFIX-` in Kinesis stream names. Throws naming the bad field. */
export function loadStreamDefinitions(prefix: string, file = STREAMS_FILE): StreamDefinition[] {
  const parsed = fileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success)
    throw new Error(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data.streams.map((s) => ({
    ...s,
    ...(s.exportDefinition
      ? {
          exportDefinition: {
            kinesis: s.exportDefinition.kinesis.map((k) => ({
              ...k,
              kinesisStreamName: k.kinesisStreamName.replace(/^PREFIX-/, prefix),
            })),
          },
        }
      : {}),
  }));
}

/** The SDK's MessageStreamDefinition for one stream. */
export function toMessageStreamDefinition(stream: StreamDefinition): Builder {
  const sdk = streamManagerSdk();
  let definition = new sdk.MessageStreamDefinition()
    .withName(stream.name)
    .withMaxSize(stream.maxSize)
    .withStreamSegmentSize(stream.streamSegmentSize)
    .withStrategyOnFull(sdk.StrategyOnFull[stream.strategyOnFull])
    .withPersistence(sdk.Persistence[stream.persistence])
    .withFlushOnWrite(stream.flushOnWrite);
  if (stream.timeToLiveMillis !== undefined) definition = definition.withTimeToLiveMillis(stream.timeToLiveMillis);
  if (stream.exportDefinition) {
    const kinesis = stream.exportDefinition.kinesis.map((k) => {
      let config = new sdk.KinesisConfig().withIdentifier(k.identifier).withKinesisStreamName(k.kinesisStreamName);
      if (k.batchSize !== undefined) config = config.withBatchSize(k.batchSize);
      if (k.batchIntervalMillis !== undefined) config = config.withBatchIntervalMillis(k.batchIntervalMillis);
      if (k.priority !== undefined) config = config.withPriority(k.priority);
      return config;
    });
    definition = definition.withExportDefinition(new sdk.ExportDefinition().withKinesis(kinesis));
  }
  return definition;
}

/** Creates each stream that does not exist and updates the others to their definition. */
export async function ensureMessageStreams(client: StreamManagerClientLike, streams: readonly StreamDefinition[]): Promise<void> {
  const existing = new Set(await client.listStreams());
  for (const stream of streams) {
    const definition = toMessageStreamDefinition(stream);
    if (existing.has(stream.name)) await client.updateMessageStream(definition);
    else await client.createMessageStream(definition);
  }
}
