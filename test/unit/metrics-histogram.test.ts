import { HistogramValueError, LogLinearHistogram, MIN_TRACKED, RELATIVE_ERROR } from '../../functions/lib/metrics/histogram';
import { logNormal, seededRandom } from '../helpers/metrics-fixtures';

/** numpy.percentile's default (linear interpolation between order statistics). */
function exactPercentile(sorted: readonly number[], p: number): number {
  const h = ((sorted.length - 1) * p) / 100;
  const lower = Math.floor(h);
  const a = sorted[lower] ?? Number.NaN;
  const b = sorted[Math.min(lower + 1, sorted.length - 1)] ?? Number.NaN;
  return a + (h - lower) * (b - a);
}

const PS = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100];

const distributions: [string, (random: () => number) => number][] = [
  ['uniform 1 ms - 1 s', (r) => 0.001 + r() * 0.999],
  ['log-normal around 2 ms', (r) => logNormal(r, 0.002, 1)],
  ['exponential mean 50 ms', (r) => -0.05 * Math.log(1 - r())],
  ['bimodal 100 µs / 3 s', (r) => (r() < 0.8 ? 0.0001 * (1 + r()) : 3 * (1 + r()))],
  ['wide: 1 µs to 1 day', (r) => 1e-6 * 10 ** (r() * 11)],
];

describe('LogLinearHistogram', () => {
  it('states a relative error of 1/128', () => {
    expect(RELATIVE_ERROR).toBe(1 / 128);
  });

  describe.each(distributions)('on %s', (_name, draw) => {
    it('gives every percentile within the stated relative error of the exact value', () => {
      // Prepare
      const random = seededRandom(42);
      const values = Array.from({ length: 20_000 }, () => draw(random));
      const sorted = [...values].sort((a, b) => a - b);

      // Act
      const histogram = LogLinearHistogram.of(values);
      const estimates = histogram.percentiles(PS);

      // Assess
      PS.forEach((p, i) => {
        const exact = exactPercentile(sorted, p);
        const estimate = estimates[i] ?? Number.NaN;
        expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(RELATIVE_ERROR * exact + 1e-15);
      });
    });

    it('keeps count, min, max, mean and std exact', () => {
      const random = seededRandom(7);
      const values = Array.from({ length: 5_000 }, () => draw(random));
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);

      const summary = LogLinearHistogram.of(values).summary();

      expect(summary.count).toBe(values.length);
      expect(summary.min).toBe(Math.min(...values));
      expect(summary.max).toBe(Math.max(...values));
      expect(summary.mean).toBeCloseTo(mean, 12);
      expect((summary.std ?? 0) / std).toBeCloseTo(1, 9);
    });
  });

  it('reports min and max exactly at percentiles 0 and 100', () => {
    const histogram = LogLinearHistogram.of([0.0031, 0.5, 0.7777]);
    expect(histogram.percentiles([0, 100])).toEqual([0.0031, 0.7777]);
  });

  it('returns a constant exactly', () => {
    const histogram = LogLinearHistogram.of(Array.from({ length: 100 }, () => 0.0123));
    expect(histogram.percentiles([50, 99])).toEqual([0.0123, 0.0123]);
    expect(histogram.summary().std).toBe(0);
  });

  it('counts sub-nanosecond values (and zero) in the zero bucket', () => {
    const histogram = LogLinearHistogram.of([0, MIN_TRACKED / 2, 0, 1]);
    expect(histogram.percentiles([50])).toEqual([0]);
    expect(histogram.toData().zeros).toBe(3);
  });

  it('is empty-safe', () => {
    const histogram = new LogLinearHistogram();
    expect(histogram.percentiles([50])).toEqual([null]);
    expect(histogram.summary()).toEqual({ count: 0, min: null, max: null, mean: null, std: null });
    expect(LogLinearHistogram.fromData(histogram.toData()).count).toBe(0);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %p', (value) => {
    expect(() => new LogLinearHistogram().record(value)).toThrow(HistogramValueError);
  });

  it('rejects a percentile outside 0-100', () => {
    expect(() => LogLinearHistogram.of([1]).percentiles([101])).toThrow(RangeError);
  });

  it('puts values on both sides of a power of two in the right buckets', () => {
    const values = [0.25, 0.25 * (1 - 1e-15), 0.5, 1, 2 - 1e-12, 2, 1024];
    const histogram = LogLinearHistogram.of(values);
    const sorted = [...values].sort((a, b) => a - b);
    sorted.forEach((v, i) => {
      const [estimate] = histogram.percentiles([(100 * i) / (sorted.length - 1)]);
      expect(Math.abs((estimate ?? 0) - v)).toBeLessThanOrEqual(RELATIVE_ERROR * v);
    });
  });

  it('merging two halves gives exactly the histogram of the whole', () => {
    const random = seededRandom(3);
    const values = Array.from({ length: 10_000 }, () => logNormal(random, 0.01, 1.5));
    const whole = LogLinearHistogram.of(values);
    const left = LogLinearHistogram.of(values.slice(0, 3_333));
    const right = LogLinearHistogram.of(values.slice(3_333));

    const merged = left.merge(right);

    expect(merged.toData().buckets).toEqual(whole.toData().buckets);
    expect(merged.percentiles(PS)).toEqual(whole.percentiles(PS));
    expect(merged.summary().min).toBe(whole.summary().min);
    expect(merged.summary().max).toBe(whole.summary().max);
    expect(merged.summary().mean).toBeCloseTo(whole.summary().mean ?? 0, 12);
    expect(merged.summary().std).toBeCloseTo(whole.summary().std ?? 0, 12);
  });

  it('survives serialisation unchanged, sparse ranges included', () => {
    const values = [1e-6, 2e-6, 5, 5.01, 86_400];
    const histogram = LogLinearHistogram.of(values);
    const data = JSON.parse(JSON.stringify(histogram.toData())) as ReturnType<LogLinearHistogram['toData']>;

    const back = LogLinearHistogram.fromData(data);

    expect(back.toData()).toEqual(histogram.toData());
    expect(back.percentiles(PS)).toEqual(histogram.percentiles(PS));
    // Empty stretches are run-length coded, so eleven decades cost a handful of numbers.
    expect(data.buckets.length).toBeLessThan(12);
  });

  it('refuses serialised data whose buckets disagree with the count', () => {
    const data = LogLinearHistogram.of([1, 2, 3]).toData();
    expect(() => LogLinearHistogram.fromData({ ...data, count: 4 })).toThrow(RangeError);
  });
});
