/**
 * The window state at scale: a million frames folded batch by batch through JSON stays below
 * Kinesis' 1 MB record limit. Pure, but it takes over a minute, so it runs with the slow tier.
 */
import { readWindowState, windowStateSchema } from '../../functions/lib/metrics/reducer';
import { MAX_SEEN_FRAMES, SEEN_FRAME_BYTES } from '../../functions/lib/metrics/seen-frames';
import { logNormal, predictionStream, seededRandom } from '../helpers/metrics-fixtures';

it('keeps the state below 1 MB for a million frames', () => {
  // Prepare: a million frames in Lambda-sized batches of 1,000, the state through JSON each
  // time. Latencies are drawn afresh for every frame; the rest cycles through a varied pool.
  const random = seededRandom(2026);
  const pool = predictionStream(1, 1_000);
  let state: unknown = {};
  for (let batch = 0; batch < 1_000; batch += 1) {
    const read = readWindowState(state, 0.7);
    if (!read.ok) throw new Error(read.error);
    for (const [i, p] of pool.entries()) {
      p.frame_id = `f-${batch}-${i}`;
      p.prep_time = logNormal(random, 0.0012, 0.6);
      p.predict_time = logNormal(random, 0.0002, 0.4);
      read.accumulator.add(p);
    }
    state = JSON.parse(JSON.stringify(read.accumulator.toState()));
  }

  // Assess
  const parsed = windowStateSchema.parse(state);
  const size = Buffer.byteLength(JSON.stringify(state));
  expect(parsed.count).toBe(1_000_000);
  expect(parsed.prep.count).toBe(1_000_000);
  // The frame ids remembered for de-duplication are capped; past the cap frames are counted unchecked.
  expect(parsed.seen.length).toBe(MAX_SEEN_FRAMES * SEEN_FRAME_BYTES);
  expect(parsed.unchecked).toBe(1_000_000 - MAX_SEEN_FRAMES);
  // Measured: ~12 KB besides the frame ids. Histograms grow with the latency spread, not with the frame count.
  expect(size - parsed.seen.length).toBeLessThan(32 * 1024);
  expect(size).toBeLessThan(1024 * 1024);
});
