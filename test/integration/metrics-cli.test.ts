import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { buildMetricsDocument, type MetricsDocument } from '../../functions/lib/metrics/document';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { renderMetricsTable } from '../../functions/lib/metrics/table';
import { main, tailMetrics } from '../../local/metrics-cli';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { predictionStream, TEST_CONFIG } from '../helpers/metrics-fixtures';
import { waitUntil } from '../helpers/wait';

const W1 = { start: '2026-11-27T15:00:00Z', end: '2026-11-27T15:00:10Z' };
const W2 = { start: '2026-11-27T15:00:10Z', end: '2026-11-27T15:00:20Z' };

function shardDocument(seed: number, frames: number, shard: string, window: { start: string; end: string }): MetricsDocument {
  const acc = new WindowAccumulator(TEST_CONFIG.confidence);
  acc.noteSequence(String(seed));
  for (const p of predictionStream(seed, frames)) acc.add(p);
  return buildMetricsDocument(acc, { window, shard, terminatedEarly: false, config: TEST_CONFIG });
}

/** Resolves when `check` holds, polling; fails the test after a generous bound. */
const eventually = (check: () => boolean, what: string): Promise<void> => waitUntil(check, what, 20_000);

describe('metrics tail', () => {
  let kinesis: TestKinesis;

  beforeAll(async () => {
    kinesis = await startKinesalite();
  });

  afterAll(async () => {
    await kinesis.close();
  });

  const put = (stream: string, doc: MetricsDocument | string, key = 'k') =>
    kinesis.client.send(
      new PutRecordCommand({
        StreamName: stream,
        PartitionKey: key,
        Data: Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc)),
      }),
    );

  it('merges the shard documents of each window, skips foreign records, and reprints a late shard', async () => {
    // Prepare: two shards' documents for W1, one for W2, a duplicate, and a stray record.
    const stream = 'tail-a-metrics';
    await kinesis.createStreams([stream], 2);
    const a = shardDocument(1, 300, 'shardId-000000000000', W1);
    const b = shardDocument(2, 200, 'shardId-000000000001', W1);
    const c = shardDocument(3, 50, 'shardId-000000000000', W2);
    for (const doc of [a, b, a, c]) await put(stream, doc, doc.shard);
    await put(stream, 'not json', 'x');

    const shown: Array<{ doc: MetricsDocument; update: boolean }> = [];
    const invalid: string[] = [];
    const controller = new AbortController();

    // Act
    const tail = tailMetrics({
      client: kinesis.client,
      stream,
      fromStart: true,
      graceMs: 100,
      pollMs: 20,
      signal: controller.signal,
      onWindow: (doc, update) => shown.push({ doc, update }),
      onInvalid: ({ error }) => invalid.push(error),
    });
    await eventually(() => shown.length >= 2, 'two windows');
    const late = shardDocument(4, 25, 'shardId-000000000002', W2);
    await put(stream, late, 'late');
    await eventually(() => shown.length >= 3, 'the updated window');
    controller.abort();
    await tail;

    // Assess
    expect(shown.map(({ doc, update }) => [doc.window.start, doc.count, update])).toEqual([
      [W1.start, 500, false],
      [W2.start, 50, false],
      [W2.start, 75, true],
    ]);
    expect(shown[0]?.doc.shard).toBe('shardId-000000000000,shardId-000000000001');
    expect(invalid).toHaveLength(1);
  });

  it('starts from now unless asked to read from the start', async () => {
    const stream = 'tail-b-metrics';
    await kinesis.createStreams([stream]);
    await put(stream, shardDocument(5, 10, 'shardId-000000000000', W1));
    const shown: MetricsDocument[] = [];
    const controller = new AbortController();
    let reading = false;

    const tail = tailMetrics({
      client: kinesis.client,
      stream,
      fromStart: false,
      graceMs: 50,
      pollMs: 20,
      signal: controller.signal,
      onWindow: (doc) => shown.push(doc),
      onReading: () => {
        reading = true;
      },
    });
    await eventually(() => reading, 'the reader to be positioned');
    await put(stream, shardDocument(6, 7, 'shardId-000000000000', W2));
    await eventually(() => shown.length >= 1, 'the new window');
    controller.abort();
    await tail;

    expect(shown.map((d) => d.count)).toEqual([7]);
  });

  it('rejects when the stream does not exist', async () => {
    await expect(
      tailMetrics({
        client: kinesis.client,
        stream: 'no-such-metrics',
        fromStart: true,
        graceMs: 50,
        pollMs: 20,
        signal: new AbortController().signal,
        onWindow: () => undefined,
      }),
    ).rejects.toThrow(/not found|ResourceNotFound/i);
  });

  it('the command prints each merged window as the table and stops on SIGINT', async () => {
    const prefix = 'cli-';
    await kinesis.createStreams([`${prefix}metrics`]);
    const doc = shardDocument(7, 40, 'shardId-000000000000', W1);
    await put(`${prefix}metrics`, doc);
    const out: string[] = [];
    const spies = [process.stdout, process.stderr].map((s) =>
      jest.spyOn(s, 'write').mockImplementation((chunk: string | Uint8Array) => {
        out.push(String(chunk));
        return true;
      }),
    );
    try {
      const run = main(['--endpoint', kinesis.endpoint, '--stream-prefix', prefix, '--from-start', '--grace', '0.05']);
      await eventually(() => out.some((line) => line.startsWith('window ')), 'a table');
      process.emit('SIGINT');
      expect(await run).toBe(0);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }

    expect(out.join('')).toContain(renderMetricsTable(doc));
  });

  it('refuses unknown options', async () => {
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['--endpont', 'x'])).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });
});
