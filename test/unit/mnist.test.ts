import sharp from 'sharp';
import { loadMnist, mnistImage, renderOriginalFrame } from '../../functions/lib/mnist';

describe('loadMnist', () => {
  it.each([
    ['train', 60000, [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]],
    ['t10k', 10000, [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]],
  ] as const)('%s has %i images with the published first labels', (set, count, firstLabels) => {
    const data = loadMnist(set);
    expect(data.count).toBe(count);
    expect(data.images.length).toBe(count * 784);
    expect(data.labels.length).toBe(count);
    expect(Array.from(data.labels.subarray(0, 10))).toEqual(firstLabels);
    expect(data.labels.every((l) => l <= 9)).toBe(true);
    // Ink high, paper 0: corners are paper, every image has ink.
    const first = mnistImage(data, 0);
    expect(first[0]).toBe(0);
    expect(Math.max(...first)).toBe(255);
  });

  it('caches: the same set loads once', () => {
    expect(loadMnist('t10k')).toBe(loadMnist('t10k'));
  });

  it('mnistImage refuses indexes outside the set', () => {
    expect(() => mnistImage(loadMnist('t10k'), 10000)).toThrow(RangeError);
  });
});

describe('renderOriginalFrame', () => {
  it('writes a 28x28 RGB PNG of the inverted digit (black on white)', async () => {
    const raw = mnistImage(loadMnist('t10k'), 0);
    const png = await renderOriginalFrame(raw);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([28, 28, 3]);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    for (let i = 0; i < 784; i++) {
      const v = 255 - (raw[i] as number);
      expect([data[i * 3], data[i * 3 + 1], data[i * 3 + 2]]).toEqual([v, v, v]);
    }
  });

  it('refuses anything but 784 bytes', async () => {
    await expect(renderOriginalFrame(new Uint8Array(100))).rejects.toThrow(RangeError);
  });
});
