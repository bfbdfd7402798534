import { preparePng } from '../../functions/lib/prepare';
import { newCameraFrame, newCameraFrames } from '../../scripts/new-camera-set';

describe('the new camera set', () => {
  it('draws the same frame for the same part and index on every call', async () => {
    const a = await newCameraFrame('pool', 17);
    const b = await newCameraFrame('pool', 17);
    expect(b.label).toBe(a.label);
    expect(b.png.equals(a.png)).toBe(true);
  });

  it('draws the test part apart from the pool', async () => {
    const pool = await newCameraFrames('pool', 20);
    const test = await newCameraFrames('test', 20);
    const poolBytes = new Set(pool.map((f) => f.png.toString('base64')));
    expect(test.filter((f) => poolBytes.has(f.png.toString('base64')))).toHaveLength(0);
  });

  it('covers every style and digit, and the preparation finds the digit in each frame', async () => {
    const frames = await newCameraFrames('test', 120);
    expect(new Set(frames.map((f) => f.style))).toEqual(
      new Set(['seven-segment', 'dot-matrix', 'stencil', 'font', 'hollow-font']),
    );
    expect(new Set(frames.map((f) => f.label)).size).toBe(10);
    const prepared = await Promise.all(frames.map((f) => preparePng(f.png)));
    expect(prepared.filter((p) => p.blank)).toHaveLength(0);
  });
});
