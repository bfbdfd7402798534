/**
 * `npm run metrics -- [--endpoint URL|aws] [--stream-prefix P] [--from-start] [--grace S] [--json]`
 *
 * Tails the `metrics` stream of any endpoint (the embedded emulator, another emulator, or AWS
 * itself), merges the shard documents of each window with mergeMetrics and prints each
 * window as a table: the "metrics view" of the original edge application.
 *
 * Kinesis tumbling windows are per shard, so a window's documents arrive one per shard, at
 * slightly different times. A window is printed once no document for it has arrived for
 * `--grace` seconds; a document that arrives later reprints the window, marked as updated.
 */
import { parseArgs } from 'node:util';
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-kinesis';
import { STREAMS } from '../functions/lib/contracts';
import { createKinesisClient } from '../functions/lib/kinesis';
import { type MetricsDocument, metricsDocumentSchema } from '../functions/lib/metrics/document';
import { mergeMetrics } from '../functions/lib/metrics/merge';
import { renderMetricsTable } from '../functions/lib/metrics/table';
import { sleep } from '../functions/lib/retry';

/** Default endpoint: the emulator `npm start -- --serve` listens on. */
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:4567';

export interface TailOptions {
  client: KinesisClient;
  stream: string;
  /** Read the stream from its oldest record instead of from now. */
  fromStart: boolean;
  /** Quiet time after a window's last document before it is printed (ms). */
  graceMs: number;
  /** Pause between GetRecords calls per shard (Kinesis allows 5 calls/s per shard). */
  pollMs: number;
  /** How often to look for new shards after a reshard (ms). */
  shardRefreshMs?: number;
  signal: AbortSignal;
  /** A window's merged document; `update` when the window was shown before. */
  onWindow(doc: MetricsDocument, update: boolean): void;
  /** Called once every shard found at the start has its iterator: from here nothing is missed. */
  onReading?(): void;
  /** A record on the stream that is not a metrics document. */
  onInvalid?(detail: { shardId: string; sequenceNumber: string; error: string }): void;
}

interface PendingWindow {
  docs: MetricsDocument[];
  /** When the last unshown document arrived; undefined when everything has been shown. */
  lastArrival: number | undefined;
  /** When the window was last printed. */
  shownAt: number | undefined;
}

/** Shown windows are kept this long so a late shard document can reprint them merged. */
const KEEP_SHOWN_MS = 10 * 60 * 1000;

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

/**
 * Follows every shard of `stream` until `signal` aborts, calling `onWindow` with each
 * window's merged document. Resolves once the signal aborts; rejects when the stream cannot
 * be read at all (missing stream, no access).
 */
export async function tailMetrics(options: TailOptions): Promise<void> {
  const { client, stream } = options;
  // Readers stop on the caller's signal, or when one of them fails.
  const stopReaders = new AbortController();
  const signal = AbortSignal.any([options.signal, stopReaders.signal]);
  const windows = new Map<string, PendingWindow>();
  const followed = new Set<string>();
  const readers: Promise<void>[] = [];

  const accept = (doc: MetricsDocument) => {
    const key = `${doc.window.start}/${doc.window.end}`;
    const pending = windows.get(key) ?? { docs: [], lastArrival: undefined, shownAt: undefined };
    pending.docs.push(doc);
    pending.lastArrival = Date.now();
    windows.set(key, pending);
  };

  const flush = (force: boolean) => {
    const now = Date.now();
    const ready = [...windows.entries()]
      .filter(([, w]) => w.lastArrival !== undefined && (force || now - w.lastArrival >= options.graceMs))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [, window] of ready) {
      options.onWindow(mergeMetrics(window.docs), window.shownAt !== undefined);
      window.shownAt = now;
      window.lastArrival = undefined;
    }
    for (const [key, window] of windows) {
      if (window.lastArrival === undefined && window.shownAt !== undefined && now - window.shownAt > KEEP_SHOWN_MS) {
        windows.delete(key);
      }
    }
  };

  const readShard = async (shardId: string, oldestFirst: boolean, positioned: () => void) => {
    let lastSequence: string | undefined;
    const iteratorFor = async (): Promise<string | undefined> => {
      const out = await client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shardId,
          ...(lastSequence
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: lastSequence }
            : { ShardIteratorType: oldestFirst ? 'TRIM_HORIZON' : 'LATEST' }),
        }),
      );
      return out.ShardIterator;
    };
    let iterator = await iteratorFor();
    positioned();
    while (iterator && !signal.aborted) {
      let page: GetRecordsCommandOutput;
      try {
        page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      } catch (error: unknown) {
        if (error instanceof ExpiredIteratorException) {
          iterator = await iteratorFor();
          continue;
        }
        if (error instanceof ProvisionedThroughputExceededException) {
          await sleep(options.pollMs * 2, signal);
          continue;
        }
        throw error;
      }
      for (const record of page.Records ?? []) {
        lastSequence = record.SequenceNumber ?? lastSequence;
        const text = Buffer.from(record.Data ?? new Uint8Array()).toString('utf8');
        let parsed: ReturnType<typeof metricsDocumentSchema.safeParse>;
        try {
          parsed = metricsDocumentSchema.safeParse(JSON.parse(text));
        } catch (error: unknown) {
          options.onInvalid?.({ shardId, sequenceNumber: record.SequenceNumber ?? '', error: String(error) });
          continue;
        }
        if (parsed.success) accept(parsed.data);
        else options.onInvalid?.({ shardId, sequenceNumber: record.SequenceNumber ?? '', error: parsed.error.message });
      }
      // A closed shard (after a reshard) ends with no next iterator.
      iterator = page.NextShardIterator;
      if ((page.Records ?? []).length === 0 || (page.MillisBehindLatest ?? 0) === 0) await sleep(options.pollMs, signal);
    }
  };

  let failure: { error: unknown } | undefined;
  // Shards that appear after the start (a reshard) are read from their oldest record.
  const refreshShards = async (initial: boolean): Promise<Promise<void>[]> => {
    const positioned: Promise<void>[] = [];
    let nextToken: string | undefined;
    do {
      const page = await client.send(new ListShardsCommand(nextToken ? { NextToken: nextToken } : { StreamName: stream }));
      for (const shard of page.Shards ?? []) {
        const id = shard.ShardId;
        if (!id || followed.has(id)) continue;
        followed.add(id);
        let markPositioned: () => void = () => undefined;
        positioned.push(new Promise<void>((resolve) => (markPositioned = resolve)));
        readers.push(
          readShard(id, options.fromStart || !initial, markPositioned).catch((error: unknown) => {
            failure ??= { error };
            markPositioned();
          }),
        );
      }
      nextToken = page.NextToken;
    } while (nextToken);
    return positioned;
  };

  await Promise.all(await refreshShards(true));
  if (failure === undefined) options.onReading?.();
  let lastRefresh = Date.now();
  while (!options.signal.aborted && failure === undefined) {
    await sleep(Math.max(50, Math.min(options.graceMs, 250)), signal);
    flush(false);
    if (Date.now() - lastRefresh >= (options.shardRefreshMs ?? 30_000)) {
      lastRefresh = Date.now();
      await refreshShards(false);
    }
  }
  // Stop the readers too when one of them failed.
  if (failure !== undefined) stopReaders.abort();
  await Promise.all(readers);
  flush(true);
  if (failure !== undefined) throw failure.error;
}

const USAGE = `usage: npm run metrics -- [options]

Tails the metrics stream and prints one table per window (shard documents merged).

  --endpoint URL|aws    Kinesis endpoint; "aws" uses AWS itself (region from AWS_REGION).
                        Default: KINESIS_ENDPOINT, else ${DEFAULT_ENDPOINT}
  --stream-prefix P     stream name prefix (default: STREAM_PREFIX, else none)
  --from-start          read the stream from its oldest record instead of from now
  --grace S             seconds to wait for the other shards' documents (default 2)
  --json                print each merged window as one JSON line instead of a table
  -h, --help            this text`;

/** The flags; throws a TypeError naming an unknown or malformed one. */
function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      endpoint: { type: 'string' },
      'stream-prefix': { type: 'string' },
      'from-start': { type: 'boolean', default: false },
      grace: { type: 'string', default: '2' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
}

/** Command-line entry point. Exit codes: 0 after Ctrl-C, 1 on an error, 2 on bad usage. */
export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseOptions>;
  try {
    args = parseOptions(argv);
  } catch (error: unknown) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const grace = Number(args.grace);
  if (!Number.isFinite(grace) || grace < 0) {
    process.stderr.write(`--grace must be a non-negative number of seconds, got ${args.grace}\n`);
    return 2;
  }
  const endpointArg = args.endpoint ?? process.env.KINESIS_ENDPOINT ?? DEFAULT_ENDPOINT;
  const endpoint = endpointArg === 'aws' ? undefined : endpointArg;
  const prefix = args['stream-prefix'] ?? process.env.STREAM_PREFIX ?? '';
  const stream = `${prefix}${STREAMS.metrics}`;
  const client = createKinesisClient(endpoint ? { endpoint } : {});
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stderr.write(
    `tailing ${stream} on ${endpoint ?? 'AWS'}${args['from-start'] ? ' from the start' : ''} (Ctrl-C to stop)\n`,
  );
  try {
    await tailMetrics({
      client,
      stream,
      fromStart: args['from-start'],
      graceMs: grace * 1000,
      pollMs: 1000,
      signal: controller.signal,
      onWindow: (doc, update) => {
        if (args.json) process.stdout.write(`${JSON.stringify(doc)}\n`);
        else process.stdout.write(`${update ? '(updated) ' : ''}${renderMetricsTable(doc)}\n\n`);
      },
      onInvalid: ({ shardId, sequenceNumber, error }) =>
        process.stderr.write(`skipped a record that is not a metrics document (${shardId} ${sequenceNumber}): ${error}\n`),
    });
    return 0;
  } catch (error: unknown) {
    const name = errorName(error);
    const hint = name === 'ResourceNotFoundException' ? ` (is the pipeline running? stream ${stream})` : '';
    process.stderr.write(`cannot read ${stream}: ${error instanceof Error ? error.message : String(error)}${hint}\n`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    client.destroy();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
