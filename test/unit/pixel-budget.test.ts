/**
 * The bound on decoded pixels in flight: tasks start in order, never hold more than the
 * budget together, and a task larger than the budget still runs (alone).
 */
import { encodePng } from '../../functions/lib/png';
import { declaredPixels, PixelBudget } from '../../functions/lib/pixel-budget';
import { ihdr, pngChunk, pngOf } from '../helpers/frames';

describe('declaredPixels', () => {
  it.each([
    ['a real 28x28 PNG', encodePng(new Uint8Array(28 * 28), 28, 28, 1), 784],
    ['a header declaring 4096x4096', pngOf(pngChunk('IHDR', ihdr(4096, 4096, 16, 6))), 4096 * 4096],
    ['a header declaring 2^32-1 x 2', pngOf(pngChunk('IHDR', ihdr(0xffffffff, 2, 8, 0))), 0xffffffff * 2],
    ['a JPEG', Buffer.from([0xff, 0xd8, 0xff, 0xe0, ...new Array(40).fill(0)]), 0],
    ['20 bytes', Buffer.alloc(20), 0],
  ])('%s', (_, bytes, pixels) => {
    expect(declaredPixels(bytes)).toBe(pixels);
  });
});

describe('PixelBudget', () => {
  /** A task that records the budget in use while it runs, and finishes when released. */
  function gated(budget: PixelBudget, log: number[]) {
    const releases: Array<() => void> = [];
    const started: number[] = [];
    const run = (id: number, pixels: number) =>
      budget.run(pixels, async () => {
        started.push(id);
        log.push(budget.used);
        await new Promise<void>((release) => releases.push(release));
        return id;
      });
    const releaseNext = async () => {
      releases.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    };
    return { run, releaseNext, started };
  }

  it('keeps the pixels of running tasks within the budget and starts waiters in order', async () => {
    const budget = new PixelBudget(100);
    const used: number[] = [];
    const { run, releaseNext, started } = gated(budget, used);

    const all = Promise.all([run(1, 60), run(2, 30), run(3, 50), run(4, 10), run(5, 100)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([1, 2]); // 3 does not fit beside 1 and 2; 4 waits its turn behind 3
    await releaseNext(); // 1 ends: 3 and 4 fit beside 2
    expect(started).toEqual([1, 2, 3, 4]);
    await releaseNext();
    await releaseNext();
    expect(started).toEqual([1, 2, 3, 4]); // 5 needs the whole budget
    await releaseNext();
    expect(started).toEqual([1, 2, 3, 4, 5]);
    await releaseNext();

    expect(await all).toEqual([1, 2, 3, 4, 5]);
    expect(Math.max(...used)).toBeLessThanOrEqual(100);
    expect(budget.used).toBe(0);
  });

  it('runs a task larger than the budget alone, and frees its share when it throws', async () => {
    const budget = new PixelBudget(10);
    await expect(budget.run(1_000, async () => budget.used)).resolves.toBe(10);
    await expect(budget.run(5, () => Promise.reject(new Error('decode failed')))).rejects.toThrow('decode failed');
    expect(budget.used).toBe(0);
    await expect(budget.run(10, async () => 'ran')).resolves.toBe('ran');
  });
});
