/**
 * A "new camera" whose digits look nothing like MNIST: displays and print rather than
 * handwriting. Seven-segment LCD readouts (slanted, with faint unlit segments), 5x7
 * dot-matrix panels, stencil lettering and digits set in the machine's own fonts
 * (DejaVu, Liberation; some hollow), on coloured, gradient-lit backgrounds at resolutions
 * the training never used. Drawn as SVG and rendered by sharp, independently of
 * training/ (no code or frames from its generators), so retraining on it is a real test.
 *
 * Frame i of a part is the same on every run: the `pool` part feeds the loop (published,
 * labelled at home, trained on), the `test` part is drawn with other seeds and only ever
 * scored.
 *
 *   npx tsx scripts/new-camera-set.ts --out /tmp/new-camera --pool 1500 --test 600
 *       writes DIR/pool/ and DIR/test/ as <label>-<index>.png (the camera source's folder
 *       layout: the leading digit is the label) and DIR/<part>.jsonl
 *   npx tsx scripts/new-camera-set.ts --dataset /tmp/new-camera-dataset --pool 2000
 *       writes the pool as a labelled dataset in the home's export layout (DIR/<digit>/*.png,
 *       DIR/metadata.jsonl, DIR/dataset.json), as if a person had labelled every frame
 *   npx tsx scripts/new-camera-set.ts --evaluate models [--test 600]
 *       scores a model folder on the test part: accuracy, and how often it is confidently wrong
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { loadDigitModel } from '../functions/lib/model';
import { preparePng } from '../functions/lib/prepare';
import { Rng } from '../training/rng';

export type NewCameraPart = 'pool' | 'test';
export type NewCameraStyle = 'seven-segment' | 'dot-matrix' | 'stencil' | 'font' | 'hollow-font';

export interface NewCameraFrame {
  png: Buffer;
  label: number;
  style: NewCameraStyle;
  width: number;
  height: number;
}

const PART_SEEDS: Record<NewCameraPart, number> = { pool: 0x2f6a91c3, test: 0x71d40b5e };
const STYLES: readonly NewCameraStyle[] = ['seven-segment', 'dot-matrix', 'stencil', 'font', 'hollow-font'];
/** Sizes the training never drew: portrait meter windows, wide panels, odd aspect ratios. */
const SIZES: ReadonlyArray<readonly [number, number]> = [
  [40, 56],
  [60, 44],
  [72, 96],
  [100, 70],
  [128, 72],
  [150, 150],
  [200, 120],
];
/** Families fontconfig finds on Debian with fonts-dejavu-core and fonts-liberation. */
const FONTS = [
  'DejaVu Sans',
  'DejaVu Serif',
  'DejaVu Sans Mono',
  'DejaVu Sans Condensed',
  'Liberation Sans',
  'Liberation Serif',
  'Liberation Mono',
  'Liberation Sans Narrow',
];

// Segments a-g of each digit: a top, b upper right, c lower right, d bottom, e lower left, f upper left, g middle.
const SEGMENTS: readonly string[] = ['abcdef', 'bc', 'abged', 'abgcd', 'fgbc', 'afgcd', 'afgedc', 'abc', 'abcdefg', 'abcdfg'];

// A 5x7 dot-matrix font (rows top to bottom, 1 = lit), the common HD44780 shapes.
const DOTS: readonly string[][] = [
  ['01110', '10001', '10011', '10101', '11001', '10001', '01110'],
  ['00100', '01100', '00100', '00100', '00100', '00100', '01110'],
  ['01110', '10001', '00001', '00010', '00100', '01000', '11111'],
  ['11111', '00010', '00100', '00010', '00001', '10001', '01110'],
  ['00010', '00110', '01010', '10010', '11111', '00010', '00010'],
  ['11111', '10000', '11110', '00001', '00001', '10001', '01110'],
  ['00110', '01000', '10000', '11110', '10001', '10001', '01110'],
  ['11111', '00001', '00010', '00100', '01000', '01000', '01000'],
  ['01110', '10001', '10001', '01110', '10001', '10001', '01110'],
  ['01110', '10001', '10001', '01111', '00001', '00010', '01100'],
];

function hsl(h: number, s: number, l: number): string {
  return `hsl(${h.toFixed(0)},${(s * 100).toFixed(0)}%,${(l * 100).toFixed(0)}%)`;
}

/** The seven segments as polygons in a box (x, y, w, h), slanted by `slant` (x shift per unit of height). */
function sevenSegment(
  digit: number,
  x: number,
  y: number,
  w: number,
  h: number,
  t: number,
  slant: number,
  on: string,
  off: string | null,
): string {
  const half = h / 2;
  const sx = (px: number, py: number) => `${(px + (y + h - py) * slant).toFixed(2)},${py.toFixed(2)}`;
  const horizontal = (yy: number) => [
    sx(x + t * 0.6, yy),
    sx(x + t, yy - t / 2),
    sx(x + w - t, yy - t / 2),
    sx(x + w - t * 0.6, yy),
    sx(x + w - t, yy + t / 2),
    sx(x + t, yy + t / 2),
  ];
  const vertical = (xx: number, y0: number, y1: number) => [
    sx(xx, y0 + t * 0.6),
    sx(xx + t / 2, y0 + t),
    sx(xx + t / 2, y1 - t),
    sx(xx, y1 - t * 0.6),
    sx(xx - t / 2, y1 - t),
    sx(xx - t / 2, y0 + t),
  ];
  const shapes: Record<string, string[]> = {
    a: horizontal(y + t / 2),
    g: horizontal(y + half),
    d: horizontal(y + h - t / 2),
    f: vertical(x + t / 2, y, y + half),
    b: vertical(x + w - t / 2, y, y + half),
    e: vertical(x + t / 2, y + half, y + h),
    c: vertical(x + w - t / 2, y + half, y + h),
  };
  return Object.entries(shapes)
    .map(([name, points]) => {
      const lit = SEGMENTS[digit]!.includes(name);
      if (!lit && off === null) return '';
      return `<polygon points="${points.join(' ')}" fill="${lit ? on : off}"/>`;
    })
    .join('');
}

function dotMatrix(digit: number, x: number, y: number, w: number, h: number, on: string, off: string | null): string {
  const pitchX = w / 5;
  const pitchY = h / 7;
  const r = Math.min(pitchX, pitchY) * 0.42;
  let out = '';
  DOTS[digit]!.forEach((row, ry) => {
    [...row].forEach((bit, rx) => {
      if (bit === '0' && off === null) return;
      out += `<circle cx="${(x + (rx + 0.5) * pitchX).toFixed(2)}" cy="${(y + (ry + 0.5) * pitchY).toFixed(2)}" r="${r.toFixed(2)}" fill="${bit === '1' ? on : off}"/>`;
    });
  });
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** Frame `index` of `part`: the same on every run and machine (given the same fonts). */
export async function newCameraFrame(part: NewCameraPart, index: number): Promise<NewCameraFrame> {
  const rng = new Rng((PART_SEEDS[part] ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  for (let k = 0; k < 3; k++) rng.next(); // let nearby seeds drift apart
  const label = rng.int(10);
  const style = STYLES[rng.int(STYLES.length)]!;
  const [width, height] = SIZES[rng.int(SIZES.length)]!;
  // Background: a coloured panel or paper, lit from one side.
  const hue = rng.uniform(0, 360);
  const light = rng.uniform(0.72, 0.92);
  const sat = rng.uniform(0.15, 0.6);
  const angle = rng.uniform(0, 360);
  const gradient = `<linearGradient id="g" gradientTransform="rotate(${angle.toFixed(0)} 0.5 0.5)"><stop offset="0" stop-color="${hsl(hue, sat, Math.min(0.97, light + 0.08))}"/><stop offset="1" stop-color="${hsl(hue, sat, light - rng.uniform(0.02, 0.12))}"/></linearGradient>`;
  const ink = hsl(rng.uniform(0, 360), rng.uniform(0, 0.7), rng.uniform(0.05, 0.25));
  const ghost = rng.next() < 0.5 ? hsl(hue, sat, light - 0.07) : null;
  // The digit's box: 55-85% of the frame's height, anywhere that keeps it whole.
  const boxH = height * rng.uniform(0.55, 0.85);
  const boxW = Math.min(width * 0.9, boxH * rng.uniform(0.5, 0.68));
  const x = rng.uniform(width * 0.05, width * 0.95 - boxW);
  const y = rng.uniform(height * 0.05, height * 0.95 - boxH);
  let body: string;
  switch (style) {
    case 'seven-segment':
      body = sevenSegment(
        label,
        x,
        y,
        boxW,
        boxH,
        Math.max(1.6, boxW * rng.uniform(0.14, 0.22)),
        rng.uniform(0, 0.18),
        ink,
        ghost,
      );
      break;
    case 'dot-matrix':
      body = dotMatrix(label, x, y, boxW, boxH, ink, ghost);
      break;
    default: {
      const family = FONTS[rng.int(FONTS.length)]!;
      const bold = rng.next() < 0.5 ? 'bold' : 'normal';
      const italic = rng.next() < 0.3 ? 'italic' : 'normal';
      const size = boxH * 1.3;
      const text = `<text x="${(x + boxW / 2).toFixed(1)}" y="${(y + boxH).toFixed(1)}" font-family="${escapeXml(family)}" font-size="${size.toFixed(1)}" font-weight="${bold}" font-style="${italic}" text-anchor="middle"`;
      if (style === 'hollow-font') {
        body = `${text} fill="none" stroke="${ink}" stroke-width="${Math.max(1, size * 0.035).toFixed(2)}">${label}</text>`;
      } else {
        body = `${text} fill="${ink}">${label}</text>`;
        if (style === 'stencil') {
          // Stencil bridges: bands of background across the strokes.
          const bands = 1 + rng.int(2);
          for (let b = 0; b < bands; b++) {
            const by = y + boxH * ((b + 1) / (bands + 1)) + rng.uniform(-0.05, 0.05) * boxH;
            body += `<rect x="${(x - boxW).toFixed(1)}" y="${by.toFixed(1)}" width="${(boxW * 3).toFixed(1)}" height="${Math.max(1, boxH * 0.06).toFixed(1)}" fill="${hsl(hue, sat, light)}"/>`;
          }
        }
      }
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><defs>${gradient}</defs><rect width="${width}" height="${height}" fill="url(#g)"/>${body}</svg>`;
  let image = sharp(Buffer.from(svg));
  if (rng.next() < 0.4) image = image.blur(rng.uniform(0.4, 1.0));
  const png = await image.png().toBuffer();
  return { png, label, style, width, height };
}

/** Frames `from`..`from+count-1` of a part. */
export async function newCameraFrames(part: NewCameraPart, count: number, from = 0): Promise<NewCameraFrame[]> {
  const frames: NewCameraFrame[] = [];
  for (let i = from; i < from + count; i++) frames.push(await newCameraFrame(part, i));
  return frames;
}

export interface NewCameraScore {
  frames: number;
  accuracy: number;
  /** Share of frames scored wrong with a probability over the threshold (they stay at the edge). */
  confidently_wrong: number;
  /** Share of frames the threshold sends home. */
  uncertain: number;
  by_style: Record<string, { frames: number; accuracy: number }>;
}

/** Scores frames with the model in `modelDir` through preparePng, as the edge does. */
export async function scoreNewCamera(
  modelDir: string,
  frames: readonly NewCameraFrame[],
  threshold = 0.7,
): Promise<NewCameraScore> {
  const model = await loadDigitModel(modelDir);
  const prepared = await Promise.all(frames.map((f) => preparePng(f.png)));
  const scores = await model.scoreBatch(prepared.map((p) => p.pixels));
  let right = 0;
  let confidentlyWrong = 0;
  let uncertain = 0;
  const styles = new Map<string, { frames: number; right: number }>();
  frames.forEach((f, k) => {
    const row = scores[k]!;
    let best = 0;
    for (let c = 1; c < 10; c++) if (row[c]! > row[best]!) best = c;
    const ok = best === f.label;
    if (ok) right += 1;
    if (row[best]! <= threshold) uncertain += 1;
    else if (!ok) confidentlyWrong += 1;
    const s = styles.get(f.style) ?? { frames: 0, right: 0 };
    s.frames += 1;
    if (ok) s.right += 1;
    styles.set(f.style, s);
  });
  const r = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    frames: frames.length,
    accuracy: r(right / frames.length),
    confidently_wrong: r(confidentlyWrong / frames.length),
    uncertain: r(uncertain / frames.length),
    by_style: Object.fromEntries([...styles].sort().map(([k, s]) => [k, { frames: s.frames, accuracy: r(s.right / s.frames) }])),
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const arg = (name: string) => {
    const k = argv.indexOf(name);
    return k >= 0 ? argv[k + 1] : undefined;
  };
  const pool = Number(arg('--pool') ?? 1500);
  const test = Number(arg('--test') ?? 600);
  const evaluateDir = arg('--evaluate');
  if (evaluateDir !== undefined) {
    const frames = await newCameraFrames('test', test);
    console.log(JSON.stringify({ model: resolve(evaluateDir), ...(await scoreNewCamera(evaluateDir, frames)) }, null, 2));
    return;
  }
  const datasetDir = arg('--dataset');
  if (datasetDir !== undefined) {
    const dir = resolve(datasetDir);
    const lines: string[] = [];
    const counts: Record<string, number> = {};
    for (let i = 0; i < pool; i++) {
      const f = await newCameraFrame('pool', i);
      const frameId = `new-camera-pool-${i}`;
      const fileName = `${f.label}/${frameId}.png`;
      mkdirSync(join(dir, String(f.label)), { recursive: true });
      writeFileSync(join(dir, fileName), f.png);
      counts[String(f.label)] = (counts[String(f.label)] ?? 0) + 1;
      lines.push(
        JSON.stringify({
          file_name: fileName,
          label: f.label,
          camera: 'New-camera',
          frame_id: frameId,
          model_version: null,
          predicted: null,
          probabilities: null,
          labelled_at: new Date(0).toISOString(),
        }),
      );
    }
    writeFileSync(join(dir, 'metadata.jsonl'), `${lines.join('\n')}\n`);
    writeFileSync(
      join(dir, 'dataset.json'),
      `${JSON.stringify({ version: `new-camera-pool-${pool}`, counts, created_at: new Date().toISOString() })}\n`,
    );
    console.log(`${pool} labelled pool frames in ${dir}`);
    return;
  }
  const out = resolve(arg('--out') ?? 'out/new-camera');
  for (const [part, count] of [
    ['pool', pool],
    ['test', test],
  ] as const) {
    const dir = join(out, part);
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const f = await newCameraFrame(part, i);
      const name = `${f.label}-${String(i).padStart(5, '0')}.png`;
      writeFileSync(join(dir, name), f.png);
      lines.push(JSON.stringify({ file: name, label: f.label, style: f.style, width: f.width, height: f.height }));
    }
    writeFileSync(join(out, `${part}.jsonl`), `${lines.join('\n')}\n`);
    console.log(`${count} ${part} frames in ${dir}`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
