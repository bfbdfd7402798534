import type { Prediction } from '../../functions/lib/contracts';
import type { MetricsConfig } from '../../functions/lib/metrics/document';
import { seededRandom } from '../../training/rng';

/** Deterministic uniform [0, 1) generator (mulberry32), so failures reproduce. */
export { seededRandom };

/** Log-normal sample with the given median and sigma (Box-Muller). */
export function logNormal(random: () => number, median: number, sigma: number): number {
  const u = Math.max(random(), 1e-12);
  const v = random();
  return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
}

export const TEST_CONFIG: MetricsConfig = {
  delay: 0,
  repeat: 1,
  source: 'mnist',
  confidence: 0.7,
  classify_parallel: 1,
  metrics_duration: 10,
};

let nextFrame = 0;

/** A valid prediction record of a new frame (its own `frame_id`); fields overridable. */
export function makePrediction(overrides: Partial<Prediction> = {}): Prediction {
  nextFrame += 1;
  return {
    frame_id: `shardId-000000000000-${nextFrame}`,
    camera: 'Camera-edge1',
    device: 'edge1',
    timestamp: '2026-11-27T15:00:00.000Z',
    received_at: '2026-11-27T15:00:00.020Z',
    scored_at: '2026-11-27T15:00:00.050Z',
    result_class: 7,
    result_probability: 0.98,
    prep_time: 0.0012,
    predict_time: 0.0003,
    model_version: 'digits-test',
    blank: false,
    ...overrides,
  };
}

/**
 * A stream of varied predictions: several cameras, log-normal latencies, a share of
 * uncertain and blank frames, labels on the `Test` camera, two model versions.
 */
export function predictionStream(seed: number, n: number): Prediction[] {
  const random = seededRandom(seed);
  const cameras = ['Camera-a', 'Camera-b', 'Test-c', 'Camera-d'];
  const out: Prediction[] = [];
  const base = Date.parse('2026-11-27T15:00:00.000Z');
  for (let i = 0; i < n; i += 1) {
    const captured = base + Math.floor(random() * 10_000);
    const e2eMs = logNormal(random, 40, 0.8);
    const label = Math.floor(random() * 10);
    const right = random() < 0.97;
    const camera = cameras[i % cameras.length] ?? 'Camera-a';
    out.push(
      makePrediction({
        frame_id: `f-${seed}-${i}`,
        camera,
        timestamp: new Date(captured).toISOString(),
        scored_at: new Date(captured + e2eMs).toISOString(),
        result_class: right ? label : (label + 1) % 10,
        result_probability: random() < 0.1 ? random() * 0.7 : 0.7 + random() * 0.3,
        prep_time: logNormal(random, 0.0012, 0.5),
        predict_time: logNormal(random, 0.0002, 0.3),
        model_version: i % 50 === 0 ? 'digits-old' : 'digits-new',
        blank: random() < 0.01,
        ...(camera.startsWith('Test') ? { label } : {}),
      }),
    );
  }
  return out;
}
