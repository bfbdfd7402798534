/**
 * The camera frame generator through the real preparation: 70 frames from 28x28 to 640x480,
 * the digit found in every digit frame and nothing on blank paper. It prepares full-size
 * frames (about 15 s), so it runs with the slow tier.
 */
import { preparePng } from '../../functions/lib/prepare';
import { cameraFrameAt } from '../../training/camera-frames';

it('preparation finds the digit in digit frames and nothing on blank paper (28x28 to 640x480)', async () => {
  let digits = 0;
  let found = 0;
  let blanks = 0;
  for (let i = 0; i < 70; i++) {
    const f = cameraFrameAt(i, { seed: 11, blankShare: 0.25 });
    const out = await preparePng(f.png);
    if (f.label === null) {
      blanks++;
      expect([i, out.blank]).toEqual([i, true]);
    } else {
      digits++;
      if (!out.blank) found++;
    }
  }
  expect(blanks).toBeGreaterThan(5);
  expect(found).toBe(digits);
});
