import type { Prediction } from '../../functions/lib/contracts';
import { RELATIVE_ERROR } from '../../functions/lib/metrics/histogram';
import {
  MAX_INVALID_EXAMPLES,
  MAX_TRACKED_CAMERAS,
  OTHER_CAMERAS,
  readWindowState,
  WindowAccumulator,
  type WindowState,
  windowStateSchema,
} from '../../functions/lib/metrics/reducer';
import { MAX_SEEN_FRAMES, SEEN_FRAME_BYTES } from '../../functions/lib/metrics/seen-frames';
import { makePrediction, predictionStream } from '../helpers/metrics-fixtures';

/** Folds predictions the way Lambda drives the handler: batch by batch through JSON state. */
function foldInBatches(predictions: Prediction[], batchSize: number, confidence = 0.7): WindowState {
  let state: unknown = {};
  for (let i = 0; i < predictions.length; i += batchSize) {
    const read = readWindowState(state, confidence);
    if (!read.ok) throw new Error(read.error);
    predictions.slice(i, i + batchSize).forEach((p, j) => {
      read.accumulator.noteSequence(String(1000 + i + j));
      read.accumulator.add(p);
    });
    state = JSON.parse(JSON.stringify(read.accumulator.toState()));
  }
  return windowStateSchema.parse(state);
}

describe('WindowAccumulator', () => {
  it('counts certain and uncertain per camera and digit, certain meaning probability > confidence', () => {
    const acc = new WindowAccumulator(0.7);

    acc.add(makePrediction({ camera: 'A', result_class: 3, result_probability: 0.71 }));
    acc.add(makePrediction({ camera: 'A', result_class: 3, result_probability: 0.7 }));
    acc.add(makePrediction({ camera: 'A', result_class: 9, result_probability: 0.2 }));
    acc.add(makePrediction({ camera: 'B', result_class: 0, result_probability: 1 }));

    const state = acc.toState();
    expect(state.count).toBe(4);
    expect(state.cameras.A?.certain).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(state.cameras.A?.uncertain).toEqual([0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    expect(state.cameras.B?.certain).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(state.cameras.A?.certain).toHaveLength(10);
  });

  it('measures end-to-end latency from capture to scoring, counting clocks that run ahead', () => {
    const acc = new WindowAccumulator(0.7);

    acc.add(makePrediction({ timestamp: '2026-11-27T15:00:00.000Z', scored_at: '2026-11-27T15:00:00.250Z' }));
    acc.add(makePrediction({ timestamp: '2026-11-27T15:00:01.000Z', scored_at: '2026-11-27T15:00:00.900Z' }));
    acc.add(makePrediction({ timestamp: 'not a date' }));

    const summary = acc.endToEnd.summary();
    expect(summary.count).toBe(2);
    expect(summary.max).toBe(0.25);
    expect(summary.min).toBe(0);
    expect(acc.cameras.get('Camera-edge1')?.endToEndNegative).toBe(1);
    expect(acc.count).toBe(3);
  });

  it('tracks labels, blanks and model versions', () => {
    const acc = new WindowAccumulator(0.7);

    acc.add(makePrediction({ label: 7, result_class: 7 }));
    acc.add(makePrediction({ label: 1, result_class: 7, blank: true, model_version: 'v2' }));
    acc.add(makePrediction({ result_class: 7 }));

    const camera = acc.toState().cameras['Camera-edge1'];
    expect(camera?.labelled).toBe(2);
    expect(camera?.correct).toBe(1);
    expect(camera?.blank).toBe(1);
    expect(acc.toState().model_versions).toEqual({ 'digits-test': 2, v2: 1 });
  });

  it('counts unreadable records by reason and keeps a bounded number of examples', () => {
    const acc = new WindowAccumulator(0.7);

    for (let i = 0; i < 20; i += 1) acc.addInvalid('invalid_json', String(i), 'x'.repeat(10_000));
    acc.addInvalid('invalid_record', '99', 'result_class: expected number');

    expect(acc.invalidCount).toBe(21);
    expect(acc.toState().invalid).toEqual({ invalid_json: 20, invalid_record: 1 });
    expect(acc.invalidExamples).toHaveLength(MAX_INVALID_EXAMPLES);
    expect(JSON.stringify(acc.toState()).length).toBeLessThan(5_000);
    expect(acc.empty).toBe(false);
  });

  it('counts cameras past the per-window limit together, so many cameras cannot blow the state', () => {
    const acc = new WindowAccumulator(0.7);

    for (let i = 0; i < MAX_TRACKED_CAMERAS + 100; i += 1) {
      acc.add(makePrediction({ camera: `Camera-${i}` }));
      acc.add(makePrediction({ camera: `Camera-${i}` }));
    }

    const cameras = acc.toState().cameras;
    expect(Object.keys(cameras)).toHaveLength(MAX_TRACKED_CAMERAS + 1);
    expect(cameras['Camera-0']?.certain[7]).toBe(2);
    expect(cameras[OTHER_CAMERAS]?.certain[7]).toBe(200);
    expect(JSON.stringify(acc.toState()).length).toBeLessThan(400 * 1024);
  });

  it('names the window by its lowest sequence number, compared as integers', () => {
    const acc = new WindowAccumulator(0.7);
    for (const seq of ['49590338271490256608559692538361571095921575989136588898', '9', '10']) acc.noteSequence(seq);
    expect(acc.firstSequence).toBe('9');
  });

  it('folds batch by batch through JSON state to the same result as one pass', () => {
    const predictions = predictionStream(11, 5_000);
    const once = new WindowAccumulator(0.7);
    predictions.forEach((p, j) => {
      once.noteSequence(String(1000 + j));
      once.add(p);
    });

    const batched = foldInBatches(predictions, 333);

    const expected = once.toState();
    expect(batched.cameras).toEqual(
      Object.fromEntries(
        Object.entries(expected.cameras).map(([c, t]) => [
          c,
          { ...t, probability_sum: expect.closeTo(t.probability_sum, 9), end_to_end: expect.anything() },
        ]),
      ),
    );
    expect(batched.prep.buckets).toEqual(expected.prep.buckets);
    expect(batched.end_to_end.buckets).toEqual(expected.end_to_end.buckets);
    expect(batched.count).toBe(5_000);
    expect(batched.first_sequence).toBe('1000');
  });

  it('keeps percentiles of the folded window within the stated error', () => {
    const predictions = predictionStream(5, 20_000);
    const state = foldInBatches(predictions, 1_000);
    const read = readWindowState(state, 0.7);
    if (!read.ok) throw new Error(read.error);
    const sorted = predictions.map((p) => p.prep_time).sort((a, b) => a - b);
    const exact99 = sorted[Math.floor(0.99 * (sorted.length - 1))] ?? 0;
    const exact99Next = sorted[Math.floor(0.99 * (sorted.length - 1)) + 1] ?? 0;
    const h = 0.99 * (sorted.length - 1);
    const exact = exact99 + (h - Math.floor(h)) * (exact99Next - exact99);

    const [p99] = read.accumulator.prep.percentiles([99]);

    expect(Math.abs((p99 ?? 0) - exact)).toBeLessThanOrEqual(RELATIVE_ERROR * exact);
  });
});

describe('each frame once, and the rejects', () => {
  it('counts a frame delivered again within the window once, across invocations, and says how many repeats it dropped', () => {
    // Prepare: a retried batch writes the same frames' predictions again, in a later batch.
    const predictions = predictionStream(11, 300);
    const redelivered = [...predictions, ...predictions.slice(100, 150)];

    // Act
    const state = foldInBatches(redelivered, 70);

    // Assess
    const once = foldInBatches(predictions, 70);
    expect(state.count).toBe(300);
    expect(state.duplicates).toBe(50);
    expect(state.cameras).toEqual(once.cameras);
    expect(state.prep).toEqual(once.prep);
  });

  it('counts rejects per camera and reason once per frame, an unreadable camera as (unknown)', () => {
    const acc = new WindowAccumulator(0.7);
    acc.addReject({ frame_id: 'shardId-0-1', camera: 'Garbage-cam', reason: 'not_png' });
    acc.addReject({ frame_id: 'shardId-0-2', camera: 'Garbage-cam', reason: 'not_png' });
    acc.addReject({ frame_id: 'shardId-0-3', camera: 'Garbage-cam', reason: 'corrupt_png' });
    acc.addReject({ frame_id: 'shardId-0-3', camera: 'Garbage-cam', reason: 'corrupt_png' });
    acc.addReject({ frame_id: 'shardId-0-4', reason: 'invalid_json' });

    const state = windowStateSchema.parse(JSON.parse(JSON.stringify(acc.toState())));

    expect(state.rejected).toEqual({ 'Garbage-cam': { not_png: 2, corrupt_png: 1 }, '(unknown)': { invalid_json: 1 } });
    expect(state.duplicates).toBe(1);
    expect(state.count).toBe(0);
    expect(acc.empty).toBe(false);
  });

  it(`remembers at most ${MAX_SEEN_FRAMES} frames per window: later ones are counted, unchecked`, () => {
    const acc = new WindowAccumulator(0.7);
    for (let i = 0; i < MAX_SEEN_FRAMES + 10; i += 1) acc.add(makePrediction({ frame_id: `f-${i}` }));
    acc.add(makePrediction({ frame_id: 'f-0' }));

    expect(acc.count).toBe(MAX_SEEN_FRAMES + 10);
    expect(acc.unchecked).toBe(10);
    expect(acc.duplicates).toBe(1);
    expect(acc.toState().seen.length).toBe(MAX_SEEN_FRAMES * SEEN_FRAME_BYTES);
  });

  it('reads a state written before these fields as having none', () => {
    const {
      seen: _seen,
      duplicates: _duplicates,
      unchecked: _unchecked,
      rejected: _rejected,
      ...older
    } = new WindowAccumulator(0.7).toState();
    const read = readWindowState({ ...older, count: 0 }, 0.7);
    expect(read.ok).toBe(true);
  });
});

describe('readWindowState', () => {
  it.each([undefined, null, {}])('starts a fresh window from %p', (state) => {
    const read = readWindowState(state, 0.7);
    expect(read).toMatchObject({ ok: true, fresh: true });
    expect(read.accumulator.empty).toBe(true);
  });

  it('reports a state it cannot read instead of throwing', () => {
    const read = readWindowState({ version: 99, count: 'many' }, 0.7);
    expect(read.ok).toBe(false);
    expect(read.accumulator.empty).toBe(true);
    if (!read.ok) expect(read.error).toMatch(/version/);
  });

  it('reports a state whose histogram disagrees with its count', () => {
    const acc = new WindowAccumulator(0.7);
    acc.add(makePrediction());
    const state = acc.toState();
    const read = readWindowState({ ...state, prep: { ...state.prep, count: 2 } }, 0.7);
    expect(read.ok).toBe(false);
  });
});
