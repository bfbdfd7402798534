import sharp from 'sharp';
import { deflateSync } from 'node:zlib';
import { FrameRejectedError } from '../../functions/lib/errors';
import { loadMnist, mnistImage, renderOriginalFrame } from '../../functions/lib/mnist';
import { encodePng } from '../../functions/lib/png';
import { DEFAULT_DECODE_LIMITS, decodePng, decodePngSync, type GrayImage } from '../../functions/lib/decode';
import { prepareGray, preparePng, resizeLanczos } from '../../functions/lib/prepare';
import { originalPrep } from '../helpers/original-prep';
import { seededRandom } from '../../training/rng';

// ---- helpers --------------------------------------------------------------------------

function paper(width: number, height: number, level = 255): GrayImage {
  return { data: new Uint8Array(width * height).fill(level), width, height };
}

function fillRect(img: GrayImage, x0: number, y0: number, w: number, h: number, level = 0): void {
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) img.data[y * img.width + x] = level;
}

/** Seeded draws (mulberry32), so a run repeats exactly. */
const rng = seededRandom;

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/**
 * Draws raw MNIST ink (0-255) scaled by an integer factor at (ox, oy) onto a frame whose paper
 * brightness is `paperAt(x, y)`, ink reaching `inkLevel` at full strength, plus Gaussian noise.
 */
function cameraFrame(
  raw: Uint8Array,
  opts: {
    width: number;
    height: number;
    scale: number;
    ox: number;
    oy: number;
    inkLevel: number;
    noise: number;
    seed: number;
    paperAt: (x: number, y: number) => number;
  },
): GrayImage {
  const r = rng(opts.seed);
  const img = paper(opts.width, opts.height);
  for (let y = 0; y < opts.height; y++) {
    for (let x = 0; x < opts.width; x++) {
      const p = opts.paperAt(x, y);
      const mx = Math.floor((x - opts.ox) / opts.scale);
      const my = Math.floor((y - opts.oy) / opts.scale);
      const ink = mx >= 0 && mx < 28 && my >= 0 && my < 28 ? (raw[my * 28 + mx] as number) / 255 : 0;
      const v = p + (opts.inkLevel - p) * ink + opts.noise * gaussian(r);
      img.data[y * opts.width + x] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return img;
}

function centreOfMass(pixels: Uint8Array): { x: number; y: number } {
  let m = 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < pixels.length; i++) {
    const v = pixels[i] as number;
    m += v;
    mx += (i % 28) * v;
    my += Math.floor(i / 28) * v;
  }
  return { x: mx / m, y: my / m };
}

/** Pearson correlation of two prepared images. */
function correlation(a: Uint8Array, b: Uint8Array): number {
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    sa += a[i] as number;
    sb += b[i] as number;
  }
  const ma = sa / a.length;
  const mb = sb / b.length;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    const x = (a[i] as number) - ma;
    const y = (b[i] as number) - mb;
    num += x * y;
    da += x * x;
    db += y * y;
  }
  return num / Math.sqrt(da * db);
}

/**
 * Best correlation over shifts of up to one pixel: a noisy edge pixel moves the box and so the
 * centre of mass by a pixel, which the model (trained with shifts) does not care about.
 */
function similarity(a: Uint8Array, b: Uint8Array): number {
  let best = -1;
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      const shifted = new Uint8Array(784);
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const sx = x - dx;
          const sy = y - dy;
          if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) shifted[y * 28 + x] = a[sy * 28 + sx] as number;
        }
      }
      best = Math.max(best, correlation(shifted, b));
    }
  }
  return best;
}

async function rejection(promise: Promise<unknown>): Promise<FrameRejectedError> {
  try {
    await promise;
  } catch (error: unknown) {
    if (error instanceof FrameRejectedError) return error;
    throw error;
  }
  throw new Error('expected a FrameRejectedError, got success');
}

async function sharpGray(png: Buffer): Promise<Uint8Array> {
  return new Uint8Array(await sharp(png).flatten({ background: '#ffffff' }).grayscale().raw().toBuffer());
}

function maxAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/** A 64x48 grey test card: a gradient with a dark digit-like bar, so every pixel matters. */
function testCard(): { grey: Uint8Array; width: number; height: number } {
  const width = 64;
  const height = 48;
  const grey = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) grey[y * width + x] = (x * 4 + y) % 256;
  for (let y = 10; y < 40; y++) for (let x = 30; x < 36; x++) grey[y * width + x] = 10;
  return { grey, width, height };
}

// ---- prepareGray: hand-checked geometry ----------------------------------------------

describe('prepareGray geometry', () => {
  it('turns a 10x10 ink square into a 20x20 square centred at 4..23', () => {
    // Prepare: a black square at x 3..12, y 5..14 on white paper.
    const img = paper(28, 28);
    fillRect(img, 3, 5, 10, 10);

    // Act
    const out = prepareGray(img);

    // Assess: the crop is the square; Lanczos of a constant is constant; com 9.5 -> offset
    // round(14 - 9.5) = 4 (Python rounds half to even), so rows/cols 4..23 are ink.
    expect(out.blank).toBe(false);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const inside = x >= 4 && x <= 23 && y >= 4 && y <= 23;
        expect([x, y, out.pixels[y * 28 + x]]).toEqual([x, y, inside ? 255 : 0]);
      }
    }
  });

  it('widens a tall bar to a square centred on it, keeping its aspect', () => {
    const img = paper(40, 40);
    fillRect(img, 20, 5, 4, 12); // 4 wide, 12 tall

    const out = prepareGray(img).pixels;

    // 12 rows -> 20 rows (4..23); 4 of 12 columns -> ~6.7 columns, mirrored about 13.5.
    const rowsWithInk = new Set<number>();
    const colSums = new Array<number>(28).fill(0);
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const v = out[y * 28 + x] as number;
        if (v > 0) rowsWithInk.add(y);
        colSums[x] = (colSums[x] as number) + v;
        expect(Math.abs(v - (out[y * 28 + (27 - x)] as number))).toBeLessThanOrEqual(1);
      }
    }
    expect(Math.min(...rowsWithInk)).toBe(4);
    expect(Math.max(...rowsWithInk)).toBe(23);
    const fullColumns = colSums.filter((s) => s >= 20 * 200).length;
    expect(fullColumns).toBeGreaterThanOrEqual(5);
    expect(fullColumns).toBeLessThanOrEqual(8);
    // Lanczos rings: the centre columns read 247, the edges 97 and 8 beyond a zero gap.
    expect(Array.from(out.subarray(10 * 28 + 7, 10 * 28 + 21))).toEqual([8, 0, 0, 97, 255, 255, 247, 247, 255, 255, 97, 0, 0, 8]);
  });

  it('puts the centre of mass, not the box, at the centre', () => {
    // An L: heavy vertical stroke on the left, thin foot: mass sits left of the box centre.
    const img = paper(30, 30);
    fillRect(img, 5, 5, 6, 20);
    fillRect(img, 5, 22, 20, 3);

    const out = prepareGray(img).pixels;
    const com = centreOfMass(out);

    expect(Math.abs(com.x - 14)).toBeLessThanOrEqual(0.5);
    expect(Math.abs(com.y - 14)).toBeLessThanOrEqual(0.5);
    // Mass 120 px at x 2.5 (stem) + 42 px at x 12.5 (foot) in the 20x20 box: com x = 5.09,
    // offset round(8.91) = 9, so the box spans columns 9..28 and loses its last column.
    let minX = 28;
    let maxX = -1;
    for (let i = 0; i < 784; i++) {
      if ((out[i] as number) > 0) {
        minX = Math.min(minX, i % 28);
        maxX = Math.max(maxX, i % 28);
      }
    }
    expect(minX).toBe(9);
    expect(maxX).toBe(27);
  });

  it('gives blank: true and zeros for empty paper of any size and shade', () => {
    const r = rng(7);
    const cases: GrayImage[] = [paper(28, 28), paper(28, 28, 128), paper(640, 480, 200), paper(1, 1, 0)];
    const noisy = paper(640, 480);
    for (let i = 0; i < noisy.data.length; i++) {
      const x = i % 640;
      noisy.data[i] = Math.max(0, Math.min(255, Math.round(150 + x / 8 + 8 * gaussian(r))));
    }
    cases.push(noisy);
    for (const img of cases) {
      const out = prepareGray(img);
      expect(out.blank).toBe(true);
      expect(out.pixels.every((v) => v === 0)).toBe(true);
    }
  });
});

// ---- resizeLanczos against Pillow ----------------------------------------------------

describe('resizeLanczos', () => {
  // Expected values written by Pillow 9.4: Image.frombytes('L', (n, n), src).resize((20, 20), Image.LANCZOS)
  // for src[i] = 0 in the top third, else (i * 37 + (i >> 3) * 11) % 256.
  const pillow: Record<number, number[]> = {
    12: [
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 8, 6, 2, 0, 2, 3, 3, 4, 5, 5, 6, 6, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 42,
      52, 53, 63, 69, 78, 102, 74, 0, 0, 28, 45, 49, 55, 61, 71, 81, 86, 47, 60, 87, 111, 131, 154, 171, 198, 251, 201, 51, 0, 53,
      87, 109, 132, 150, 175, 202, 215, 187, 125, 33, 63, 126, 141, 160, 194, 228, 231, 183, 83, 5, 13, 68, 116, 143, 160, 188,
      204, 255, 194, 59, 20, 51, 80, 112, 136, 148, 194, 248, 163, 35, 39, 76, 57, 66, 104, 132, 142, 215, 236, 207, 72, 0, 50,
      98, 111, 126, 151, 187, 182, 174, 217, 191, 49, 16, 87, 115, 118, 163, 211, 248, 172, 65, 15, 21, 52, 98, 124, 137, 166,
      218, 255, 244, 146, 52, 26, 64, 99, 143, 152, 183, 238, 185, 34, 0, 49, 77, 92, 116, 137, 160, 175, 216, 251, 152, 15, 20,
      63, 124, 127, 151, 206, 205, 140, 157, 173, 76, 16, 75, 115, 120, 140, 182, 226, 223, 146, 37, 0, 74, 94, 128, 145, 166,
      205, 255, 255, 144, 37, 34, 64, 95, 128, 145, 157, 221, 238, 111, 31, 26, 51, 97, 118, 132, 164, 196, 223, 242, 168, 31, 5,
      73, 104, 115, 131, 163, 190, 183, 175, 122, 87, 35, 65, 112, 127, 139, 175, 240, 235, 132, 38, 8, 22, 65, 106, 124, 144,
      196, 224, 255, 176, 34, 29, 85, 103, 122, 145, 160, 201, 236, 135, 0, 5, 63, 80, 97, 122, 149, 162, 228, 222, 162, 68, 26,
      53, 90, 110, 125, 159, 205, 179, 135, 164, 160, 65, 37, 81, 108, 117, 170, 230, 255, 106, 0, 25, 74, 96, 122, 136, 152, 184,
      235, 255, 230, 61, 2, 60, 92, 100,
    ],
    47: [
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 1,
      2, 3, 1, 3, 3, 1, 3, 3, 1, 3, 2, 1, 4, 2, 2, 3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 121, 48,
      74, 106, 24, 90, 116, 34, 101, 118, 40, 116, 102, 44, 128, 61, 53, 123, 49, 64, 197, 58, 162, 195, 64, 186, 173, 72, 205,
      134, 85, 208, 88, 107, 203, 63, 133, 201, 59, 147, 147, 66, 196, 123, 72, 207, 98, 94, 189, 45, 124, 186, 48, 148, 177, 55,
      172, 154, 68, 172, 89, 92, 205, 79, 116, 195, 62, 146, 178, 58, 173, 154, 59, 194, 127, 66, 204, 102, 85, 206, 44, 149, 172,
      51, 173, 149, 53, 191, 124, 63, 197, 98, 85, 196, 75, 113, 191, 59, 139, 189, 67, 182, 123, 63, 193, 94, 85, 197, 73, 110,
      204, 65, 134, 206, 63, 164, 151, 48, 182, 132, 99, 194, 72, 108, 203, 67, 131, 198, 65, 156, 177, 60, 175, 130, 62, 188, 92,
      80, 195, 76, 138, 193, 63, 154, 179, 55, 175, 156, 58, 189, 83, 76, 199, 72, 100, 203, 70, 124, 194, 67, 173, 153, 55, 190,
      124, 74, 200, 94, 98, 201, 73, 123, 194, 60, 148, 179, 49, 169, 154, 56, 195, 90, 97, 199, 66, 122, 193, 52, 145, 177, 46,
      165, 149, 54, 182, 116, 72, 196, 92, 91, 188, 52, 142, 173, 46, 163, 142, 54, 183, 113, 69, 200, 98, 84, 215, 94, 108, 194,
      53, 126, 130, 56, 183, 112, 66, 200, 103, 81, 209, 96, 101, 210, 78, 127, 179, 55, 155, 138, 57, 159, 98, 82, 206, 95, 100,
      206, 74, 125, 197, 56, 155, 129, 45, 183, 112, 57, 199, 109, 79, 194, 54, 124, 199, 57, 147, 168, 55, 174, 135, 62, 195,
      120, 72, 201, 98, 94, 199, 69, 114, 216,
    ],
  };
  it.each([12, 47])('matches Pillow byte for byte from a %i-pixel square', (n) => {
    const src = new Float32Array(n * n);
    for (let i = 0; i < n * n; i++) src[i] = i < Math.floor(n / 3) * n ? 0 : (i * 37 + (i >> 3) * 11) % 256;
    expect(Array.from(resizeLanczos(src, n, 20))).toEqual(pillow[n]);
  });
});

// ---- prepareGray on camera-like frames ---------------------------------------------

describe('prepareGray separates ink from paper', () => {
  const mnist = loadMnist('t10k');
  const digits = [0, 1, 2, 3, 4, 7, 11, 18, 61, 99];

  it('prepares clean MNIST frames exactly as the original did (almost always)', async () => {
    let identical = 0;
    let worst = 1;
    const n = 300;
    for (let i = 0; i < n; i++) {
      const raw = mnistImage(mnist, i);
      const gray = await decodePng(await renderOriginalFrame(raw));
      const ours = prepareGray(gray).pixels;
      const theirs = originalPrep(gray.data, 28, 28);
      if (maxAbsDiff(ours, theirs) === 0) identical++;
      worst = Math.min(worst, correlation(ours, theirs));
    }
    // Differences come only from stray specks the original counted as ink.
    expect(identical / n).toBeGreaterThan(0.97);
    expect(worst).toBeGreaterThan(0.8);
  });

  it.each(digits)('MNIST %i on gray, unevenly lit, noisy 28x28 paper matches the clean crop', (index) => {
    const raw = mnistImage(mnist, index);
    const clean = prepareGray(
      cameraFrame(raw, { width: 28, height: 28, scale: 1, ox: 0, oy: 0, inkLevel: 0, noise: 0, seed: 1, paperAt: () => 255 }),
    );
    const camera = prepareGray(
      cameraFrame(raw, {
        width: 28,
        height: 28,
        scale: 1,
        ox: 0,
        oy: 0,
        inkLevel: 60,
        noise: 6,
        seed: index,
        paperAt: (x, y) => 150 + 2 * x + y,
      }),
    );
    expect(camera.blank).toBe(false);
    expect(similarity(camera.pixels, clean.pixels)).toBeGreaterThan(0.8);
  });

  it.each(digits)('MNIST %i small and off-centre in a 640x480 frame crops to the digit', (index) => {
    const raw = mnistImage(mnist, index);
    const clean = prepareGray(
      cameraFrame(raw, { width: 28, height: 28, scale: 1, ox: 0, oy: 0, inkLevel: 0, noise: 0, seed: 1, paperAt: () => 255 }),
    );
    const frame = cameraFrame(raw, {
      width: 640,
      height: 480,
      scale: 3,
      ox: 470,
      oy: 40,
      inkLevel: 70,
      noise: 8,
      seed: 100 + index,
      // Lit from the top left, darker towards the bottom right corner.
      paperAt: (x, y) => 230 - 0.12 * x - 0.1 * y,
    });
    const out = prepareGray(frame);
    expect(out.blank).toBe(false);
    expect(similarity(out.pixels, clean.pixels)).toBeGreaterThan(0.85);
  });

  it('ignores a far-away speck of dirt', () => {
    const raw = mnistImage(mnist, 0);
    const frame = cameraFrame(raw, {
      width: 320,
      height: 240,
      scale: 4,
      ox: 20,
      oy: 30,
      inkLevel: 30,
      noise: 4,
      seed: 3,
      paperAt: () => 220,
    });
    const clean = prepareGray(frame).pixels;
    fillRect(frame, 290, 210, 4, 4, 20);
    const dirty = prepareGray(frame).pixels;
    expect(correlation(dirty, clean)).toBeGreaterThan(0.99);
  });

  it('keeps ink graded, not binary', () => {
    const out = prepareGray(
      cameraFrame(mnistImage(mnist, 3), {
        width: 28,
        height: 28,
        scale: 1,
        ox: 0,
        oy: 0,
        inkLevel: 0,
        noise: 0,
        seed: 1,
        paperAt: () => 255,
      }),
    );
    const levels = new Set(out.pixels);
    expect(levels.size).toBeGreaterThan(50);
  });
});

// ---- decodePng ------------------------------------------------------------------------

describe('decodePng rejects what cannot be a frame, with a reason', () => {
  let good: Buffer;
  beforeAll(async () => {
    good = await renderOriginalFrame(mnistImage(loadMnist('t10k'), 0));
  });

  it('empty -> image_empty', async () => {
    const e = await rejection(decodePng(Buffer.alloc(0)));
    expect(e.reason).toBe('image_empty');
    expect(e.message).toMatch(/PNG/);
  });

  it.each([
    [
      'JPEG',
      () =>
        sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
          .jpeg()
          .toBuffer(),
    ],
    [
      'GIF',
      () =>
        sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
          .gif()
          .toBuffer(),
    ],
    [
      'WebP',
      () =>
        sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
          .webp()
          .toBuffer(),
    ],
    [
      'SVG',
      async () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'),
    ],
    ['plain text', async () => Buffer.from('hello, this is not an image')],
    ['random bytes', async () => Buffer.from([0x00, 0x13, 0x37, 0xfe, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06])],
  ])('%s -> not_png, naming what arrived', async (name, make) => {
    const e = await rejection(decodePng(await make()));
    expect(e.reason).toBe('not_png');
    expect(e.message).toMatch(/re-encode the frame as PNG/);
    if (name !== 'random bytes') expect(e.message).toContain(name);
  });

  it('truncated -> corrupt_png', async () => {
    for (const cut of [9, 20, 33, good.length - 30, good.length - 1]) {
      const e = await rejection(decodePng(good.subarray(0, cut)));
      expect(e.reason).toBe('corrupt_png');
      expect(e.message).toMatch(/truncated/);
      expect(e.message).toMatch(/resend the frame/);
    }
  });

  it('a flipped bit anywhere in a chunk -> corrupt_png (CRC)', async () => {
    for (const at of [16, 30, 45, good.length - 20]) {
      const bad = Buffer.from(good);
      bad[at] = (bad[at] as number) ^ 0x04;
      const e = await rejection(decodePng(bad));
      expect(e.reason).toBe('corrupt_png');
    }
    const bad = Buffer.from(good);
    bad[50] = (bad[50] as number) ^ 0x10; // inside IDAT
    expect((await rejection(decodePng(bad))).message).toMatch(/CRC mismatch in chunk IDAT/);
  });

  it('a damaged signature (text-mode transfer) -> corrupt_png', async () => {
    const bad = Buffer.from(good);
    bad[4] = 0x0a; // CRLF -> LF
    expect((await rejection(decodePng(bad))).reason).toBe('corrupt_png');
  });

  it('valid CRCs around damaged compressed data -> corrupt_png', async () => {
    const ihdr = Buffer.from([0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0]);
    const png = handPng(ihdr, Buffer.from('this is not zlib data'));
    const e = await rejection(decodePng(png));
    expect(e.reason).toBe('corrupt_png');
    expect(e.message).toMatch(/cannot be decompressed/);
  });

  it('too few rows of data -> corrupt_png', async () => {
    const ihdr = Buffer.from([0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0]);
    const png = handPng(ihdr, deflateSync(Buffer.alloc(9 * 4)));
    expect((await rejection(decodePng(png))).message).toMatch(/truncated/);
  });

  it('a decompression bomb (tiny file, huge declared size) -> image_too_large before inflating', async () => {
    // 100,000 x 100,000 grey: 10 gigapixels declared in under 100 bytes.
    const ihdr = Buffer.from([0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 0, 0, 0, 0]);
    const png = handPng(ihdr, deflateSync(Buffer.alloc(1000)));
    expect(png.length).toBeLessThan(200);
    const e = await rejection(decodePng(png));
    expect(e.reason).toBe('image_too_large');
    expect(e.message).toContain(String(DEFAULT_DECODE_LIMITS.maxPixels));
    expect(e.message).toMatch(/scale frames down/);
  });

  it('a data stream inflating past the declared size -> corrupt_png', async () => {
    const ihdr = Buffer.from([0, 0, 0, 10, 0, 0, 0, 10, 8, 0, 0, 0, 0]);
    const png = handPng(ihdr, deflateSync(Buffer.alloc(50 * 1024 * 1024)));
    expect((await rejection(decodePng(png))).reason).toBe('corrupt_png');
  });

  it('honours caller limits on pixels and bytes', async () => {
    expect((await rejection(decodePng(good, { maxPixels: 27 * 28, maxBytes: 1 << 20 }))).reason).toBe('image_too_large');
    const e = await rejection(decodePng(good, { maxPixels: 1 << 20, maxBytes: 50 }));
    expect(e.reason).toBe('image_too_large');
    expect(e.message).toMatch(/bytes/);
  });

  it('preparePng rejects the same way', async () => {
    expect((await rejection(preparePng(Buffer.from('GIF89a....')))).reason).toBe('not_png');
  });
});

/** Builds a PNG from an IHDR body and IDAT body with correct CRCs. */
function handPng(ihdr: Buffer, idat: Buffer): Buffer {
  const { crc32 } = require('node:zlib') as typeof import('node:zlib');
  const chunk = (type: string, body: Buffer): Buffer => {
    const out = Buffer.alloc(12 + body.length);
    out.writeUInt32BE(body.length, 0);
    out.write(type, 4, 'latin1');
    body.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
    return out;
  };
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decodePng accepts every kind of valid PNG', () => {
  const { grey, width, height } = testCard();
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < grey.length; i++) rgb.fill(grey[i] as number, i * 3, i * 3 + 3);
  const raw = (channels: 1 | 2 | 3 | 4, data: Uint8Array) => sharp(Buffer.from(data), { raw: { width, height, channels } });

  it.each([
    ['8-bit grey', () => raw(1, grey).png().toBuffer()],
    ['8-bit RGB', () => raw(3, rgb).png().toBuffer()],
    ['interlaced grey', () => raw(1, grey).png({ progressive: true }).toBuffer()],
    ['interlaced RGB', () => raw(3, rgb).png({ progressive: true }).toBuffer()],
    ['16-bit grey', () => raw(1, grey).toColourspace('grey16').png().toBuffer()],
    ['16-bit RGB', () => raw(3, rgb).toColourspace('rgb16').png().toBuffer()],
    ['16-bit RGB interlaced', () => raw(3, rgb).toColourspace('rgb16').png({ progressive: true }).toBuffer()],
    ['palette', () => raw(3, rgb).png({ palette: true, colours: 256, dither: 0 }).toBuffer()],
    ['filtered (adaptive)', () => raw(3, rgb).png({ adaptiveFiltering: true, compressionLevel: 9 }).toBuffer()],
  ])('%s decodes to the same grey as sharp', async (_name, make) => {
    const png = await make();
    const ours = await decodePng(png);
    expect([ours.width, ours.height]).toEqual([width, height]);
    const theirs = await sharpGray(png);
    // Grey images agree exactly; palette quantisation and 16-bit rounding may differ by 1-2.
    expect(maxAbsDiff(ours.data, theirs)).toBeLessThanOrEqual(2);
  });

  it('palette at 1, 2 and 4 bits decodes', async () => {
    for (const colours of [2, 4, 16]) {
      const png = await raw(1, grey).png({ palette: true, colours, dither: 0 }).toBuffer();
      expect(png[24]).toBe(colours === 2 ? 1 : colours === 4 ? 2 : 4); // IHDR bit depth
      const ours = await decodePng(png);
      expect(maxAbsDiff(ours.data, await sharpGray(png))).toBeLessThanOrEqual(2);
    }
  });

  it('grey+alpha and RGBA are composited onto white paper', async () => {
    const ga = new Uint8Array(width * height * 2);
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < grey.length; i++) {
      const alpha = (i * 7) % 256;
      ga[i * 2] = grey[i] as number;
      ga[i * 2 + 1] = alpha;
      rgba.fill(grey[i] as number, i * 4, i * 4 + 3);
      rgba[i * 4 + 3] = alpha;
    }
    const filtered = (bytesPerPixel: number, data: Uint8Array): Buffer => {
      const rows: Buffer[] = [];
      for (let y = 0; y < height; y++)
        rows.push(Buffer.from([0]), Buffer.from(data.subarray(y * width * bytesPerPixel, (y + 1) * width * bytesPerPixel)));
      return deflateSync(Buffer.concat(rows));
    };
    const size = [0, 0, 0, width, 0, 0, 0, height];
    const pngs = [
      handPng(Buffer.from([...size, 8, 4, 0, 0, 0]), filtered(2, ga)), // grey+alpha
      handPng(Buffer.from([...size, 8, 6, 0, 0, 0]), filtered(4, rgba)), // RGBA
      await raw(4, rgba).png().toBuffer(),
    ];
    for (const png of pngs) {
      const ours = await decodePng(png);
      for (let i = 0; i < grey.length; i++) {
        const a = (i * 7) % 256;
        const expected = Math.round(((grey[i] as number) * a + 255 * (255 - a)) / 255);
        expect(Math.abs((ours.data[i] as number) - expected)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('a fully transparent frame is blank paper', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer();
    const out = await preparePng(png);
    expect(out.blank).toBe(true);
  });

  it('hand-made bit depths and tRNS keys decode (1-bit grey, 16-bit grey+alpha, RGB key colour)', async () => {
    // 1-bit grey, 8x2: row 0 = 10101010, row 1 = 01010101.
    const oneBit = handPng(Buffer.from([0, 0, 0, 8, 0, 0, 0, 2, 1, 0, 0, 0, 0]), deflateSync(Buffer.from([0, 0xaa, 0, 0x55])));
    expect(Array.from((await decodePng(oneBit)).data)).toEqual([255, 0, 255, 0, 255, 0, 255, 0, 0, 255, 0, 255, 0, 255, 0, 255]);
    // 2-bit grey: levels 0, 85, 170, 255.
    const twoBit = handPng(Buffer.from([0, 0, 0, 4, 0, 0, 0, 1, 2, 0, 0, 0, 0]), deflateSync(Buffer.from([0, 0b00011011])));
    expect(Array.from((await decodePng(twoBit)).data)).toEqual([0, 85, 170, 255]);
    // 16-bit grey+alpha, 2x1: (0x0000, opaque), (0x0000, alpha 0x8000 -> ~half).
    const ga16 = handPng(
      Buffer.from([0, 0, 0, 2, 0, 0, 0, 1, 16, 4, 0, 0, 0]),
      deflateSync(Buffer.from([0, 0, 0, 0xff, 0xff, 0, 0, 0x80, 0x00])),
    );
    const ga16px = Array.from((await decodePng(ga16)).data);
    expect(ga16px[0]).toBe(0);
    expect(Math.abs((ga16px[1] as number) - 127)).toBeLessThanOrEqual(1);
  });

  it('bytes after IEND are ignored', async () => {
    const png = Buffer.concat([encodePng(grey, width, height, 1), Buffer.from('trailing junk after the end')]);
    expect(Buffer.from((await decodePng(png)).data).equals(Buffer.from(grey))).toBe(true);
  });

  it("big colour frames (decoded by sharp) give exactly the pure decoder's grey", async () => {
    const r = rng(9);
    const rgb = new Uint8Array(640 * 480 * 3).map(() => Math.floor(r() * 256));
    const png = encodePng(rgb, 640, 480, 3);
    const viaSharp = await decodePng(png);
    expect([viaSharp.width, viaSharp.height]).toEqual([640, 480]);
    expect(maxAbsDiff(viaSharp.data, decodePngSync(png).data)).toBe(0);
    // And with alpha, flattened onto white the same way.
    const rgba = new Uint8Array(400 * 300 * 4).map(() => Math.floor(r() * 256));
    const png4 = encodePng(rgba, 400, 300, 4);
    expect(maxAbsDiff((await decodePng(png4)).data, decodePngSync(png4).data)).toBe(0);
  });

  it('big frames (decoded by sharp) decode as the pure decoder does, and fail the same way', async () => {
    const r = rng(5);
    const noisy = new Uint8Array(640 * 480).map(() => Math.floor(r() * 256));
    const png = encodePng(noisy, 640, 480, 1);
    expect(png.length).toBeGreaterThan(64 * 1024);
    const viaPool = await decodePng(png);
    expect(Buffer.from(viaPool.data).equals(Buffer.from(decodePngSync(png).data))).toBe(true);
    expect(Buffer.from(viaPool.data).equals(Buffer.from(noisy))).toBe(true);
    // Damage the compressed stream but keep the CRC valid: the pool's inflate must reject it.
    const idatStart = 8 + 25 + 8;
    const bad = Buffer.from(png);
    bad.fill(0xff, idatStart + 100, idatStart + 400);
    const idatLength = bad.readUInt32BE(33);
    const { crc32 } = require('node:zlib') as typeof import('node:zlib');
    bad.writeUInt32BE(crc32(bad.subarray(37, 41 + idatLength)), 41 + idatLength);
    const e = await rejection(decodePng(bad));
    expect(e.reason).toBe('corrupt_png');
    expect(e.message).toMatch(/cannot be decoded|cannot be decompressed|truncated/);
  });

  it('a frame exactly at the pixel bound (4096x4096) decodes and prepares; one more row is refused', async () => {
    const side = 4096;
    const page = sharp({ create: { width: side, height: side, channels: 3, background: '#f0f0f0' } }).composite([
      { input: { create: { width: 400, height: 900, channels: 3, background: '#202020' } }, left: 3000, top: 200 },
    ]);
    const png = await page.png().toBuffer();
    expect(png.length).toBeLessThan(DEFAULT_DECODE_LIMITS.maxBytes);
    const out = await preparePng(png);
    expect(out.blank).toBe(false);
    expect(out.pixels[14 * 28 + 14]).toBe(255);
    const tooTall = await sharp({ create: { width: side, height: side + 1, channels: 3, background: '#ffffff' } })
      .png()
      .toBuffer();
    expect((await rejection(decodePng(tooTall))).reason).toBe('image_too_large');
  });

  it('a very large frame decodes', async () => {
    const big = new Uint8Array(3000 * 2000).fill(255);
    fillRect({ data: big, width: 3000, height: 2000 }, 2000, 1200, 300, 500, 0);
    const png = await sharp(Buffer.from(big), { raw: { width: 3000, height: 2000, channels: 1 } })
      .png()
      .toBuffer();
    const out = await preparePng(png);
    expect(out.blank).toBe(false);
    // A 300x500 bar: 12 of 20 columns wide after the square crop, centred.
    expect(out.pixels[14 * 28 + 14]).toBe(255);
  });
});

describe('decodePng on damaged input', () => {
  it('turns every mutation of a valid PNG (CRCs repaired) into a frame or a FrameRejectedError', async () => {
    const { crc32 } = require('node:zlib') as typeof import('node:zlib');
    const r = rng(21);
    const fixCrcs = (b: Buffer): void => {
      let o = 8;
      while (o + 12 <= b.length) {
        const len = b.readUInt32BE(o);
        if (o + 12 + len > b.length) break;
        b.writeUInt32BE(crc32(b.subarray(o + 4, o + 8 + len)), o + 8 + len);
        o += 12 + len;
      }
    };
    const small = encodePng(
      new Uint8Array(28 * 28).map(() => Math.floor(r() * 256)),
      28,
      28,
      1,
    );
    const big = encodePng(
      new Uint8Array(300 * 200 * 3).map(() => Math.floor(r() * 256)),
      300,
      200,
      3,
    );
    let decoded = 0;
    let rejected = 0;
    for (let t = 0; t < 300; t++) {
      const b = Buffer.from(t % 2 === 0 ? small : big);
      // Headers (first 40 bytes) a third of the time, anywhere otherwise.
      const span = t % 3 === 0 ? 40 : b.length - 8;
      for (let k = 0; k < 1 + (t % 4); k++) b[8 + Math.floor(r() * span)] = Math.floor(r() * 256);
      fixCrcs(b);
      try {
        const g = await decodePng(b);
        expect(prepareGray(g).pixels).toHaveLength(784);
        decoded++;
      } catch (error: unknown) {
        expect(error).toBeInstanceOf(FrameRejectedError);
        rejected++;
      }
    }
    expect(decoded + rejected).toBe(300);
    expect(rejected).toBeGreaterThan(150);
  });
});
