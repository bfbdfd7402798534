/**
 * The uplink backlog: bounded with a policy when full (every drop counted and reported),
 * in order per stream, and, persisted, recovered after a crash with exactly the records still
 * owed to the home.
 */
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DroppedRecord, type IncomingRecord, UplinkBacklog } from '../../local/uplink/backlog';

const STREAMS = ['metrics', 'rejected-images', 'uncertain-images'];

/** A record of exactly `bytes` Kinesis bytes (data + the 1-character key). */
function rec(id: string, bytes = 100, key = 'k', source?: IncomingRecord['source']): IncomingRecord {
  return { partitionKey: key, data: Buffer.alloc(bytes - Buffer.byteLength(key), 'x'), id, ...(source ? { source } : {}) };
}

const ids = (backlog: UplinkBacklog, stream: string): Array<string | undefined> => backlog.snapshot(stream).map((r) => r.id);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uplink-backlog-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('reject-new', () => {
  it('drops exactly the newcomers that do not fit, counts them by stream and reason, and keeps the rest', () => {
    // Prepare: room for 5 records of 100 bytes.
    const drops: DroppedRecord[] = [];
    const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 500, policy: 'reject-new', onDrop: (d) => drops.push(d) });
    // Act
    backlog.add(
      'uncertain-images',
      ['u1', 'u2', 'u3', 'u4'].map((id) => rec(id)),
    );
    const result = backlog.add(
      'metrics',
      ['m1', 'm2', 'm3'].map((id) => rec(id)),
    );
    // Assert
    expect(result).toEqual({ stored: 1, dropped: 2, skipped: 0 });
    expect(ids(backlog, 'uncertain-images')).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(ids(backlog, 'metrics')).toEqual(['m1']);
    expect(drops.map((d) => [d.stream, d.reason, d.id])).toEqual([
      ['metrics', 'backlog-full-reject-new', 'm2'],
      ['metrics', 'backlog-full-reject-new', 'm3'],
    ]);
    expect(backlog.dropped.metrics).toEqual({ 'backlog-full-reject-new': 2 });
    expect(backlog.bytes).toBe(500);
  });
});

describe('drop-oldest', () => {
  it('makes room by dropping the oldest records of the lowest-priority stream first', () => {
    // Prepare
    const drops: DroppedRecord[] = [];
    const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 500, policy: 'drop-oldest', onDrop: (d) => drops.push(d) });
    backlog.add('metrics', [rec('m1')]);
    backlog.add('rejected-images', [rec('r1'), rec('r2')]);
    backlog.add('uncertain-images', [rec('u1'), rec('u2')]);
    // Act: 3 more metrics documents need 3 records' room.
    backlog.add('metrics', [rec('m2'), rec('m3'), rec('m4')]);
    // Assert: both images go, then the oldest reject.
    expect(drops.map((d) => d.id)).toEqual(['u1', 'u2', 'r1']);
    expect(drops.every((d) => d.reason === 'backlog-full-drop-oldest' && d.queuedAt !== undefined)).toBe(true);
    expect(ids(backlog, 'metrics')).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(ids(backlog, 'rejected-images')).toEqual(['r2']);
    expect(backlog.dropped).toEqual({
      metrics: {},
      'rejected-images': { 'backlog-full-drop-oldest': 1 },
      'uncertain-images': { 'backlog-full-drop-oldest': 2 },
    });
  });

  it('never drops a record being sent; the newcomer goes when nothing else can', () => {
    // Prepare: the only two records are in flight.
    const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 200, policy: 'drop-oldest' });
    backlog.add('uncertain-images', [rec('u1'), rec('u2')]);
    expect(backlog.take('uncertain-images', 500, 1e9).map((r) => r.id)).toEqual(['u1', 'u2']);
    // Act
    backlog.add('uncertain-images', [rec('u3')]);
    // Assert
    expect(ids(backlog, 'uncertain-images')).toEqual(['u1', 'u2']);
    expect(backlog.dropped['uncertain-images']).toEqual({ 'backlog-full-reject-new': 1 });
  });
});

it('drops a record larger than Kinesis accepts, whatever the room', () => {
  const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 10_000_000, policy: 'reject-new' });
  backlog.add('uncertain-images', [rec('big', 1024 * 1024 + 1), rec('ok')]);
  expect(ids(backlog, 'uncertain-images')).toEqual(['ok']);
  expect(backlog.dropped['uncertain-images']).toEqual({ 'too-large': 1 });
});

it('hands out batches in order within record and byte bounds, and settles only what the home acknowledged', () => {
  // Prepare
  const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new' });
  backlog.add(
    'uncertain-images',
    ['a', 'b', 'c', 'd', 'e'].map((id) => rec(id)),
  );
  // Act + Assert: 250 bytes hold two records.
  const batch = backlog.take('uncertain-images', 500, 250);
  expect(batch.map((r) => r.id)).toEqual(['a', 'b']);
  backlog.settle('uncertain-images', [batch[1]?.seq as number]);
  expect(ids(backlog, 'uncertain-images')).toEqual(['a', 'c', 'd', 'e']);
  expect(backlog.take('uncertain-images', 3, 1e9).map((r) => r.id)).toEqual(['a', 'c', 'd']);
});

describe('persisted', () => {
  it('recovers exactly the records still owed, in order, with the drop counts, after the process dies', () => {
    // Prepare: some records acknowledged in order, one out of order, one evicted.
    const first = new UplinkBacklog({ streams: STREAMS, maxBytes: 1000, policy: 'drop-oldest', dir });
    first.add(
      'uncertain-images',
      ['u1', 'u2', 'u3', 'u4', 'u5'].map((id) => rec(id)),
    );
    first.add('metrics', [rec('m1')]);
    const batch = first.take('uncertain-images', 3, 1e9);
    first.settle('uncertain-images', [batch[0]?.seq as number, batch[2]?.seq as number]);
    first.add(
      'rejected-images',
      ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7'].map((id) => rec(id)),
    );
    // No stop, no flush: the object is simply abandoned, as a SIGKILL would.
    // Act
    const second = new UplinkBacklog({ streams: STREAMS, maxBytes: 1000, policy: 'drop-oldest', dir });
    // Assert: u2 was evicted (lowest priority, oldest), u1 and u3 acknowledged.
    expect(ids(second, 'uncertain-images')).toEqual(['u4', 'u5']);
    expect(ids(second, 'metrics')).toEqual(['m1']);
    expect(ids(second, 'rejected-images')).toEqual(['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    expect(second.dropped['uncertain-images']).toEqual({ 'backlog-full-drop-oldest': 1 });
    expect(second.bytes).toBe(1000);
    // New records continue the sequence, after the recovered ones.
    second.add(
      'metrics',
      [rec('m2', 1)].map((r) => ({ ...r, data: Buffer.alloc(0) })),
    );
    expect(second.snapshot('metrics').map((r) => r.seq)).toEqual([1, 2]);
  });

  it('ignores a line cut short by a crash and skips records the edge delivers again', () => {
    // Prepare
    const source = (n: number) => ({ shardId: 'shardId-000000000000', sequenceNumber: String(1000n + BigInt(n)) });
    const first = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir });
    first.add('uncertain-images', [rec('u1', 100, 'k', source(1)), rec('u2', 100, 'k', source(2))]);
    const segment = readdirSync(join(dir, 'uncertain-images'))[0] as string;
    appendFileSync(join(dir, 'uncertain-images', segment), '{"s":3,"k":"k","d":"eHh4');
    // Act: the edge's reader re-reads from its last checkpoint (u1, u2) and goes on (u3).
    const second = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir });
    const result = second.add('uncertain-images', [
      rec('u1', 100, 'k', source(1)),
      rec('u2', 100, 'k', source(2)),
      rec('u3', 100, 'k', source(3)),
    ]);
    // Assert
    expect(result).toEqual({ stored: 1, dropped: 0, skipped: 2 });
    expect(ids(second, 'uncertain-images')).toEqual(['u1', 'u2', 'u3']);
    const third = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir });
    expect(ids(third, 'uncertain-images')).toEqual(['u1', 'u2', 'u3']);
  });

  it('falls back to the previous state copy when the current one is torn, says so, and owes the records again', () => {
    // Prepare: u1 then u2 acknowledged, one state write each; then the current copy is torn.
    const first = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir });
    first.add(
      'uncertain-images',
      ['u1', 'u2', 'u3'].map((id) => rec(id)),
    );
    for (let i = 0; i < 2; i += 1) first.settle('uncertain-images', [first.take('uncertain-images', 1, 1e9)[0]?.seq as number]);
    const state = join(dir, 'state.json');
    truncateSync(state, statSync(state).size - 5);
    // Act
    const problems: string[] = [];
    const second = new UplinkBacklog({
      streams: STREAMS,
      maxBytes: 1e6,
      policy: 'reject-new',
      dir,
      onProblem: (message) => problems.push(message),
    });
    // Assert: the previous copy settled only u1, so u2 is owed again (the home keeps one copy).
    expect(ids(second, 'uncertain-images')).toEqual(['u2', 'u3']);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(state);
    expect(problems[0]).toContain('torn');
  });

  it('refuses to start over when no copy of its state is readable, naming the file', () => {
    // Prepare
    const first = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir });
    first.add('uncertain-images', [rec('u1')]);
    first.settle('uncertain-images', [first.take('uncertain-images', 1, 1e9)[0]?.seq as number]);
    writeFileSync(join(dir, 'state.json'), 'garbage');
    rmSync(join(dir, 'state.json.prev'), { force: true });
    // Act + Assert
    expect(() => new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir })).toThrow(
      join(dir, 'state.json'),
    );
  });

  it('deletes a segment file once none of its records is owed', () => {
    // Prepare: segments of ~300 bytes roll over every couple of records.
    const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir, segmentBytes: 300 });
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) backlog.add('uncertain-images', [rec(id)]);
    const before = readdirSync(join(dir, 'uncertain-images')).length;
    // Act
    const batch = backlog.take('uncertain-images', 4, 1e9);
    backlog.settle(
      'uncertain-images',
      batch.map((r) => r.seq),
    );
    // Assert
    const after = readdirSync(join(dir, 'uncertain-images')).length;
    expect(before).toBeGreaterThan(2);
    expect(after).toBeLessThan(before);
    expect(ids(new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', dir }), 'uncertain-images')).toEqual([
      'e',
      'f',
    ]);
  });
});

it('reports every record an in-memory backlog still holds as dropped when it is given up', () => {
  const drops: DroppedRecord[] = [];
  const backlog = new UplinkBacklog({ streams: STREAMS, maxBytes: 1e6, policy: 'reject-new', onDrop: (d) => drops.push(d) });
  backlog.add('metrics', [rec('m1')]);
  backlog.add('uncertain-images', [rec('u1'), rec('u2')]);
  expect(backlog.abandonAll()).toBe(3);
  expect(drops.map((d) => `${d.stream}/${d.id}/${d.reason}`).sort()).toEqual([
    'metrics/m1/not-sent-before-exit',
    'uncertain-images/u1/not-sent-before-exit',
    'uncertain-images/u2/not-sent-before-exit',
  ]);
  expect(backlog.records).toBe(0);
  expect(backlog.bytes).toBe(0);
});
