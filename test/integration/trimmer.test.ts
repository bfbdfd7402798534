/**
 * Trimming finished records: the event source mapping runner's consumers on the real emulator
 * decide what may go. A consumer far behind keeps everything after its checkpoint, one that
 * has finished nothing keeps the whole shard, a stream nobody reads here is never touched, and
 * records stay for the retention asked for (times are passed in, not waited for).
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import { EventSourceMappingRunner, type StreamHandler } from '../../local/runner';
import { ConsumedRecordTrimmer, shardFloors } from '../../local/emulator/trimmer';
import { mappingFor, putJson, recordingHandler, uniqueStream } from '../helpers/runner-harness';
import { streamReader } from '../helpers/stream-reader';
import { waitUntil } from '../helpers/wait';

const SHARD = 'shardId-000000000000';

let emulator: KinesisEmulator;
let client: KinesisClient;
const runners: EventSourceMappingRunner[] = [];
/** Gates still closed when a test ends (a failed assertion): opened so the runner can stop. */
const gates: Array<() => void> = [];

beforeAll(async () => {
  emulator = await KinesisEmulator.start({ port: 0 });
  client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
});
afterAll(async () => {
  client.destroy();
  await emulator.stop();
});
afterEach(async () => {
  for (const open of gates.splice(0)) open();
  await Promise.all(runners.splice(0).map((r) => r.stop()));
});

/** A handler that finishes batches whose records all have `n` below the gate, and holds the others until it opens. */
function gated(limit: number): { handler: StreamHandler; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  gates.push(open);
  const { handler } = recordingHandler(async (event) => {
    const ns = event.Records.map((r) => (JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as { n: number }).n);
    if (ns.some((n) => n >= limit)) await opened;
    return { batchItemFailures: [] };
  });
  return { handler: handler as StreamHandler, open };
}

function runnerFor(stream: string, slow: StreamHandler): EventSourceMappingRunner {
  const runner = new EventSourceMappingRunner({
    client,
    maxIdlePollMs: 20,
    logger: { debug: () => undefined, warn: () => undefined },
  });
  runner.add(mappingFor(stream, { functionName: 'fast', batchSize: 10 }), recordingHandler().handler as StreamHandler);
  runner.add(mappingFor(stream, { functionName: 'slow', batchSize: 10 }), slow);
  runners.push(runner);
  return runner;
}

/** Waits until each named consumer's checkpoint is the given sequence number (or stays undefined). */
const until = (runner: EventSourceMappingRunner, expected: Record<string, string | undefined>): Promise<void> =>
  waitUntil(
    () =>
      Object.entries(expected).every(
        ([fn, seq]) => runner.positions().find((p) => p.functionName === fn)?.sequenceNumber === seq,
      ),
    `positions ${JSON.stringify(expected)}`,
    60_000,
    () => JSON.stringify(runner.positions()),
  );

const ns = async (stream: string): Promise<number[]> =>
  (await streamReader(client).readAll(stream)).map((r) => (JSON.parse(r.data.toString()) as { n: number }).n);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);
const bodies = (from: number, to: number): Array<{ n: number }> => range(from, to).map((n) => ({ n }));

describe('shardFloors', () => {
  it('takes the lowest position per shard as a number and leaves out shards with a consumer that has none', () => {
    const floors = shardFloors([
      { functionName: 'a', stream: 's', shardId: SHARD, sequenceNumber: '10' },
      { functionName: 'b', stream: 's', shardId: SHARD, sequenceNumber: '9' },
      { functionName: 'a', stream: 's', shardId: 'shardId-000000000001', sequenceNumber: '5' },
      { functionName: 'b', stream: 's', shardId: 'shardId-000000000001', sequenceNumber: undefined },
      { functionName: 'a', stream: 't', shardId: SHARD, sequenceNumber: undefined },
      { functionName: 'b', stream: 't', shardId: SHARD, sequenceNumber: '3' },
    ]);
    expect([...floors]).toEqual([[`s\u0000${SHARD}`, 9n]]);
  });
});

describe('ConsumedRecordTrimmer', () => {
  it('keeps everything a lagging consumer still needs, and never touches a stream nobody here reads', async () => {
    // Prepare: 100 records; "slow" finishes the first 20 and then holds on.
    const stream = uniqueStream('trim-lag');
    const unread = uniqueStream('trim-unread');
    await ensureStreams(client, [
      { name: stream, shards: 1 },
      { name: unread, shards: 1 },
    ]);
    const seqs = await putJson(client, stream, bodies(0, 100), () => 'k');
    await putJson(client, unread, bodies(0, 5), () => 'k');
    const slow = gated(20);
    const runner = runnerFor(stream, slow.handler);
    const trimmer = new ConsumedRecordTrimmer(emulator, runner, { retainSeconds: 0 });
    await runner.start();
    await until(runner, { fast: seqs[99], slow: seqs[19] });

    // Act
    await trimmer.trimNow();

    // Assess: only what both finished is gone.
    expect(trimmer.trimmed.get(stream)).toBe(20);
    expect(await ns(stream)).toEqual(range(20, 100));
    expect(await ns(unread)).toEqual(range(0, 5));

    // Act: the slow consumer catches up.
    slow.open();
    await until(runner, { slow: seqs[99] });
    await trimmer.trimNow();

    // Assess
    expect(trimmer.trimmed.get(stream)).toBe(100);
    expect(await ns(stream)).toEqual([]);
    expect(await ns(unread)).toEqual(range(0, 5));
    expect(await emulator.trimmedRecords(stream)).toBe(100);
    await trimmer.stop();
  });

  it('trims nothing of a shard while one of its consumers has finished nothing', async () => {
    // Prepare: "slow" holds its very first batch.
    const stream = uniqueStream('trim-none');
    await ensureStreams(client, [{ name: stream, shards: 1 }]);
    const seqs = await putJson(client, stream, bodies(0, 50), () => 'k');
    const slow = gated(0);
    const runner = runnerFor(stream, slow.handler);
    const trimmer = new ConsumedRecordTrimmer(emulator, runner, { retainSeconds: 0 });
    await runner.start();
    await until(runner, { fast: seqs[49], slow: undefined });

    // Act
    await trimmer.trimNow();

    // Assess
    expect(trimmer.total).toBe(0);
    expect(await ns(stream)).toEqual(range(0, 50));

    // And once it has, the shard is trimmed up to it.
    slow.open();
    await until(runner, { slow: seqs[49] });
    await trimmer.trimNow();
    expect(trimmer.total).toBe(50);
    await trimmer.stop();
  });

  it('keeps finished records for the retention: only what was finished that long ago goes', async () => {
    // Prepare: everything read by both consumers at t0.
    const stream = uniqueStream('trim-retain');
    await ensureStreams(client, [{ name: stream, shards: 1 }]);
    const first = await putJson(client, stream, bodies(0, 30), () => 'k');
    const runner = runnerFor(stream, gated(Number.MAX_SAFE_INTEGER).handler);
    const trimmer = new ConsumedRecordTrimmer(emulator, runner, { retainSeconds: 60 });
    await runner.start();
    await until(runner, { fast: first[29], slow: first[29] });
    const t0 = 1_000_000_000_000;

    // Act + Assess: nothing before 60 s have passed since t0.
    await trimmer.trimNow(t0);
    await trimmer.trimNow(t0 + 59_999);
    expect(await ns(stream)).toEqual(range(0, 30));

    // More records, finished after t0: at t0 + 60 s only the first 30 were finished 60 s before.
    const second = await putJson(client, stream, bodies(30, 40), () => 'k');
    await until(runner, { fast: second[9], slow: second[9] });
    await trimmer.trimNow(t0 + 59_999.5);
    await trimmer.trimNow(t0 + 60_000);
    expect(trimmer.total).toBe(30);
    expect(await ns(stream)).toEqual(range(30, 40));

    // 60 s after the pass that saw them finished, the rest goes too.
    await trimmer.trimNow(t0 + 59_999.5 + 60_000);
    expect(trimmer.total).toBe(40);
    expect(await ns(stream)).toEqual([]);
    await trimmer.stop();
  });

  it('refuses a negative or infinite retention (keeping everything means no trimmer at all)', () => {
    const positions = { positions: () => [] };
    expect(() => new ConsumedRecordTrimmer(emulator, positions, { retainSeconds: -1 })).toThrow(RangeError);
    expect(() => new ConsumedRecordTrimmer(emulator, positions, { retainSeconds: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});
