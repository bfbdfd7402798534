import { evaluate, expectedCalibrationError, fitTemperature, softmaxRows, temperatureNll } from '../../training/metrics';
import { Rng } from '../../training/rng';

function row(top: number, p: number): Float32Array {
  const r = new Float32Array(10).fill((1 - p) / 9);
  r[top] = p;
  return r;
}

describe('expectedCalibrationError', () => {
  it("is zero when each bin's accuracy equals its confidence", () => {
    // 10 frames at 0.8 with 8 right, 10 at 0.5 with 5 right
    const conf = [...new Array<number>(10).fill(0.8), ...new Array<number>(10).fill(0.5)];
    const ok = [
      ...new Array<boolean>(8).fill(true),
      false,
      false,
      ...new Array<boolean>(5).fill(true),
      ...new Array<boolean>(5).fill(false),
    ];
    expect(expectedCalibrationError(conf, ok)).toBeCloseTo(0, 10);
  });

  it("weights each bin's gap by its share of frames", () => {
    // 3 frames at 0.9 all right (gap 0.1), 1 frame at 0.6 wrong (gap 0.6)
    expect(expectedCalibrationError([0.9, 0.9, 0.9, 0.6], [true, true, true, false])).toBeCloseTo((3 * 0.1 + 0.6) / 4, 10);
  });
});

describe('evaluate', () => {
  it('counts accuracy, confusion and the frames at or under the threshold', () => {
    // Prepare: labels 0..4; frame 1 wrong and unsure, frame 3 wrong and sure, frame 4 right at exactly 0.70
    const probabilities = [row(0, 0.99), row(7, 0.5), row(2, 0.95), row(5, 0.9), row(4, 0.7)];
    const labels = [0, 1, 2, 3, 4];
    // Act
    const e = evaluate(probabilities, labels, 0.7);
    // Assess
    expect(e.accuracy).toBeCloseTo(0.6);
    expect(e.confusion[1]![7]).toBe(1);
    expect(e.confusion[3]![5]).toBe(1);
    expect(e.confusion[2]![2]).toBe(1);
    expect(e.threshold.frames_at_or_under).toBe(2);
    expect(e.threshold.share_at_or_under).toBeCloseTo(0.4);
    expect(e.threshold.error_rate_at_or_under).toBeCloseTo(0.5);
    expect(e.threshold.error_rate_over).toBeCloseTo(1 / 3);
    expect(e.threshold.share_of_errors_at_or_under).toBeCloseTo(0.5);
  });
});

describe('temperature scaling', () => {
  it('recovers the temperature that generated the labels', () => {
    // Prepare: labels drawn from softmax(z / 2.5) for random logits z
    const rng = new Rng(42);
    const n = 2000;
    const logits = new Float32Array(n * 10);
    const labels: number[] = [];
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < 10; c++) logits[r * 10 + c] = rng.normal() * 6;
      const p = softmaxRows(logits.subarray(r * 10, (r + 1) * 10), 10, 2.5)[0]!;
      let u = rng.next();
      let label = 9;
      for (let c = 0; c < 10; c++) {
        u -= p[c]!;
        if (u <= 0) {
          label = c;
          break;
        }
      }
      labels.push(label);
    }
    // Act
    const t = fitTemperature(logits, labels);
    // Assess
    expect(t).toBeGreaterThan(2.2);
    expect(t).toBeLessThan(2.8);
    expect(temperatureNll(logits, labels, t)).toBeLessThan(temperatureNll(logits, labels, 1));
  });

  it('keeps every prediction: softmax rows sum to one and keep the argmax', () => {
    const logits = Float32Array.from([1, 5, 2, 0, 0, 0, 0, 0, 0, -3]);
    for (const t of [0.5, 1, 3]) {
      const [p] = softmaxRows(logits, 10, t);
      expect(p!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      expect(p!.indexOf(Math.max(...p!))).toBe(1);
    }
  });
});
