/**
 * Functions in worker threads, one per concurrent invocation, like Lambda containers: the
 * event and context cross over, errors come back, a timeout discards the container, a
 * failed initialisation fails loudly, and concurrent invocations get their own containers.
 */
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { HandlerPool, packedForTransfer } from '../../local/runner/handler-pool';
import { createLambdaContext } from '../../local/runner/lambda-context';

const HANDLERS = join(__dirname, '..', 'helpers', 'pool-handlers.ts');
const pools: HandlerPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

function pool(exportName: string, module = HANDLERS): HandlerPool {
  const created = new HandlerPool(module, exportName);
  pools.push(created);
  return created;
}

const call = (p: HandlerPool, event: unknown, timeoutSeconds = 30) =>
  (p.handler as unknown as (e: unknown, c: unknown) => Promise<unknown>)(
    event,
    createLambdaContext({ functionName: 'fn', timeoutSeconds }),
  );

it('runs the handler in a worker thread with the event and the context', async () => {
  const echo = pool('echo');
  const out = (await call(echo, { Records: [{ n: 1 }] })) as Record<string, unknown>;

  expect(out.event).toEqual({ Records: [{ n: 1 }] });
  expect(out.functionName).toBe('fn');
  expect(out.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(out.remaining).toBeGreaterThan(0);
  expect(out.threadId).not.toBe(threadId);
});

it("hands record bytes over as base64 and leaves the caller's records intact", async () => {
  // Views of one larger page, as the direct path reads them.
  const page = Buffer.from('..abc..defg..', 'latin1');
  const records = [
    { kinesis: { data: page.subarray(2, 5), partitionKey: 'a' } },
    { kinesis: { data: page.subarray(7, 11), partitionKey: 'b' } },
  ];
  const echo = pool('echo');
  const out = (await call(echo, { Records: records })) as { event: { Records: Array<{ kinesis: { data: string } }> } };

  expect(out.event.Records.map((r) => r.kinesis)).toEqual([
    { data: Buffer.from('abc').toString('base64'), partitionKey: 'a' },
    { data: Buffer.from('defg').toString('base64'), partitionKey: 'b' },
  ]);
  expect(records[0]?.kinesis.data.toString('latin1')).toBe('abc');
  expect(page.byteLength).toBe(13);
});

it("packs a batch's record bytes into one buffer of their own size", () => {
  const page = Buffer.alloc(1024, 7);
  const event = { Records: [{ kinesis: { data: page.subarray(0, 3) } }, { kinesis: { data: page.subarray(10, 15) } }], other: 1 };
  const { event: packed, transfer } = packedForTransfer(event);

  expect(transfer.map((b) => b.byteLength)).toEqual([8]);
  expect((packed as typeof event).other).toBe(1);
  expect((packed as typeof event).Records.map((r) => [...r.kinesis.data])).toEqual([
    [7, 7, 7],
    [7, 7, 7, 7, 7],
  ]);
  expect(event.Records[0]?.kinesis.data.buffer).toBe(page.buffer);
  expect(packedForTransfer({ Records: [{ kinesis: { data: 'text' } }] }).transfer).toEqual([]);
});

it('returns the handler error as the invocation error', async () => {
  await expect(call(pool('fail'), {})).rejects.toMatchObject({
    name: 'TypeError',
    message: 'the record is not what it should be',
  });
});

it('stops a handler at its timeout and serves the next invocation from a fresh container', async () => {
  const hang = pool('hang');
  await expect(call(hang, {}, 0.3)).rejects.toThrow(/Task timed out after 0\.[0-3]\d seconds/);
  await expect(call(hang, {}, 0.3)).rejects.toThrow(/Task timed out/);
  expect(hang.size).toBeLessThanOrEqual(1);
});

it('fails at warm-up with the error of a module that cannot initialise', async () => {
  const broken = pool('handler', join(__dirname, '..', 'helpers', 'pool-broken-handler.ts'));
  await expect(broken.warm()).rejects.toThrow(/cannot initialise: configuration is missing/);
});

it('gives concurrent invocations their own containers and reuses warm ones', async () => {
  const slow = pool('slow');
  const together = { arrived: new SharedArrayBuffer(4), parties: 2 };
  const [a, b] = (await Promise.all([call(slow, together), call(slow, together)])) as Array<{ threadId: number }>;
  const c = (await call(slow, {})) as { threadId: number };

  expect(a?.threadId).not.toBe(b?.threadId);
  expect([a?.threadId, b?.threadId]).toContain(c.threadId);
  expect(slow.size).toBe(2);
});
