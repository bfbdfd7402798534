import { loadMnist } from '../../functions/lib/mnist';
import { prepareGray } from '../../functions/lib/prepare';
import { BLANK_LABEL, buildPreparedSet, rawToGray, splitIndices, targetsOf } from '../../training/data';
import { cameraAugment, fromMnist } from '../../training/augment';
import { Rng } from '../../training/rng';

describe('training data', () => {
  const mnist = loadMnist('train');
  const indices = Array.from({ length: 200 }, (_, k) => k);

  it('prepares clean digits exactly as the production path does', () => {
    const set = buildPreparedSet({
      images: mnist.images,
      labels: mnist.labels,
      indices: [3, 5],
      augmentShare: 0,
      blankShare: 0,
      rng: new Rng(1),
    });
    expect(set.count).toBe(2);
    expect(Array.from(set.labels)).toEqual([mnist.labels[3], mnist.labels[5]]);
    const expected = prepareGray(rawToGray(mnist.images.subarray(5 * 784, 6 * 784))).pixels;
    expect(Array.from(set.images.subarray(784, 1568))).toEqual(Array.from(expected));
  });

  it('appends blank inputs with a uniform target', () => {
    const set = buildPreparedSet({
      images: mnist.images,
      labels: mnist.labels,
      indices,
      augmentShare: 0,
      blankShare: 0.05,
      rng: new Rng(1),
    });
    expect(set.count).toBe(210);
    expect(set.labels[209]).toBe(BLANK_LABEL);
    expect(set.images.subarray(200 * 784).every((v) => v === 0)).toBe(true);
    const targets = targetsOf(set.labels, 199, 201);
    expect(Array.from(targets.subarray(0, 10))).toEqual(Array.from({ length: 10 }, (_, c) => (c === mnist.labels[199] ? 1 : 0)));
    for (const v of targets.subarray(10)) expect(v).toBeCloseTo(0.1, 6);
  });

  it('is reproducible from its seed and differs between seeds', () => {
    const build = (seed: number) =>
      buildPreparedSet({
        images: mnist.images,
        labels: mnist.labels,
        indices,
        augmentShare: 0.5,
        augment: (raw, rng) => cameraAugment(fromMnist(raw), rng),
        blankShare: 0,
        rng: new Rng(seed),
      });
    const a = build(7);
    expect(Buffer.from(build(7).images).equals(Buffer.from(a.images))).toBe(true);
    expect(Buffer.from(build(8).images).equals(Buffer.from(a.images))).toBe(false);
  });

  it('gets camera-like frames from the augmentation that the preparation still finds the digit in', () => {
    // Prepare
    const rng = new Rng(3);
    let inked = 0;
    let gray = 0;
    // Act
    for (const index of indices) {
      const frame = cameraAugment(fromMnist(mnist.images.subarray(index * 784, (index + 1) * 784)), rng);
      expect(frame.data.length).toBe(frame.width * frame.height);
      if (frame.data[0]! < 250) gray += 1;
      if (!prepareGray(frame).blank) inked += 1;
    }
    // Assess: paper is mostly not white, and the digit survives nearly always
    expect(gray).toBeGreaterThan(indices.length / 3);
    expect(inked).toBeGreaterThanOrEqual(indices.length * 0.97);
  });

  it('splits held-out images off with a fixed seed, disjoint from training', () => {
    const a = splitIndices(1000, 100, 5);
    expect(a.heldOut).toHaveLength(100);
    expect(a.train).toHaveLength(900);
    const seen = new Set(a.heldOut);
    expect(a.train.some((k) => seen.has(k))).toBe(false);
    expect(splitIndices(1000, 100, 5).heldOut).toEqual(a.heldOut);
  });
});
