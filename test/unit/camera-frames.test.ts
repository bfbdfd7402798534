import { decodePng, decodePngSync } from '../../functions/lib/decode';
import { cameraFrameAt, cameraGrayAt, FRAME_SIZES, generateCameraFrames } from '../../training/camera-frames';

describe('camera frame generator', () => {
  it('is deterministic: the same seed gives the same bytes, frame by frame or as a set', () => {
    const set = generateCameraFrames(6, { seed: 3 });
    for (let i = 0; i < 6; i++) {
      const one = cameraFrameAt(i, { seed: 3 });
      expect(one.png.equals((set[i] as { png: Buffer }).png)).toBe(true);
      expect(one.label).toBe((set[i] as { label: number | null }).label);
    }
    expect(cameraFrameAt(0, { seed: 4 }).png.equals(cameraFrameAt(0, { seed: 3 }).png)).toBe(false);
  });

  it('draws every style, ink and size, with blank paper labelled null', async () => {
    const styles = new Set<string>();
    const inks = new Set<string>();
    const labels = new Set<number | null>();
    for (let i = 0; i < 60; i++) {
      const f = cameraFrameAt(i, {
        seed: 1,
        sizes: [
          [28, 28],
          [64, 48],
        ],
      });
      styles.add(f.recipe.style);
      inks.add(f.recipe.ink);
      labels.add(f.label);
      expect(f.label === null).toBe(f.recipe.style === 'blank');
      const g = await decodePng(f.png);
      expect([g.width, g.height]).toEqual([f.recipe.width, f.recipe.height]);
    }
    expect(styles).toEqual(new Set(['mnist', 'printed', 'pen', 'blank']));
    expect(inks).toEqual(new Set(['black', 'blue', 'pencil']));
    expect(labels.size).toBe(11);
    expect(FRAME_SIZES[0]).toEqual([28, 28]);
    expect(FRAME_SIZES[FRAME_SIZES.length - 1]).toEqual([640, 480]);
  });

  it('gives the grey image the PNG decodes to', () => {
    for (const i of [0, 2, 6]) {
      const gray = cameraGrayAt(i, { seed: 1 });
      const decoded = decodePngSync(cameraFrameAt(i, { seed: 1 }).png);
      expect(Buffer.from(gray.image.data).equals(Buffer.from(decoded.data))).toBe(true);
    }
  });
});
