/**
 * Tumbling windows in the local runner, against the real emulator: windows aligned on arrival
 * time per shard, state carried between invocations, final invocations, early termination
 * (state over 1 MB, or windows closed by the runner), a response without state failing, and
 * window state surviving a restart through the checkpoint file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';

import { type Invocation, mappingFor, putJson, recordingHandler, runnerSuite, uniqueStream } from '../helpers/runner-harness';
import { fakeDate } from '../helpers/clock';
import { waitUntil } from '../helpers/wait';

const suite = runnerSuite();
const { runnerFor } = suite;

/** A counting aggregator: the state is `{ count, ns }`, as a real one folds a batch in. */
function counter(respond?: (event: Invocation['event'], call: number) => unknown) {
  return recordingHandler((event, call) => {
    const custom = respond?.(event, call);
    if (custom !== undefined) return custom;
    const state = (event.state ?? {}) as { count?: number };
    return { state: { count: (state.count ?? 0) + event.Records.length }, batchItemFailures: [] };
  });
}

const finals = (calls: Invocation[]) => calls.filter((c) => c.event.isFinalInvokeForWindow);
const windowMs = (call: Invocation) => ({
  start: Date.parse(call.event.window?.start ?? ''),
  end: Date.parse(call.event.window?.end ?? ''),
});

it('folds batches into per-window state and ends each window with a final invocation', async () => {
  // Prepare: two bursts in two different 1-second windows (arrival time decides). An emulator
  // on this thread stamps arrivals with the clock the runner reads, and the test moves that
  // clock to the next window instead of waiting for it.
  let clock = Math.ceil(Date.now() / 1000) * 1000 + 100;
  fakeDate(clock);
  const local = await KinesisEmulator.start({ port: 0, sameThread: true });
  const localClient = createKinesisClient({ endpoint: local.endpoint, region: 'us-east-1' });
  const stream = uniqueStream('win');
  const { handler, calls } = counter();
  const seen = () => JSON.stringify(calls.map((c) => [c.ns, c.event.isFinalInvokeForWindow]));
  const delivered = (n: number) => calls.some((c) => c.ns.includes(n));
  const runner = runnerFor({ client: localClient });
  try {
    await ensureStreams(localClient, [{ name: stream, shards: 1 }]);
    runner.add(mappingFor(stream, { tumblingWindowInSeconds: 1, batchSize: 2 }), handler);
    await runner.start();

    // Act: a burst, the clock to the next window, a burst, the clock past that window's end.
    await putJson(localClient, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
    await waitUntil(() => delivered(2), 'the first burst delivered', 20_000, seen);
    clock += 1000;
    jest.setSystemTime(clock);
    await putJson(localClient, stream, [{ n: 3 }, { n: 4 }]);
    await waitUntil(() => delivered(4), 'the second burst delivered', 20_000, seen);
    clock += 1000;
    jest.setSystemTime(clock);
    await waitUntil(() => finals(calls).length >= 2, 'the final invocations of both windows', 20_000, seen);
  } finally {
    await runner.stop();
    jest.useRealTimers();
    localClient.destroy();
    await local.stop();
  }

  // Assess
  const records = calls.filter((c) => !c.event.isFinalInvokeForWindow);
  for (const call of calls) {
    const { start, end } = windowMs(call);
    expect(start % 1000).toBe(0);
    expect(end - start).toBe(1000);
    expect(call.event.shardId).toBe('shardId-000000000000');
    expect(call.event.eventSourceARN).toBe(`arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`);
    for (const r of call.event.Records) {
      const arrival = r.kinesis.approximateArrivalTimestamp * 1000;
      expect(arrival >= start && arrival < end).toBe(true);
    }
  }
  const closing = finals(calls);
  for (const final of closing) {
    expect(final.event.Records).toEqual([]);
    expect(final.event.isWindowTerminatedEarly).toBe(false);
    const inWindow = records.filter((c) => windowMs(c).start === windowMs(final).start).flatMap((c) => c.ns);
    expect((final.event.state as { count: number }).count).toBe(inWindow.length);
  }
  expect(closing.reduce((sum, f) => sum + (f.event.state as { count: number }).count, 0)).toBe(5);
  expect(records.flatMap((c) => c.ns)).toEqual([0, 1, 2, 3, 4]);
  // The first invocation of a window starts from an empty state.
  expect(records[0]?.event.state).toEqual({});
});

it('treats a response without state as a failure and retries with the previous state', async () => {
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  const { handler, calls } = counter((_event, call) => (call === 2 ? { batchItemFailures: [] } : undefined));
  const runner = runnerFor();
  runner.add(mappingFor(stream, { tumblingWindowInSeconds: 900, batchSize: 2, maximumRetryAttempts: 3 }), handler);
  await runner.start();
  await runner.waitForIdle(20_000);
  await runner.closeWindows();

  expect(calls.map((c) => [c.ns, c.event.state])).toEqual([
    [[0, 1], {}],
    [[2], { count: 2 }],
    [[2], { count: 2 }],
    [[], { count: 3 }],
  ]);
  expect(runner.deadLetters).toEqual([]);
});

it('keeps the state of the records that succeeded and retries from the lowest failed one', async () => {
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  const seqs = await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }]);
  const { handler, calls } = counter((event, call) =>
    call === 1 ? { state: { count: 2 }, batchItemFailures: [{ itemIdentifier: seqs[2] }] } : undefined,
  );
  const runner = runnerFor();
  runner.add(mappingFor(stream, { tumblingWindowInSeconds: 900, batchSize: 10 }), handler);
  await runner.start();
  await runner.waitForIdle(20_000);
  await runner.closeWindows();

  expect(calls.map((c) => [c.ns, c.event.state])).toEqual([
    [[0, 1, 2, 3], {}],
    [[2, 3], { count: 2 }],
    [[], { count: 4 }],
  ]);
});

it('closes an open window early on request, flagged as terminated early', async () => {
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }]);
  const { handler, calls } = counter();
  const runner = runnerFor();
  runner.add(mappingFor(stream, { tumblingWindowInSeconds: 900 }), handler);
  await runner.start();
  await runner.waitForIdle(20_000);

  const closedAt = Date.now();
  await runner.closeWindows();

  const [final] = finals(calls);
  expect(finals(calls)).toHaveLength(1);
  expect(final?.event.state).toEqual({ count: 2 });
  expect(final?.event.isWindowTerminatedEarly).toBe(closedAt < windowMs(final as Invocation).end);
  // Nothing is open any more: a second close invokes nothing.
  await runner.closeWindows();
  expect(finals(calls)).toHaveLength(1);
});

it('ends a window early when its state passes 1 MB and starts the next state empty', async () => {
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  const big = 'x'.repeat(1_100_000);
  const { handler, calls } = counter((event, call) => (call === 1 ? { state: { big } } : undefined));
  const runner = runnerFor();
  runner.add(mappingFor(stream, { tumblingWindowInSeconds: 900, batchSize: 2 }), handler);
  await runner.start();
  await runner.waitForIdle(20_000);
  await runner.closeWindows();

  expect(calls.map((c) => [c.ns, c.event.isFinalInvokeForWindow, c.event.isWindowTerminatedEarly])).toEqual([
    [[0, 1], false, false],
    [[], true, true],
    [[2], false, false],
    [[], true, expect.any(Boolean)],
  ]);
  expect(calls[1]?.event.state).toEqual({ big });
  expect(calls[2]?.event.state).toEqual({});
});

it('carries an open window state across a restart through the checkpoint file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'runner-win-'));
  const checkpointFile = join(dir, 'checkpoints.json');
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  const first = counter();
  const runner1 = runnerFor({ checkpointFile });
  runner1.add(mappingFor(stream, { tumblingWindowInSeconds: 900 }), first.handler);
  await runner1.start();
  await runner1.waitForIdle(20_000);
  await runner1.stop();

  await putJson(suite.client, stream, [{ n: 3 }]);
  const second = counter();
  const runner2 = runnerFor({ checkpointFile });
  runner2.add(mappingFor(stream, { tumblingWindowInSeconds: 900 }), second.handler);
  await runner2.start();
  await runner2.waitForIdle(20_000);
  await runner2.closeWindows();

  expect(first.calls.map((c) => c.ns)).toEqual([[0, 1, 2]]);
  expect(second.calls.map((c) => [c.ns, c.event.state])).toEqual([
    [[3], { count: 3 }],
    [[], { count: 4 }],
  ]);
  rmSync(dir, { recursive: true, force: true });
});

it('gives each invocation its own copy of the state, so a failed one cannot corrupt the retry', async () => {
  const stream = uniqueStream('win');
  await ensureStreams(suite.client, [{ name: stream, shards: 1 }]);
  await putJson(suite.client, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
  const { handler, calls } = counter((event, call) => {
    if (call === 2) {
      (event.state as { count: number }).count = 1000; // mutated in place, then the invocation fails
      throw new Error('failed after touching its state');
    }
    return undefined;
  });
  const runner = runnerFor();
  runner.add(mappingFor(stream, { tumblingWindowInSeconds: 900, batchSize: 2 }), handler);
  await runner.start();
  await runner.waitForIdle(20_000);
  await runner.closeWindows();

  expect(finals(calls)[0]?.event.state).toEqual({ count: 3 });
});
