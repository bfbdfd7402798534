import type { GrayImage } from '../../functions/lib/decode';
import { prepareGray } from '../../functions/lib/prepare';
import { loadMnist, mnistImage } from '../../functions/lib/mnist';
import {
  addNoise,
  addSpecks,
  cameraAugment,
  fromMnist,
  gaussianBlur,
  placeOnCanvas,
  rotate,
  Rng,
  shift,
  strokeWidth,
  unevenBackground,
  warp,
} from '../../training/augment';

function paper(w: number, h: number, dots: Array<[number, number]> = []): GrayImage {
  const data = new Uint8Array(w * h).fill(255);
  for (const [x, y] of dots) data[y * w + x] = 0;
  return { data, width: w, height: h };
}

function darkPixels(img: GrayImage, below = 128): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < img.width * img.height; i++)
    if ((img.data[i] as number) < below) out.push([i % img.width, Math.floor(i / img.width)]);
  return out;
}

describe('geometry', () => {
  it('shift moves ink by whole pixels exactly and brings paper in', () => {
    const out = shift(paper(10, 10, [[2, 3]]), 3, -1);
    expect(darkPixels(out)).toEqual([[5, 2]]);
    expect(out.data[5 + 2 * 10]).toBe(0);
    expect(shift(paper(10, 10, [[0, 0]]), -1, 0).data.every((v) => v === 255)).toBe(true);
  });

  it('rotate by 90 degrees turns clockwise on screen about the centre', () => {
    // Pixel centre (5.5, 2.5) is (0.5, -2.5) from the centre; clockwise 90 -> (2.5, 0.5) -> pixel (7, 5).
    expect(darkPixels(rotate(paper(10, 10, [[5, 2]]), 90))).toEqual([[7, 5]]);
  });

  it('warp scales about the centre into a new size', () => {
    const out = warp(
      paper(10, 10, [
        [4, 4],
        [5, 4],
        [4, 5],
        [5, 5],
      ]),
      { scale: 2 },
      { width: 20, height: 20 },
    );
    const dark = darkPixels(out, 64);
    expect(Math.min(...dark.map((p) => p[0]))).toBeGreaterThanOrEqual(8);
    expect(Math.max(...dark.map((p) => p[0]))).toBeLessThanOrEqual(11);
    expect(out.data[10 * 20 + 10]).toBe(0);
  });

  it('placeOnCanvas pastes at the given corner and clips', () => {
    const out = placeOnCanvas(paper(3, 3, [[1, 1]]), 8, 6, 6, 4);
    expect(darkPixels(out)).toEqual([[7, 5]]);
    expect([out.width, out.height]).toEqual([8, 6]);
  });
});

describe('strokes, blur, noise, paper', () => {
  const line = paper(9, 9, [
    [2, 4],
    [3, 4],
    [4, 4],
    [5, 4],
    [6, 4],
  ]);

  it('strokeWidth(+1) grows a 1-pixel line to 3 rows, (-1) removes it, fractions blend', () => {
    expect(new Set(darkPixels(strokeWidth(line, 1)).map((p) => p[1]))).toEqual(new Set([3, 4, 5]));
    expect(darkPixels(strokeWidth(line, -1))).toEqual([]);
    const half = strokeWidth(line, 0.5);
    expect(half.data[3 * 9 + 4]).toBe(128);
    expect(half.data[4 * 9 + 4]).toBe(0);
    expect(line.data[3 * 9 + 4]).toBe(255); // input untouched
  });

  it('gaussianBlur keeps flat paper flat and spreads ink', () => {
    expect(gaussianBlur(paper(12, 12), 1.5).data.every((v) => v === 255)).toBe(true);
    const out = gaussianBlur(line, 1);
    expect(out.data[4 * 9 + 4]).toBeGreaterThan(0);
    expect(out.data[3 * 9 + 4]).toBeLessThan(255);
  });

  it('addNoise is deterministic per seed and has the asked spread', () => {
    const flat = { data: new Uint8Array(100 * 100).fill(128), width: 100, height: 100 };
    const a = addNoise(flat, 8, new Rng(1));
    expect(Buffer.from(a.data).equals(Buffer.from(addNoise(flat, 8, new Rng(1)).data))).toBe(true);
    let s = 0;
    let s2 = 0;
    for (const v of a.data) {
      s += v - 128;
      s2 += (v - 128) ** 2;
    }
    expect(Math.abs(s / 1e4)).toBeLessThan(0.5);
    expect(Math.sqrt(s2 / 1e4)).toBeGreaterThan(7.5);
    expect(Math.sqrt(s2 / 1e4)).toBeLessThan(8.5);
  });

  it('addSpecks changes about the asked share of pixels', () => {
    const out = addSpecks(paper(100, 100), 0.01, new Rng(3));
    const changed = out.data.filter((v) => v !== 255).length;
    expect(changed).toBeGreaterThan(60);
    expect(changed).toBeLessThanOrEqual(100);
  });

  it('unevenBackground maps white to the paper level and black to the ink level, then dims', () => {
    const img = paper(10, 10, [[0, 0]]);
    const flat = unevenBackground(img, { paper: 200, ink: 40 });
    expect(flat.data[0]).toBe(40);
    expect(flat.data[55]).toBe(200);
    const lit = unevenBackground(paper(10, 10), { paper: 200, ink: 40, gradient: 0.3, gradientAngle: 0 });
    expect(lit.data[0]).toBeGreaterThan(lit.data[9] as number); // darker to the right
    expect(lit.data[9]).toBeLessThanOrEqual(Math.round(200 * 0.72));
  });
});

describe('cameraAugment', () => {
  const mnist = loadMnist('t10k');

  it('is deterministic for a seed and yields frames that still prepare as a digit', () => {
    const digit = fromMnist(mnistImage(mnist, 0));
    const a = cameraAugment(digit, new Rng(42));
    const b = cameraAugment(digit, new Rng(42));
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    let nonBlank = 0;
    const rng = new Rng(7);
    for (let i = 0; i < 200; i++) {
      const out = prepareGray(cameraAugment(fromMnist(mnistImage(mnist, i)), rng));
      if (!out.blank) nonBlank++;
    }
    expect(nonBlank).toBe(200);
  });
});
