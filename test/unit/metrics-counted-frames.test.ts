/**
 * Each frame counted once across tumbling windows: a frame redelivered into a later window (a
 * retried classify batch, a restarted pipeline) is not counted again, the memory that says so
 * is bounded, survives a restart when kept in a folder, and never drops a frame that no
 * written document counted.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Prediction } from '../../functions/lib/contracts';
import { aggregateWindow } from '../../functions/lib/metrics/aggregate';
import { CountedFrames, MAX_COUNTED_FRAMES } from '../../functions/lib/metrics/counted-frames';
import {
  type CountedFramesStore,
  countedFramesFile,
  createCountedFramesStore,
  MAX_COUNTED_SHARDS,
} from '../../functions/lib/metrics/counted-frames-store';
import { buildMetricsDocument, type MetricsDocument } from '../../functions/lib/metrics/document';
import { mergeMetrics } from '../../functions/lib/metrics/merge';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { frameDigest, MAX_SEEN_FRAMES } from '../../functions/lib/metrics/seen-frames';
import type { RecordSink } from '../../functions/lib/stream-writer';
import { previousCopyPath } from '../../functions/lib/state-file';
import { makePrediction, predictionStream, TEST_CONFIG } from '../helpers/metrics-fixtures';
import { event, record, SHARD, windowOf } from '../helpers/tumbling-window-events';

const quietLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The shard's sequence numbers, increasing across windows as in a real stream. */
let nextSequence = 1_000;

/**
 * One window of the shard as Lambda runs it: a folding invocation with the records, then the
 * final invocation (no records) that writes the document. Returns the document written, if any.
 */
async function runWindow(
  n: number,
  predictions: Prediction[],
  counted: CountedFramesStore | undefined,
  firstSequence?: number,
): Promise<MetricsDocument | undefined> {
  let sequence = firstSequence ?? nextSequence;
  const records = predictions.map((p) => record(sequence++, p));
  nextSequence = Math.max(nextSequence, sequence);
  const deps = { sink: collectingSink(), metricsStream: 'metrics', config: TEST_CONFIG, logger: quietLogger };
  const folded = await aggregateWindow(event(windowOf(n), records, {}, false), { ...deps, ...(counted ? { counted } : {}) });
  const closed = await aggregateWindow(event(windowOf(n), [], folded.response.state ?? {}, true), {
    ...deps,
    ...(counted ? { counted } : {}),
    now: () => new Date(Date.parse(windowOf(n).end) + 1_000),
  });
  return closed.document;
}

/** A sink that accepts every document (what it wrote is in the returned documents). */
function collectingSink(): RecordSink {
  return { put: async () => ({ failedIndexes: [] }) };
}

function memoryStore(problems: string[] = []): CountedFramesStore {
  return createCountedFramesStore(undefined, (message) => problems.push(message));
}

/** A document's counts, without what names or times it. */
function counts(doc: MetricsDocument) {
  const { id, parts, shard, window, timestamp, throughput, duplicates, terminated_early, ...rest } = doc;
  return JSON.parse(
    JSON.stringify(rest, (key, value: unknown) =>
      typeof value === 'number' && ['mean', 'std', 'm2', 'mean_probability', 'rate'].includes(key)
        ? Number(value.toPrecision(9))
        : value,
    ),
  ) as unknown;
}

describe('CountedFrames', () => {
  const digests = (...ids: string[]) => ids.map(frameDigest).join('');

  it('remembers each frame with the document that counted it first', () => {
    const memory = new CountedFrames();

    memory.remember('doc-1', digests('a', 'b'));
    memory.remember('doc-2', digests('b', 'c'));

    expect(memory.countedIn(frameDigest('a'))).toBe('doc-1');
    expect(memory.countedIn(frameDigest('b'))).toBe('doc-1');
    expect(memory.countedIn(frameDigest('c'))).toBe('doc-2');
    expect(memory.countedIn(frameDigest('d'))).toBeUndefined();
    expect(memory.size).toBe(3);
  });

  it('keeps at most its bound, forgetting the oldest documents whole, never the newest', () => {
    const memory = new CountedFrames(5);

    memory.remember('doc-1', digests('a', 'b'));
    memory.remember('doc-2', digests('c', 'd'));
    memory.remember('doc-3', digests('e', 'f'));

    expect(memory.size).toBe(4);
    expect(memory.documentCount).toBe(2);
    expect(memory.countedIn(frameDigest('a'))).toBeUndefined();
    expect(memory.countedIn(frameDigest('c'))).toBe('doc-2');
    memory.remember('doc-4', digests('g', 'h', 'i', 'j', 'k', 'l'));
    expect([memory.size, memory.documentCount]).toEqual([6, 1]);
    expect(memory.countedIn(frameDigest('l'))).toBe('doc-4');
  });

  it('takes the memory of its bound from the start: filling it and churning past it allocate nothing more', () => {
    const memory = new CountedFrames(2_000);
    const bytes = memory.indexBytes;
    let frame = 0;
    // Windows of up to half the bound, as a window holds at most half of MAX_COUNTED_FRAMES.
    for (let window = 0; window < 60; window += 1) {
      const size = 1 + ((window * 379) % 1_000);
      memory.remember(`doc-${window}`, digests(...Array.from({ length: size }, () => `frame-${frame++}`)));
      expect(memory.size).toBeLessThanOrEqual(2_000);
      expect(memory.countedIn(frameDigest(`frame-${frame - 1}`))).toBe(`doc-${window}`);
    }
    expect(memory.indexBytes).toBe(bytes);
  });

  it('keeps each digest once: documents that repeat remembered frames add nothing to it', () => {
    const memory = new CountedFrames(4);
    memory.remember('doc-1', digests('a', 'b'));

    for (let i = 2; i < 50; i += 1) memory.remember(`doc-${i}`, digests('a', 'b'));
    memory.remember('doc-50', digests('b', 'c'));

    expect(memory.toState().documents).toEqual([
      { id: 'doc-1', digests: digests('a', 'b') },
      { id: 'doc-50', digests: digests('c') },
    ]);
    expect(memory.size).toBe(3);
  });

  it('is bounded by twice what one window can remember', () => {
    expect(MAX_COUNTED_FRAMES).toBe(2 * MAX_SEEN_FRAMES);
  });

  it('keeps a document remembered twice (a final invocation run again) once', () => {
    const memory = new CountedFrames();

    memory.remember('doc-1', digests('a'));
    memory.remember('doc-1', digests('a'));

    expect(memory.toState().documents).toHaveLength(1);
  });

  it('round-trips through its persisted form and rejects a torn digest list', () => {
    const memory = new CountedFrames();
    memory.remember('doc-1', digests('a', 'b'));
    memory.remember('doc-2', digests('c'));

    const again = CountedFrames.fromState(memory.toState());

    expect(again.toState()).toEqual(memory.toState());
    expect(again.countedIn(frameDigest('c'))).toBe('doc-2');
    expect(() => memory.remember('doc-3', digests('d').slice(0, 7))).toThrow(RangeError);
  });
});

describe('aggregateWindow across windows', () => {
  it('counts a frame that arrives in window 1 and again in window 3 once', async () => {
    // Prepare
    const counted = memoryStore();
    const frame = makePrediction({ camera: 'Cam-a' });
    const again = { ...frame, scored_at: '2026-11-27T15:00:25.000Z' };

    // Act: window 1 counts it, window 2 holds other frames, window 3 gets the redelivered copy.
    const first = await runWindow(1, [frame, makePrediction({ camera: 'Cam-a' })], counted);
    const second = await runWindow(2, [makePrediction({ camera: 'Cam-a' })], counted);
    const third = await runWindow(3, [again, makePrediction({ camera: 'Cam-a' })], counted);

    // Assess
    expect([first?.count, second?.count, third?.count]).toEqual([2, 1, 1]);
    expect(third?.duplicates).toBe(1);
    const total = mergeMetrics([first, second, third].filter((d) => d !== undefined));
    expect(total.camera_metrics['Cam-a']?.count).toBe(4);
  });

  it('without the memory, the same delivery is counted in both windows (what the memory prevents)', async () => {
    const frame = makePrediction({ camera: 'Cam-b' });

    const first = await runWindow(1, [frame], undefined);
    const third = await runWindow(3, [frame], undefined);

    expect([first?.count, third?.count]).toEqual([1, 1]);
  });

  it('a window whose frames are all repeats writes a document counting none of them', async () => {
    const counted = memoryStore();
    const frames = [makePrediction(), makePrediction()];

    await runWindow(1, frames, counted);
    const repeat = await runWindow(4, frames, counted);

    expect(repeat).toMatchObject({ count: 0, duplicates: 2 });
  });

  it('a window folded again (a retried final invocation, a restart) writes the same document, not an empty one', async () => {
    // Prepare: window 1 is closed and its frames remembered.
    const counted = memoryStore();
    const frames = predictionStream(5, 40);
    const original = await runWindow(1, frames, counted, 50_000);

    // Act: the same records, from the same first sequence, folded into window 1 again.
    const redone = await runWindow(1, frames, counted, 50_000);

    // Assess
    expect(redone?.id).toBe(original?.id);
    expect(redone && counts(redone)).toEqual(original && counts(original));
    expect(redone?.duplicates).toBe(0);
  });

  it('property: merged documents equal one aggregation over the distinct frames, however repeats spread over windows', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(fc.tuple(fc.nat(59), fc.nat(3)), { minLength: 1, maxLength: 60 }),
        async (seed, deliveries) => {
          // Prepare: 60 frames; each delivery is (frame, windows later than the previous delivery).
          const frames = predictionStream(seed, 60);
          const scoredAgain = (p: Prediction, n: number): Prediction => ({
            ...p,
            // A re-scored copy carries its own scoring time; only the first copy may count.
            scored_at: new Date(Date.parse(p.scored_at) + 1_000 * (n + 1)).toISOString(),
            prep_time: p.prep_time * 2,
          });
          const windows: Prediction[][] = [];
          let window = 0;
          const firstCopies = new Map<string, Prediction>();
          deliveries.forEach(([index, later], n) => {
            window += later;
            const frame = frames[index] as Prediction;
            const copy = firstCopies.has(frame.frame_id) ? scoredAgain(frame, n) : frame;
            if (!firstCopies.has(frame.frame_id)) firstCopies.set(frame.frame_id, copy);
            windows[window] = [...(windows[window] ?? []), copy];
          });
          const counted = memoryStore();

          // Act
          const docs: MetricsDocument[] = [];
          for (const [n, predictions] of windows.entries()) {
            if (!predictions) continue;
            const doc = await runWindow(n, predictions, counted);
            if (doc) docs.push(doc);
          }

          // Assess
          const single = new WindowAccumulator(TEST_CONFIG.confidence);
          for (const p of firstCopies.values()) single.add(p);
          const expected = buildMetricsDocument(single, {
            window: windowOf(0),
            shard: SHARD,
            terminatedEarly: false,
            config: TEST_CONFIG,
          });
          const merged = mergeMetrics(docs);
          expect(counts(merged)).toEqual(counts(expected));
          expect(merged.duplicates).toBe(deliveries.length - firstCopies.size);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('counted frames store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'counted-frames-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('with a folder, a new store (a restarted process) knows what the last one saved', () => {
    const problems: string[] = [];
    const before = createCountedFramesStore(dir, (m) => problems.push(m));
    before.remember(SHARD, 'doc-1', frameDigest('a'));

    const after = createCountedFramesStore(dir, (m) => problems.push(m));

    expect(after.forShard(SHARD).countedIn(frameDigest('a'))).toBe('doc-1');
    expect(existsSync(countedFramesFile(dir, SHARD))).toBe(true);
    expect(problems).toEqual([]);
  });

  it('two containers on one folder: each sees the windows the other closed', () => {
    const one = createCountedFramesStore(dir, () => undefined);
    const two = createCountedFramesStore(dir, () => undefined);
    one.remember(SHARD, 'doc-1', frameDigest('a'));
    expect(two.forShard(SHARD).countedIn(frameDigest('a'))).toBe('doc-1');

    two.remember(SHARD, 'doc-2', frameDigest('b'));

    expect(one.forShard(SHARD).countedIn(frameDigest('a'))).toBe('doc-1');
    expect(one.forShard(SHARD).countedIn(frameDigest('b'))).toBe('doc-2');
  });

  it('a damaged file: the previous copy is used and the problem reported', () => {
    const problems: string[] = [];
    const store = createCountedFramesStore(dir, () => undefined);
    store.remember(SHARD, 'doc-1', frameDigest('a'));
    store.remember(SHARD, 'doc-2', frameDigest('b'));
    writeFileSync(countedFramesFile(dir, SHARD), 'torn');

    const memory = createCountedFramesStore(dir, (m) => problems.push(m)).forShard(SHARD);

    expect(memory.countedIn(frameDigest('a'))).toBe('doc-1');
    expect(memory.countedIn(frameDigest('b'))).toBeUndefined();
    expect(problems).toEqual(['counted frames file damaged, its previous copy used']);
  });

  it('no readable copy: reported, and the shard goes on with an empty memory instead of failing', () => {
    const problems: string[] = [];
    writeFileSync(countedFramesFile(dir, SHARD), 'garbage');
    writeFileSync(previousCopyPath(countedFramesFile(dir, SHARD)), 'garbage too');
    const store = createCountedFramesStore(dir, (m) => problems.push(m));

    expect(store.forShard(SHARD).size).toBe(0);
    store.remember(SHARD, 'doc-3', frameDigest('c'));

    expect(problems).toEqual(['counted frames file unreadable, starting this shard without it']);
    expect(
      createCountedFramesStore(dir, () => undefined)
        .forShard(SHARD)
        .countedIn(frameDigest('c')),
    ).toBe('doc-3');
  });

  it('keeps shards apart, and in memory at most its bound of shards (least recently used forgotten)', () => {
    const store = memoryStore();
    for (let i = 0; i <= MAX_COUNTED_SHARDS; i += 1) store.remember(`shard-${i}`, `doc-${i}`, frameDigest('a'));

    expect(store.forShard('shard-1').countedIn(frameDigest('a'))).toBe('doc-1');
    expect(store.forShard(`shard-${MAX_COUNTED_SHARDS}`).countedIn(frameDigest('a'))).toBe(`doc-${MAX_COUNTED_SHARDS}`);
    expect(store.forShard('shard-0').size).toBe(0);
  });
});
