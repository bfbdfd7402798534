/**
 * The local event source mapping runner against the real emulator, with small real handlers:
 * Lambda's batching, partial batch responses, bisect, retry/age limits and the on-failure
 * destination, parallel shards and lanes, checkpoints and reconnection.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import type { RunnerMapping, RunnerOptions, StreamHandler } from '../../local/runner';
import { decodeStateFile, StateFileError } from '../../functions/lib/state-file';
import {
  clientOf,
  mappingFor,
  putJson,
  type RunnerTransport,
  recordingHandler,
  runnerSuite,
  uniqueStream,
} from '../helpers/runner-harness';
import { fakeDate } from '../helpers/clock';
import { waitUntil } from '../helpers/wait';

/** The runner reads over HTTP (as against AWS) and over the embedded emulator's direct path. */
const TRANSPORTS: RunnerTransport[] = ['http', 'direct'];

describe.each(TRANSPORTS)('over the %s path', (transport) => {
  const warnings: string[] = [];
  const suite = runnerSuite((message) => warnings.push(message), transport);
  const { runnerFor } = suite;

  async function streamWith(count: number, shards = 1, key?: (i: number) => string): Promise<{ stream: string; seqs: string[] }> {
    const stream = uniqueStream();
    await ensureStreams(suite.client, [{ name: stream, shards }]);
    const seqs = await putJson(
      suite.client,
      stream,
      Array.from({ length: count }, (_, n) => ({ n })),
      key,
    );
    return { stream, seqs };
  }

  const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

  async function run(mapping: RunnerMapping, handler: StreamHandler, options?: Partial<RunnerOptions>) {
    const runner = runnerFor(options);
    runner.add(mapping, handler);
    await runner.start();
    await runner.waitForIdle(30_000);
    return runner;
  }

  describe('events and batching', () => {
    it('invokes with AWS-shaped Kinesis events and a Lambda context', async () => {
      // Prepare
      const { stream, seqs } = await streamWith(3, 1, () => 'camera-1');
      const { handler, calls } = recordingHandler();

      // Act
      await run(mappingFor(stream, { functionName: 'classify-local' }), handler);

      // Assess
      expect(calls).toHaveLength(1);
      const [call] = calls;
      const record = call?.event.Records[0];
      expect(record).toEqual({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: 'camera-1',
          sequenceNumber: seqs[0],
          data: Buffer.from(JSON.stringify({ n: 0 })).toString('base64'),
          approximateArrivalTimestamp: expect.any(Number),
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `shardId-000000000000:${seqs[0]}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: expect.stringMatching(/^arn:aws:iam::000000000000:role\//),
        awsRegion: 'us-east-1',
        eventSourceARN: `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`,
      });
      const arrival = record?.kinesis.approximateArrivalTimestamp ?? 0;
      expect(Math.abs(arrival - Date.now() / 1000)).toBeLessThan(600);
      expect(call?.context.functionName).toBe('classify-local');
      expect(call?.context.invokedFunctionArn).toBe('arn:aws:lambda:us-east-1:000000000000:function:classify-local');
      expect(call?.context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(call?.context.getRemainingTimeInMillis()).toBeGreaterThan(0);
      expect(call?.ns).toEqual([0, 1, 2]);
    });

    it('delivers batches of at most batchSize, in order, each record once', async () => {
      const { stream } = await streamWith(25, 1, () => 'one-key');
      const { handler, calls } = recordingHandler();

      await run(mappingFor(stream, { batchSize: 10 }), handler);

      expect(calls.map((c) => c.ns.length)).toEqual([10, 10, 5]);
      expect(calls.flatMap((c) => c.ns)).toEqual(range(25));
    });

    it('holds a short batch until the batching window expires instead of invoking at once', async () => {
      const { stream } = await streamWith(7);
      const { handler, calls } = recordingHandler();

      await run(mappingFor(stream, { batchSize: 3, batchWindowSeconds: 1 }), handler);

      // The two full batches go at once; the last record waits out the window and goes alone.
      expect(calls.map((c) => c.ns)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    });

    it('fails the invocation when the handler runs past the function timeout', async () => {
      const { stream } = await streamWith(1);
      let call = 0;
      // The first invocation runs until released, well after the runner has given up on it.
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      const handler = async (): Promise<unknown> => {
        call += 1;
        if (call === 1) await released;
        return { batchItemFailures: [] };
      };
      const runner = await run(mappingFor(stream, { timeoutSeconds: 0.2, maximumRetryAttempts: 0 }), handler);
      release();

      expect(runner.deadLetters).toHaveLength(1);
      expect(runner.deadLetters[0]?.errorMessage).toMatch(/Task timed out after 0.20 seconds/);
    });
  });

  describe('partial batch responses', () => {
    it('checkpoints before the lowest failed sequence number and retries from there', async () => {
      const { stream, seqs } = await streamWith(10);
      const { handler, calls } = recordingHandler((_event, call) =>
        call === 1 ? { batchItemFailures: [{ itemIdentifier: seqs[6] }, { itemIdentifier: seqs[4] }] } : {},
      );

      await run(mappingFor(stream), handler);

      expect(calls.map((c) => c.ns)).toEqual([range(10), range(6, 4)]);
    });

    it.each([
      ['an empty itemIdentifier', { batchItemFailures: [{ itemIdentifier: '' }] }],
      ['a null itemIdentifier', { batchItemFailures: [{ itemIdentifier: null }] }],
      ['an unknown itemIdentifier', { batchItemFailures: [{ itemIdentifier: '123' }] }],
      ['a misspelt key', { batchItemFailures: [{ itemIdentifer: 'x' }] }],
    ])('fails the whole batch on %s', async (_name, response) => {
      const { stream } = await streamWith(4);
      const { handler, calls } = recordingHandler((_event, call) => (call === 1 ? response : undefined));

      await run(mappingFor(stream), handler);

      expect(calls.map((c) => c.ns)).toEqual([range(4), range(4)]);
    });

    it('treats an empty list, null or no response as success', async () => {
      const responses = [{ batchItemFailures: [] }, { batchItemFailures: null }, null, undefined];
      const { stream } = await streamWith(4);
      const { handler, calls } = recordingHandler((_event, call) => responses[call - 1]);

      await run(mappingFor(stream, { batchSize: 1 }), handler);

      expect(calls.map((c) => c.ns)).toEqual([[0], [1], [2], [3]]);
    });

    it('ignores batchItemFailures when the mapping does not report them', async () => {
      const { stream, seqs } = await streamWith(3);
      const { handler, calls } = recordingHandler(() => ({ batchItemFailures: [{ itemIdentifier: seqs[0] }] }));

      await run(mappingFor(stream, { reportBatchItemFailures: false }), handler);

      expect(calls).toHaveLength(1);
    });
  });

  describe('errors, bisect, retry limit, record age and the on-failure destination', () => {
    it('bisects a failing batch down to the poison record and sends only it to the destination', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'runner-dlq-'));
      const deadLetterFile = join(dir, 'dead-letter.jsonl');
      const { stream, seqs } = await streamWith(8);
      const { handler, calls } = recordingHandler((event) => {
        if (event.Records.some((r) => r.kinesis.sequenceNumber === seqs[5])) throw new Error('record 5 is poison');
        return {};
      });

      const runner = await run(mappingFor(stream, { bisectBatchOnFunctionError: true, maximumRetryAttempts: 2 }), handler, {
        deadLetterFile,
      });

      // 8 -> 4+4 -> (4 ok) 2+2 -> (2 ok)... the poison record alone: first try + 2 retries.
      expect(calls.map((c) => c.ns)).toEqual([range(8), range(4), range(4, 4), [4, 5], [4], [5], [5], [5], [6, 7]]);
      expect(runner.deadLetters).toHaveLength(1);
      const letter = runner.deadLetters[0];
      expect(letter?.requestContext).toMatchObject({ condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 });
      expect(letter?.requestContext.functionArn).toBe(`arn:aws:lambda:us-east-1:000000000000:function:fn-${stream}`);
      expect(letter?.responseContext).toMatchObject({ statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' });
      expect(letter?.KinesisBatchInfo).toMatchObject({
        shardId: 'shardId-000000000000',
        startSequenceNumber: seqs[5],
        endSequenceNumber: seqs[5],
        batchSize: 1,
        streamArn: `arn:aws:kinesis:us-east-1:000000000000:stream/${stream}`,
      });
      expect(letter?.errorMessage).toContain('record 5 is poison');
      expect(letter?.destinationArn).toBe('arn:aws:sqs:us-east-1:000000000000:test-dlq');
      const onDisk = readFileSync(deadLetterFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown);
      expect(onDisk).toEqual(JSON.parse(JSON.stringify(runner.deadLetters)));
      rmSync(dir, { recursive: true, force: true });
    });

    it('without bisect retries the whole batch up to the limit, then moves the shard on', async () => {
      const { stream } = await streamWith(4);
      const { handler, calls } = recordingHandler((event) => {
        if (event.Records.length === 4) throw new Error('always fails on the first four');
        return {};
      });

      const runner = runnerFor();
      runner.add(mappingFor(stream, { maximumRetryAttempts: 2 }), handler);
      await runner.start();
      await runner.waitForIdle(30_000);
      await putJson(suite.client, stream, [{ n: 4 }, { n: 5 }]);
      await runner.waitForIdle(30_000);

      expect(calls.map((c) => c.ns)).toEqual([range(4), range(4), range(4), [4, 5]]);
      expect(runner.deadLetters.map((d) => [d.KinesisBatchInfo.batchSize, d.requestContext.approximateInvokeCount])).toEqual([
        [4, 3],
      ]);
      expect(runner.deadLetters[0]?.records.map((r) => JSON.parse(Buffer.from(r.data, 'base64').toString()) as unknown)).toEqual(
        range(4).map((n) => ({ n })),
      );
    });

    it('counts retries after a partial failure against the same limit', async () => {
      const { stream, seqs } = await streamWith(5);
      const { handler, calls } = recordingHandler(() => ({ batchItemFailures: [{ itemIdentifier: seqs[3] }] }));

      const runner = await run(mappingFor(stream, { maximumRetryAttempts: 1 }), handler);

      expect(calls.map((c) => c.ns)).toEqual([range(5), [3, 4]]);
      expect(runner.deadLetters[0]?.KinesisBatchInfo).toMatchObject({
        startSequenceNumber: seqs[3],
        endSequenceNumber: seqs[4],
        batchSize: 2,
      });
    });

    it('sends records older than maximumRecordAgeInSeconds to the destination without invoking', async () => {
      // An emulator on this thread stamps arrivals with the clock the runner reads; the test
      // moves that clock 1.3 s on instead of waiting for the records to age.
      fakeDate(Date.now(), true);
      const local = await KinesisEmulator.start({ port: 0, sameThread: true });
      const localClient = clientOf(local, transport);
      const stream = uniqueStream();
      const { handler, calls } = recordingHandler();
      const runner = runnerFor({}, localClient);
      let seqs: string[];
      try {
        await ensureStreams(localClient, [{ name: stream, shards: 1 }]);
        seqs = await putJson(localClient, stream, [{ n: 0 }, { n: 1 }, { n: 2 }]);
        jest.setSystemTime(Date.now() + 1300);
        runner.add(mappingFor(stream, { maximumRecordAgeInSeconds: 1 }), handler);
        await runner.start();
        await runner.waitForIdle(30_000);

        await putJson(localClient, stream, [{ n: 3 }]);
        // The faked clock moves in steps, too coarse for waitForIdle's marks: wait for the delivery.
        await waitUntil(
          () => calls.length > 0,
          'the fresh record delivered',
          30_000,
          () => JSON.stringify(runner.deadLetters),
        );
        await runner.waitForIdle(30_000);
      } finally {
        await runner.stop();
        jest.useRealTimers();
        localClient.destroy();
        await local.stop();
      }

      expect(calls.map((c) => c.ns)).toEqual([[3]]);
      expect(runner.deadLetters).toHaveLength(1);
      expect(runner.deadLetters[0]?.requestContext.condition).toBe('RecordAgeExceeded');
      expect(runner.deadLetters[0]?.KinesisBatchInfo).toMatchObject({
        startSequenceNumber: seqs[0],
        endSequenceNumber: seqs[2],
        batchSize: 3,
      });
    });
  });

  describe('parallelism', () => {
    it('consumes every shard concurrently, each record once, in order per partition key', async () => {
      const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
      const { stream } = await streamWith(120, 3, (i) => keys[i % keys.length] as string);
      let inFlight = 0;
      let maxInFlight = 0;
      const { handler, calls } = recordingHandler(async () => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 30));
        inFlight -= 1;
        return {};
      });

      await run(mappingFor(stream, { batchSize: 5 }), handler);

      const shards = new Set(calls.map((c) => c.event.Records[0]?.eventID.split(':')[0]));
      expect(shards.size).toBeGreaterThan(1);
      expect(maxInFlight).toBeGreaterThan(1);
      const seen = calls.flatMap((c) => c.ns);
      expect([...seen].sort((x, y) => x - y)).toEqual(range(120));
      for (const [k] of keys.entries()) {
        const ofKey = seen.filter((n) => n % keys.length === k);
        expect(ofKey).toEqual([...ofKey].sort((x, y) => x - y));
      }
    });

    it('spreads one shard over parallelizationFactor lanes and checkpoints only finished records', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'runner-pf-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      const { stream, seqs } = await streamWith(60, 1, (i) => `k${i % 4}`);
      let inFlight = 0;
      let maxInFlight = 0;
      const { handler, calls } = recordingHandler(async () => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight -= 1;
        return {};
      });

      const runner = await run(mappingFor(stream, { batchSize: 5, parallelizationFactor: 4 }), handler, { checkpointFile });
      await runner.stop();

      expect(maxInFlight).toBeGreaterThan(1);
      const seen = calls.flatMap((c) => c.ns);
      expect([...seen].sort((x, y) => x - y)).toEqual(range(60));
      for (const k of range(4)) {
        const ofKey = seen.filter((n) => n % 4 === k);
        expect(ofKey).toEqual([...ofKey].sort((x, y) => x - y));
      }
      const saved = decodeStateFile(readFileSync(checkpointFile)) as Record<string, { sequenceNumber: string }>;
      expect(Object.values(saved).map((c) => c.sequenceNumber)).toEqual([seqs[59]]);
      rmSync(dir, { recursive: true, force: true });
    });
  });

  describe('checkpoints and outages', () => {
    it('resumes after the last finished record when restarted with the same checkpoint file', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'runner-ckpt-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      const { stream } = await streamWith(10);
      const first = recordingHandler();
      const runner1 = await run(mappingFor(stream), first.handler, { checkpointFile });
      await runner1.stop();

      await putJson(suite.client, stream, [{ n: 10 }, { n: 11 }]);
      const second = recordingHandler();
      await run(mappingFor(stream), second.handler, { checkpointFile });

      expect(first.calls.flatMap((c) => c.ns)).toEqual(range(10));
      expect(second.calls.flatMap((c) => c.ns)).toEqual([10, 11]);
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts a consumer with no checkpoint at the run start, and a restart before its first record there too', async () => {
      // Prepare: a stream that already holds records of an earlier run.
      const dir = mkdtempSync(join(tmpdir(), 'runner-start-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      const { stream } = await streamWith(5);

      // Act 1: a run that stops before anything new arrives, then records put while no runner runs.
      const idle = recordingHandler();
      const runner1 = await run(mappingFor(stream), idle.handler, { checkpointFile, firstPosition: 'run-start' });
      await runner1.stop();
      await putJson(suite.client, stream, [{ n: 5 }, { n: 6 }]);
      // Act 2: the next run resumes at the first run's start, then reads what comes after.
      const next = recordingHandler();
      const runner2 = runnerFor({ checkpointFile, firstPosition: 'run-start' });
      runner2.add(mappingFor(stream), next.handler);
      await runner2.start();
      await putJson(suite.client, stream, [{ n: 7 }]);
      await runner2.waitForIdle(30_000);

      // Assess: the earlier five were never delivered; nothing after the first start was missed.
      expect(idle.calls.flatMap((c) => c.ns)).toEqual([]);
      expect(next.calls.flatMap((c) => c.ns)).toEqual([5, 6, 7]);
      rmSync(dir, { recursive: true, force: true });
    });

    it('reports a damaged checkpoint file with its path and resumes from the previous copy', async () => {
      // Prepare: two runs, so the file holds the second run's checkpoint and .prev the first's.
      const dir = mkdtempSync(join(tmpdir(), 'runner-torn-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      const { stream } = await streamWith(10);
      const runner1 = await run(mappingFor(stream), recordingHandler().handler, { checkpointFile });
      await runner1.stop();
      await putJson(suite.client, stream, [{ n: 10 }, { n: 11 }]);
      const runner2 = await run(mappingFor(stream), recordingHandler().handler, { checkpointFile });
      await runner2.stop();
      // A power cut mid-write as a file system without ordering guarantees could leave it.
      const whole = readFileSync(checkpointFile);
      writeFileSync(checkpointFile, whole.subarray(0, Math.floor(whole.length / 2)));
      await putJson(suite.client, stream, [{ n: 12 }]);
      warnings.length = 0;

      // Act
      const third = recordingHandler();
      await run(mappingFor(stream), third.handler, { checkpointFile });

      // Assess: at least once (10 and 11 again), never from the beginning, the damage named.
      expect(third.calls.flatMap((c) => c.ns)).toEqual([10, 11, 12]);
      expect(warnings).toContain('checkpoint file damaged, resuming from its last good copy');
      rmSync(dir, { recursive: true, force: true });
    });

    it('refuses to start on a checkpoint file with no readable copy, naming it', () => {
      const dir = mkdtempSync(join(tmpdir(), 'runner-garbage-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      writeFileSync(checkpointFile, 'PK\u0003\u0004 not a state file at all');

      expect(() => runnerFor({ checkpointFile })).toThrow(StateFileError);
      expect(() => runnerFor({ checkpointFile })).toThrow(checkpointFile);
      rmSync(dir, { recursive: true, force: true });
    });

    it('stops cleanly while the endpoint is down, leaving unfinished records unfinished', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'runner-down-'));
      const checkpointFile = join(dir, 'checkpoints.json');
      const lonely = await KinesisEmulator.start({ port: 0 });
      const local = clientOf(lonely, transport);
      const stream = uniqueStream('down');
      await ensureStreams(local, [{ name: stream, shards: 1 }]);
      const seqs = await putJson(
        local,
        stream,
        range(4).map((n) => ({ n })),
      );
      const { handler, calls } = recordingHandler(async (event) => {
        if (event.Records.some((r) => r.kinesis.sequenceNumber === seqs[2])) {
          await lonely.stop();
          throw new Error('downstream write failed');
        }
        return {};
      });
      const runner = runnerFor({ checkpointFile }, local);
      runner.add(mappingFor(stream, { batchSize: 2, maximumRetryAttempts: 0 }), handler);
      await runner.start();
      await waitUntil(
        () => calls.length >= 2,
        'the invocation that stops the endpoint',
        30_000,
        () => `${calls.length} invocations`,
      );

      await runner.stop();

      const saved = decodeStateFile(readFileSync(checkpointFile)) as Record<string, { sequenceNumber: string }>;
      expect(Object.values(saved).map((c) => c.sequenceNumber)).toEqual([seqs[1]]);
      expect(runner.deadLetters).toEqual([]);
      local.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts at LATEST and, reconnecting before any record came, skips nothing that arrived meanwhile', async () => {
      warnings.length = 0;
      const dir = mkdtempSync(join(tmpdir(), 'runner-latest-'));
      const store = join(dir, 'kinesis');
      let persistent = await KinesisEmulator.start({ port: 0, persistPath: store });
      const port = persistent.port;
      const local = clientOf(persistent, transport);
      const stream = uniqueStream('latest');
      await ensureStreams(local, [{ name: stream, shards: 1 }]);
      await putJson(local, stream, [{ n: 0 }, { n: 1 }]);
      const { handler, calls } = recordingHandler();
      const runner = runnerFor({}, local);
      runner.add(mappingFor(stream, { startingPosition: 'LATEST' }), handler);
      await runner.start();
      await runner.waitForIdle(30_000);

      await persistent.stop();
      await waitUntil(
        () => warnings.some((w) => w.includes('unreachable')),
        'the runner to find the endpoint unreachable',
        30_000,
        () => JSON.stringify(warnings),
      );
      persistent = await KinesisEmulator.start({ port, persistPath: store });
      await putJson(local, stream, [{ n: 2 }, { n: 3 }]);
      await runner.waitForIdle(30_000);
      await runner.stop();

      expect(calls.flatMap((c) => c.ns)).toEqual([2, 3]);
      local.destroy();
      await persistent.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('keeps its place while the emulator is down and resumes without loss when it returns', async () => {
      // Prepare: a persistent emulator, so a stop and start keeps the stream's records.
      warnings.length = 0;
      const dir = mkdtempSync(join(tmpdir(), 'runner-outage-'));
      const store = join(dir, 'kinesis');
      let persistent = await KinesisEmulator.start({ port: 0, persistPath: store });
      const port = persistent.port;
      const local = clientOf(persistent, transport);
      const stream = uniqueStream('outage');
      await ensureStreams(local, [{ name: stream, shards: 1 }]);
      await putJson(
        local,
        stream,
        range(20).map((n) => ({ n })),
      );
      let outage = false;
      const { handler, calls } = recordingHandler(async (event) => {
        // The endpoint goes away in the middle of a batch, whose downstream write then fails.
        if (!outage && event.Records.length > 0 && calls[calls.length - 1]?.ns.some((n) => n >= 20)) {
          outage = true;
          await persistent.stop();
          throw new Error('downstream write failed: endpoint unreachable');
        }
        return {};
      });
      // No retries allowed: were the outage's failure counted, the batch would be dead-lettered.
      const runner = runnerFor({}, local);
      runner.add(mappingFor(stream, { batchSize: 10, maximumRetryAttempts: 0 }), handler);
      await runner.start();
      await runner.waitForIdle(30_000);

      // Act
      await putJson(
        local,
        stream,
        range(10, 20).map((n) => ({ n })),
      );
      await waitUntil(
        () => outage && warnings.some((w) => w.includes('unreachable')),
        'the runner to find the endpoint unreachable',
        30_000,
        () => `outage ${outage}, warnings ${JSON.stringify(warnings)}`,
      );
      persistent = await KinesisEmulator.start({ port, persistPath: store });
      await putJson(
        local,
        stream,
        range(5, 30).map((n) => ({ n })),
      );
      await runner.waitForIdle(60_000);
      await runner.stop();

      // Assess
      const delivered = calls.flatMap((c) => c.ns);
      const times = (n: number): number => delivered.filter((d) => d === n).length;
      expect(runner.deadLetters).toHaveLength(0);
      expect(range(35).map(times)).toEqual(range(35).map((n) => (n >= 20 && n < 30 ? 2 : 1)));
      expect(warnings.some((w) => w.includes('unreachable'))).toBe(true);
      local.destroy();
      await persistent.stop();
      rmSync(dir, { recursive: true, force: true });
    });
  });
});
