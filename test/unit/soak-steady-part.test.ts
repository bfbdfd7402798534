/** Where the soak starts judging memory: once the pipeline's bounded memories are full. */
import { boundedMemoriesFull, minutesToJudge, steadyFrom } from '../../bench/steady-part';
import { DEDUP_MEMORY, WINDOWS_KEPT } from '../../local/home';

describe("the soak's steady part", () => {
  it('waits for the home metrics windows at a high rate and for the predicted ids at a low one', () => {
    const fast = boundedMemoriesFull(400, 10, 0.99);
    expect(fast.seconds).toBe(WINDOWS_KEPT * 10);
    expect(fast.what).toContain('metrics windows');
    const slow = boundedMemoriesFull(50, 10, 0.99);
    expect(slow.seconds).toBeCloseTo(DEDUP_MEMORY / 49.5, 6);
    expect(slow.what).toContain('predicted frame ids');
  });

  it('starts at the latest of a minute, a fifth of the run and the fill', () => {
    expect(steadyFrom(120, { seconds: 10 })).toBe(60);
    expect(steadyFrom(3600, { seconds: 10 })).toBe(720);
    expect(steadyFrom(1200, { seconds: 640 })).toBe(640);
  });

  it('names the shortest run that leaves a minute of steady samples', () => {
    for (const fill of [0, 30, 640, 1010]) {
      const minutes = minutesToJudge({ seconds: fill });
      const seconds = minutes * 60;
      expect(seconds - steadyFrom(seconds, { seconds: fill })).toBeGreaterThanOrEqual(60);
      const shorter = (minutes - 1) * 60;
      expect(shorter - steadyFrom(shorter, { seconds: fill })).toBeLessThan(60);
    }
    expect(minutesToJudge({ seconds: 640 })).toBe(12);
  });
});
