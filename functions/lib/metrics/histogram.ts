/**
 * A mergeable log-linear histogram for non-negative measurements (latencies in seconds).
 *
 * Every power of two is split into {@link SUB_BUCKETS} equal-width buckets (the HDR
 * histogram layout). A value is reported as the midpoint of its bucket, clamped to the
 * exact minimum and maximum, so any order statistic it returns is within
 * {@link RELATIVE_ERROR} (1/128, about 0.78 %) of the true one. Values below
 * {@link MIN_TRACKED} (about 0.93 ns) share one zero bucket and are reported as the exact
 * minimum, an absolute error below a nanosecond.
 *
 * Count, minimum, maximum, mean and the sum of squared deviations (Welford, merged with
 * Chan's formula) are kept exactly, so `mean` and `std` are not approximations. Merging two
 * histograms adds bucket counts: the result is the histogram of the union, so percentiles
 * of merged shards are exactly those of a single aggregation.
 */
import { z } from 'zod';

/** log2 of the buckets per power of two. */
const SUB_BITS = 6;

/** Buckets per power of two. 64 keeps a quantile within 1/128 of the true value. */
export const SUB_BUCKETS = 2 ** SUB_BITS;

/** Bound on |estimate - true| / true for every quantile of values >= MIN_TRACKED. */
export const RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS);

/** Values below this (2^-30 s, ~0.93 ns) go to the zero bucket. */
export const MIN_TRACKED = 2 ** -30;

/**
 * The serialised histogram, in window state and in metrics documents. `buckets` holds the
 * counts of consecutive bucket indexes starting at `offset`; a negative entry -k stands for
 * k empty buckets, so a sparse histogram stays small.
 */
export const histogramDataSchema = z.object({
  count: z.number().int().nonnegative(),
  min: z.number().nonnegative().nullable(),
  max: z.number().nonnegative().nullable(),
  mean: z.number(),
  m2: z.number().nonnegative(),
  zeros: z.number().int().nonnegative(),
  offset: z.number().int(),
  buckets: z.array(z.number().int()),
});
export type HistogramData = z.infer<typeof histogramDataSchema>;

/** Summary statistics in seconds; null when nothing was recorded. */
export interface HistogramSummary {
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
}

/** The histogram does not accept a value (negative, NaN or infinite). */
export class HistogramValueError extends RangeError {
  constructor(readonly value: number) {
    super(`histogram values must be finite and non-negative, got ${value}`);
    this.name = 'HistogramValueError';
  }
}

// The bucket of a double is its binary exponent and the top SUB_BITS bits of its mantissa,
// read straight from the IEEE-754 bits: exact at every power of two, and several times
// faster than Math.log2 on the per-frame path.
const float = new Float64Array(1);
const words = new Uint32Array(float.buffer);
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

/** Bucket index of a normal double >= MIN_TRACKED. */
function bucketIndex(value: number): number {
  float[0] = value;
  const high = words[HIGH_WORD] ?? 0;
  const exponent = ((high >>> 20) & 0x7ff) - 1023;
  const sub = (high >>> (20 - SUB_BITS)) & (SUB_BUCKETS - 1);
  return exponent * SUB_BUCKETS + sub;
}

/** Midpoint of a bucket's range. */
function bucketMidpoint(index: number): number {
  const exponent = Math.floor(index / SUB_BUCKETS);
  const sub = index - exponent * SUB_BUCKETS;
  return 2 ** exponent * (1 + (sub + 0.5) / SUB_BUCKETS);
}

export class LogLinearHistogram {
  private readonly counts = new Map<number, number>();
  private zeroCount = 0;
  private n = 0;
  private minimum = Number.POSITIVE_INFINITY;
  private maximum = Number.NEGATIVE_INFINITY;
  private runningMean = 0;
  private sumSquaredDeviations = 0;

  /** Number of values recorded. */
  get count(): number {
    return this.n;
  }

  /**
   * Records one value. Throws {@link HistogramValueError} for a negative or non-finite
   * value: callers decide what such a measurement means before recording it.
   */
  record(value: number): void {
    if (!Number.isFinite(value) || value < 0) throw new HistogramValueError(value);
    if (value < MIN_TRACKED) {
      this.zeroCount += 1;
    } else {
      const index = bucketIndex(value);
      this.counts.set(index, (this.counts.get(index) ?? 0) + 1);
    }
    this.n += 1;
    if (value < this.minimum) this.minimum = value;
    if (value > this.maximum) this.maximum = value;
    const delta = value - this.runningMean;
    this.runningMean += delta / this.n;
    this.sumSquaredDeviations += delta * (value - this.runningMean);
  }

  /** Adds every value of `other` to this histogram (other is left unchanged). */
  merge(other: LogLinearHistogram): this {
    if (other.n === 0) return this;
    for (const [index, count] of other.counts) this.counts.set(index, (this.counts.get(index) ?? 0) + count);
    this.zeroCount += other.zeroCount;
    const total = this.n + other.n;
    const delta = other.runningMean - this.runningMean;
    this.sumSquaredDeviations += other.sumSquaredDeviations + (delta * delta * this.n * other.n) / total;
    this.runningMean += (delta * other.n) / total;
    this.n = total;
    this.minimum = Math.min(this.minimum, other.minimum);
    this.maximum = Math.max(this.maximum, other.maximum);
    return this;
  }

  /** Exact count, min, max, mean and population standard deviation (numpy's default). */
  summary(): HistogramSummary {
    if (this.n === 0) return { count: 0, min: null, max: null, mean: null, std: null };
    return {
      count: this.n,
      min: this.minimum,
      max: this.maximum,
      mean: this.runningMean,
      std: Math.sqrt(Math.max(0, this.sumSquaredDeviations / this.n)),
    };
  }

  /**
   * Percentiles (0-100) with numpy's default linear interpolation between the two nearest
   * order statistics, each estimated within {@link RELATIVE_ERROR}; so is the result.
   * Returns nulls when the histogram is empty.
   */
  percentiles(ps: readonly number[]): (number | null)[] {
    if (this.n === 0) return ps.map(() => null);
    const ranks = new Set<number>();
    const plans = ps.map((p) => {
      if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0-100, got ${p}`);
      const h = ((this.n - 1) * p) / 100;
      const lower = Math.floor(h);
      const upper = Math.min(lower + 1, this.n - 1);
      ranks.add(lower);
      ranks.add(upper);
      return { lower, upper, fraction: h - lower };
    });
    const values = this.orderStatistics([...ranks]);
    // The extremes are known exactly.
    values.set(0, this.minimum);
    values.set(this.n - 1, this.maximum);
    return plans.map(({ lower, upper, fraction }) => {
      const a = values.get(lower) ?? 0;
      const b = values.get(upper) ?? 0;
      return a + fraction * (b - a);
    });
  }

  /** Estimates of the given 0-based order statistics, in one pass over the buckets. */
  private orderStatistics(ranks: number[]): Map<number, number> {
    const wanted = [...ranks].sort((a, b) => a - b);
    const out = new Map<number, number>();
    const clamp = (v: number): number => Math.min(this.maximum, Math.max(this.minimum, v));
    let next = 0;
    let seen = this.zeroCount;
    while (next < wanted.length && (wanted[next] ?? 0) < seen) out.set(wanted[next++] ?? 0, clamp(0));
    const indexes = [...this.counts.keys()].sort((a, b) => a - b);
    for (const index of indexes) {
      if (next >= wanted.length) break;
      seen += this.counts.get(index) ?? 0;
      const estimate = clamp(bucketMidpoint(index));
      while (next < wanted.length && (wanted[next] ?? 0) < seen) out.set(wanted[next++] ?? 0, estimate);
    }
    return out;
  }

  /** Compact serialisable form (see {@link HistogramData}). */
  toData(): HistogramData {
    const indexes = [...this.counts.keys()].sort((a, b) => a - b);
    const buckets: number[] = [];
    const first = indexes[0] ?? 0;
    let expected = first;
    for (const index of indexes) {
      if (index > expected) buckets.push(expected - index);
      buckets.push(this.counts.get(index) ?? 0);
      expected = index + 1;
    }
    return {
      count: this.n,
      min: this.n === 0 ? null : this.minimum,
      max: this.n === 0 ? null : this.maximum,
      mean: this.runningMean,
      m2: this.sumSquaredDeviations,
      zeros: this.zeroCount,
      offset: first,
      buckets,
    };
  }

  /**
   * Rebuilds a histogram from {@link toData}'s output. Throws a RangeError when the bucket
   * counts do not add up to `count`, so a corrupted state or document cannot pass silently.
   */
  static fromData(data: HistogramData): LogLinearHistogram {
    const histogram = new LogLinearHistogram();
    let index = data.offset;
    let total = data.zeros;
    for (const entry of data.buckets) {
      if (entry < 0) {
        index -= entry;
        continue;
      }
      if (entry > 0) histogram.counts.set(index, entry);
      total += entry;
      index += 1;
    }
    if (total !== data.count) {
      throw new RangeError(`histogram buckets hold ${total} values but count says ${data.count}`);
    }
    histogram.zeroCount = data.zeros;
    histogram.n = data.count;
    if (data.count > 0) {
      histogram.minimum = data.min ?? 0;
      histogram.maximum = data.max ?? 0;
      histogram.runningMean = data.mean;
      histogram.sumSquaredDeviations = data.m2;
    }
    return histogram;
  }

  /** A histogram of the given values (for tests and one-off summaries). */
  static of(values: Iterable<number>): LogLinearHistogram {
    const histogram = new LogLinearHistogram();
    for (const value of values) histogram.record(value);
    return histogram;
  }
}
