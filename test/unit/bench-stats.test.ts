/** The benchmark's and the soak's statistics over long series. */
import { maxOf, percentile } from '../../bench/stats';

describe('statistics over long series', () => {
  it('finds the largest of 500,000 latencies, where spreading them into Math.max overflows the stack', () => {
    const latencies = Array.from({ length: 500_000 }, (_, i) => ((i * 7919) % 100_003) / 1000);
    expect(() => Math.max(...latencies)).toThrow(RangeError);
    expect(maxOf(latencies)).toBe(100.002);
    expect(percentile(latencies, 100)).toBe(100.002);
    expect(maxOf([])).toBe(Number.NEGATIVE_INFINITY);
  });
});
