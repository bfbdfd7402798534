/**
 * The bad-input catalogue: every way a camera-images record can be wrong gets exactly one
 * rejected-images record with its reason code and a sentence a person can act on, while the
 * good frames of the same batch are scored as usual and nothing is retried. Valid but unusual
 * PNGs are accepted and scored. Camera ids never reach a file name of the home outputs
 * unsanitised.
 *
 * Runs the real classify stage (classifyBatch with the project's model) against the real
 * emulator through the real stream writer.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import sharp from 'sharp';
import { type ClassifyStreams, classifyBatch } from '../../functions/lib/classify-batch';
import { loadConfig } from '../../functions/lib/config';
import {
  type Prediction,
  predictionSchema,
  type RejectedImage,
  rejectedImageSchema,
  type UncertainImage,
  uncertainImageSchema,
} from '../../functions/lib/contracts';
import type { RejectReason } from '../../functions/lib/errors';
import { type DigitModel, loadDigitModel } from '../../functions/lib/model';
import { encodePng } from '../../functions/lib/png';
import { encodePngRecord } from '../../functions/lib/png-frame-record';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { HomeOutputs } from '../../local/home';
import {
  NOT_PNG,
  cameraRecord,
  chunksOf,
  digit,
  digitOnPaper,
  filteredRows,
  frameBody,
  frameIdOf,
  ihdr,
  pngChunk,
  pngOf,
} from '../helpers/frames';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';

const config = loadConfig({ DEVICE_ID: 'edge-bad-input' });
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
/** A sentence a person can act on says what to do. */
const ACTION = /\b(send|resend|use|check|encode|re-encode|scale|must|needs?)\b/i;

/** A clean MNIST frame (digit 0 of the test set, a 7) as the original camera sent it. */
const goodPng = () => encodePng(digit(0).grey, 28, 28, 1);

/** A valid 28x28 PNG of digit 0 with its CRCs intact, then changed as each case needs. */
function mutatedPng(change: (png: Buffer) => Buffer): Buffer {
  return change(Buffer.from(goodPng()));
}

interface RejectCase {
  name: string;
  record: () => Promise<Uint8Array> | Uint8Array;
  reason: RejectReason;
  /** What the sentence must mention beyond an action (the format it saw, the field, ...). */
  mentions?: RegExp;
  /** The camera id kept in the reject, when the record's own id was valid. */
  camera?: string;
}

const rejectCases: RejectCase[] = [
  { name: 'invalid JSON', record: () => Buffer.from('{"image": "iVBOR", "camera": '), reason: 'invalid_json', mentions: /JSON/ },
  {
    name: 'a JSON array instead of an object',
    record: () => json([frameBody(goodPng())]),
    reason: 'invalid_record',
    mentions: /object/,
  },
  { name: 'bytes that are not UTF-8 text', record: () => Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80]), reason: 'invalid_json' },
  {
    name: 'a missing image',
    record: () => json({ camera: 'Camera-edge1', timestamp: '2026-11-27T15:00:00Z' }),
    reason: 'invalid_record',
    mentions: /image/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a missing camera',
    record: () => json({ image: goodPng().toString('base64'), timestamp: '2026-11-27T15:00:00Z' }),
    reason: 'invalid_record',
    mentions: /camera/,
  },
  {
    name: 'a missing timestamp',
    record: () => json({ image: goodPng().toString('base64'), camera: 'Camera-edge1' }),
    reason: 'invalid_record',
    mentions: /timestamp/,
    camera: 'Camera-edge1',
  },
  {
    name: 'an image that is a number',
    record: () => json(frameBody(goodPng(), { image: 42 })),
    reason: 'invalid_record',
    mentions: /base64/,
    camera: 'Camera-edge1',
  },
  { name: 'a camera that is a number', record: () => json(frameBody(goodPng(), { camera: 7 })), reason: 'invalid_camera' },
  {
    name: 'a timestamp that is a number',
    record: () => json(frameBody(goodPng(), { timestamp: 1764255600 })),
    reason: 'invalid_timestamp',
    mentions: /ISO-8601/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a label that is a string',
    record: () => json(frameBody(goodPng(), { label: '7' })),
    reason: 'invalid_label',
    mentions: /0-9/,
    camera: 'Camera-edge1',
  },
  {
    name: 'an image that is not base64',
    record: () => json(frameBody(goodPng(), { image: 'data:image/png;base64,iVBORw0KGgo=' })),
    reason: 'image_not_base64',
    mentions: /base64/,
    camera: 'Camera-edge1',
  },
  {
    name: 'an image with line breaks (MIME base64)',
    record: () =>
      json(
        frameBody(goodPng(), {
          image: goodPng()
            .toString('base64')
            .replace(/(.{76})/g, '$1\r\n'),
        }),
      ),
    reason: 'image_not_base64',
    camera: 'Camera-edge1',
  },
  {
    name: 'an empty image',
    record: () => json(frameBody(goodPng(), { image: '' })),
    reason: 'image_empty',
    camera: 'Camera-edge1',
  },
  {
    name: 'a JPEG',
    record: async () => json(frameBody(await NOT_PNG.jpeg())),
    reason: 'not_png',
    mentions: /JPEG/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a GIF',
    record: async () => json(frameBody(await NOT_PNG.gif())),
    reason: 'not_png',
    mentions: /GIF/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a WebP',
    record: async () => json(frameBody(await NOT_PNG.webp())),
    reason: 'not_png',
    mentions: /WebP/,
    camera: 'Camera-edge1',
  },
  {
    name: 'an SVG',
    record: async () => json(frameBody(await NOT_PNG.svg())),
    reason: 'not_png',
    mentions: /SVG/,
    camera: 'Camera-edge1',
  },
  {
    name: 'plain text',
    record: async () => json(frameBody(await NOT_PNG.text())),
    reason: 'not_png',
    mentions: /text/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a PNG cut in half',
    record: () => json(frameBody(goodPng().subarray(0, goodPng().length >> 1))),
    reason: 'corrupt_png',
    mentions: /truncated/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a PNG missing only its IEND',
    record: () => json(frameBody(goodPng().subarray(0, goodPng().length - 12))),
    reason: 'corrupt_png',
    mentions: /IEND/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a PNG with one bit flipped in its image data (CRC mismatch)',
    record: () =>
      json(
        frameBody(
          mutatedPng((png) => {
            const idat = chunksOf(png).find((c) => c.type === 'IDAT');
            const at = (idat?.offset ?? 0) + 8 + 3;
            png[at] = (png[at] as number) ^ 0x10;
            return png;
          }),
        ),
      ),
    reason: 'corrupt_png',
    mentions: /CRC/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a PNG whose signature went through a text-mode transfer',
    record: () => json(frameBody(mutatedPng((png) => Buffer.concat([png.subarray(0, 4), Buffer.from([0x0a]), png.subarray(6)])))),
    reason: 'corrupt_png',
    mentions: /signature/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a decompression bomb: a 200-byte file declaring 100000 x 100000 pixels',
    record: () =>
      json(
        frameBody(
          pngOf(
            pngChunk('IHDR', ihdr(100_000, 100_000, 8, 0)),
            pngChunk('IDAT', Buffer.alloc(120)),
            pngChunk('IEND', Buffer.alloc(0)),
          ),
        ),
      ),
    reason: 'image_too_large',
    mentions: /100000x100000/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a decompression bomb just over the pixel cap (4097 x 4096, valid zlib)',
    record: () => {
      // A real, complete zlib stream of blank rows: ~16 kB that would inflate to 16 MiB.
      const width = 4097;
      const height = 4096;
      return json(
        frameBody(
          pngOf(
            pngChunk('IHDR', ihdr(width, height, 8, 0)),
            pngChunk('IDAT', filteredRows(new Uint8Array(width * height).fill(255), width, height, 1)),
            pngChunk('IEND', Buffer.alloc(0)),
          ),
        ),
      );
    },
    reason: 'image_too_large',
    mentions: /scale frames down/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a record over Kinesis’ 1 MiB',
    record: () => json(frameBody(Buffer.concat([goodPng(), Buffer.alloc(800 * 1024, 1)]))),
    reason: 'record_too_large',
    mentions: /1048576 bytes/,
  },
  {
    name: 'a camera id of 129 characters',
    record: () => json(frameBody(goodPng(), { camera: `C${'x'.repeat(128)}` })),
    reason: 'invalid_camera',
    mentions: /129 characters/,
  },
  {
    name: 'a camera id with a NUL',
    record: () => json(frameBody(goodPng(), { camera: 'cam\u0000era' })),
    reason: 'invalid_camera',
    mentions: /control characters/,
  },
  {
    name: 'a camera id with an escape sequence',
    record: () => json(frameBody(goodPng(), { camera: 'cam\u001b[31mera' })),
    reason: 'invalid_camera',
  },
  {
    name: 'a camera id with a newline',
    record: () => json(frameBody(goodPng(), { camera: 'Camera\nforged log line' })),
    reason: 'invalid_camera',
  },
  {
    name: 'a PNG record without its text chunks (a bare PNG file)',
    record: () => goodPng(),
    reason: 'invalid_record',
    mentions: /tEXt/,
  },
  {
    name: 'a PNG record whose camera text chunk was damaged in transit (CRC mismatch)',
    record: () => {
      const record = encodePngRecord(goodPng(), {
        camera: 'Camera-edge1',
        timestamp: new Date(Date.now() - 60_000).toISOString(),
      });
      record[record.indexOf('Camera-edge1', 0, 'latin1')] = 0x4b; // "Kamera-edge1": a valid id the CRC no longer matches
      return record;
    },
    reason: 'invalid_record',
    mentions: /camera text chunk is damaged/,
  },
  {
    name: 'a PNG record with an unsafe camera id',
    record: () => encodePngRecord(goodPng(), { camera: '../x', timestamp: new Date(Date.now() - 60_000).toISOString() }),
    reason: 'invalid_camera',
    mentions: /slashes/,
  },
  {
    name: 'a PNG record whose image data is corrupt keeps its camera in the reject',
    record: () => {
      const record = encodePngRecord(goodPng(), {
        camera: 'Camera-edge1',
        timestamp: new Date(Date.now() - 60_000).toISOString(),
      });
      const idat = chunksOf(record).find((c) => c.type === 'IDAT');
      const at = (idat?.offset ?? 0) + 8 + 3;
      record[at] = (record[at] as number) ^ 0x10;
      return record;
    },
    reason: 'corrupt_png',
    mentions: /CRC/,
    camera: 'Camera-edge1',
  },
  {
    name: 'a PNG record over Kinesis’ 1 MiB',
    record: () =>
      encodePngRecord(
        Buffer.concat([goodPng().subarray(0, 33), pngChunk('zTXt', Buffer.alloc(1024 * 1024, 1)), goodPng().subarray(33)]),
        {
          camera: 'Camera-edge1',
          timestamp: new Date(Date.now() - 60_000).toISOString(),
        },
      ),
    reason: 'record_too_large',
    mentions: /1048576 bytes/,
  },
  {
    name: "the camera id '../x'",
    record: () => json(frameBody(goodPng(), { camera: '../x' })),
    reason: 'invalid_camera',
    mentions: /slashes/,
  },
  { name: "the camera id 'a/b'", record: () => json(frameBody(goodPng(), { camera: 'a/b' })), reason: 'invalid_camera' },
  { name: "the camera id 'a\\b'", record: () => json(frameBody(goodPng(), { camera: 'a\\b' })), reason: 'invalid_camera' },
  { name: "the camera id '..'", record: () => json(frameBody(goodPng(), { camera: '..' })), reason: 'invalid_camera' },
  { name: 'an empty camera id', record: () => json(frameBody(goodPng(), { camera: '' })), reason: 'invalid_camera' },
  {
    name: 'a garbage timestamp',
    record: () => json(frameBody(goodPng(), { timestamp: 'yesterday at noon' })),
    reason: 'invalid_timestamp',
    mentions: /ISO-8601/,
    camera: 'Camera-edge1',
  },
  {
    name: 'an impossible date',
    record: () => json(frameBody(goodPng(), { timestamp: '2026-02-30T10:00:00Z' })),
    reason: 'invalid_timestamp',
    camera: 'Camera-edge1',
  },
  {
    name: 'a far-future timestamp',
    record: () => json(frameBody(goodPng(), { timestamp: '2999-01-01T00:00:00Z' })),
    reason: 'future_timestamp',
    mentions: /clock/,
    camera: 'Camera-edge1',
  },
];

interface AcceptCase {
  name: string;
  png: () => Promise<Buffer>;
  /** Check on the file itself that it is what the case says. */
  is?: (png: Buffer) => boolean;
  extra?: Record<string, unknown>;
  blank?: boolean;
}

const DIGIT = 0; // a 7
const paper64 = () => digitOnPaper(DIGIT, 64, 64, 2);
const grey = (data: Uint8Array, width: number, height: number) =>
  sharp(Buffer.from(data), { raw: { width, height, channels: 1 } });
const header = (png: Buffer) => ({ bitDepth: png[24], colorType: png[25], interlace: png[28] });

const acceptCases: AcceptCase[] = [
  {
    name: 'the original 28x28 RGB frame with unknown extra fields',
    png: async () => encodePng(Uint8Array.from(Array.from(digit(DIGIT).grey).flatMap((v) => [v, v, v])), 28, 28, 3),
    extra: { exposure: 12, gps: { lat: 1.5 }, image_format: 'png' },
  },
  {
    name: 'an interlaced (Adam7) PNG',
    png: async () =>
      grey(await paper64(), 64, 64)
        .png({ progressive: true })
        .toBuffer(),
    is: (p) => header(p).interlace === 1,
  },
  {
    name: 'a 16-bit grey PNG',
    png: async () =>
      grey(await paper64(), 64, 64)
        .toColourspace('grey16')
        .png()
        .toBuffer(),
    is: (p) => header(p).bitDepth === 16,
  },
  {
    name: 'a palette PNG',
    png: async () =>
      grey(await paper64(), 64, 64)
        .png({ palette: true, colours: 16, dither: 0 })
        .toBuffer(),
    is: (p) => header(p).colorType === 3,
  },
  {
    name: 'a grey+alpha PNG (ink opaque, paper half transparent)',
    png: async () => {
      const g = await paper64();
      const ga = new Uint8Array(64 * 64 * 2);
      g.forEach((v, i) => {
        ga[2 * i] = v;
        ga[2 * i + 1] = v < 128 ? 255 : 128;
      });
      return pngOf(
        pngChunk('IHDR', ihdr(64, 64, 8, 4)),
        pngChunk('IDAT', filteredRows(ga, 64, 64, 2)),
        pngChunk('IEND', Buffer.alloc(0)),
      );
    },
    is: (p) => header(p).colorType === 4,
  },
  {
    name: 'a fully transparent PNG (blank, so uncertain)',
    png: () =>
      sharp({ create: { width: 64, height: 48, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
        .png()
        .toBuffer(),
    is: (p) => header(p).colorType === 6,
    blank: true,
  },
  {
    name: 'a PNG with bytes after IEND',
    png: async () => Buffer.concat([goodPng(), Buffer.from('\0\0\0\0trailing bytes from a careless uploader')]),
  },
  {
    name: 'a very large frame (4000 x 3000)',
    png: async () =>
      grey(await digitOnPaper(DIGIT, 4000, 3000, 30), 4000, 3000)
        .png({ compressionLevel: 9 })
        .toBuffer(),
    is: (p) => p.readUInt32BE(16) === 4000 && p.readUInt32BE(20) === 3000,
  },
];

let kinesis: TestKinesis;
let model: DigitModel;
let writer: KinesisStreamWriter;
let prefixes = 0;

beforeAll(async () => {
  kinesis = await startKinesalite();
  writer = new KinesisStreamWriter(kinesis.client, { maxAttempts: 2, baseDelayMs: 1 });
  model = await loadDigitModel();
});
afterAll(async () => {
  await kinesis.close();
});

/** Runs one batch through classify on fresh streams and reads back everything it wrote. */
async function classify(records: KinesisStreamRecord[]) {
  const prefix = `bad${++prefixes}-`;
  const streams: ClassifyStreams = {
    predictions: `${prefix}predictions`,
    uncertainImages: `${prefix}uncertain-images`,
    rejectedImages: `${prefix}rejected-images`,
  };
  await kinesis.createStreams(Object.values(streams));
  const result = await classifyBatch(records, { model, sink: writer, streams, config });
  return {
    result,
    predictions: (await kinesis.readJson(streams.predictions)).map((r) => predictionSchema.parse(r)) as Prediction[],
    uncertain: (await kinesis.readJson(streams.uncertainImages)).map((r) => uncertainImageSchema.parse(r)) as UncertainImage[],
    rejected: (await kinesis.readJson(streams.rejectedImages)).map((r) => rejectedImageSchema.parse(r)) as RejectedImage[],
  };
}

describe.each(rejectCases)('$name', ({ record, reason, mentions, camera }) => {
  it(`is rejected as ${reason} with an actionable sentence, and the batch carries on`, async () => {
    // Prepare: the bad record between two good frames.
    const bytes = Buffer.from(await record());
    const before = cameraRecord(json(frameBody(goodPng(), { label: 7 })));
    const bad = cameraRecord(bytes);
    const after = cameraRecord(json(frameBody(encodePng(digit(1).grey, 28, 28, 1), { label: digit(1).label })));

    // Act
    const out = await classify([before, bad, after]);

    // Assess: nothing retried, the good frames scored, exactly one reject for the bad one.
    expect(out.result.batchItemFailures).toEqual([]);
    expect(out.predictions.map((p) => [p.frame_id, p.result_class])).toEqual([
      [frameIdOf(before), 7],
      [frameIdOf(after), digit(1).label],
    ]);
    expect(out.rejected).toHaveLength(1);
    const rejected = out.rejected[0] as RejectedImage;
    expect(rejected).toMatchObject({ frame_id: frameIdOf(bad), reason, device: 'edge-bad-input' });
    expect(rejected.error).toMatch(ACTION);
    if (mentions) expect(rejected.error).toMatch(mentions);
    // Only a valid camera id is repeated in the reject; an unsafe one stays in the payload.
    expect(rejected.camera).toBe(camera);
    // The payload: the record's first bytes as received, and its full size.
    expect(rejected.payload_bytes).toBe(bytes.length);
    const kept = Buffer.from(rejected.payload, 'base64');
    expect(bytes.subarray(0, kept.length).equals(kept)).toBe(true);
    expect(kept.length).toBe(Math.min(bytes.length, 4096));
  });
});

describe.each(acceptCases)('$name', ({ png, is, extra, blank }) => {
  it(
    blank ? 'is accepted, scored blank and sent home as uncertain' : 'is accepted and scored as the digit it shows',
    async () => {
      // Prepare
      const file = await png();
      if (is) expect(is(file)).toBe(true);
      const body = json(frameBody(file, { camera: 'Camera-unusual', ...extra }));
      expect(body.length).toBeLessThan(1024 * 1024);
      const record = cameraRecord(body);

      // Act
      const out = await classify([record]);

      // Assess
      expect(out.result.batchItemFailures).toEqual([]);
      expect(out.rejected).toEqual([]);
      expect(out.predictions).toHaveLength(1);
      const prediction = out.predictions[0] as Prediction;
      expect(prediction.frame_id).toBe(frameIdOf(record));
      expect(prediction.blank).toBe(blank === true);
      if (blank) {
        expect(out.uncertain.map((u) => [u.frame_id, u.reason])).toEqual([[frameIdOf(record), 'low_confidence']]);
      } else {
        expect(prediction.result_class).toBe(digit(DIGIT).label);
      }
    },
  );
});

it('a batch holding every bad case and every unusual PNG accounts for each record once', async () => {
  // Prepare
  const bad = await Promise.all(rejectCases.map(async (c) => cameraRecord(Buffer.from(await c.record()))));
  const good = await Promise.all(acceptCases.map(async (c) => cameraRecord(json(frameBody(await c.png(), c.extra ?? {})))));
  const records = bad.flatMap((record, i) => (good[i] ? [record, good[i] as KinesisStreamRecord] : [record]));

  // Act
  const out = await classify(records);

  // Assess
  expect(out.result.batchItemFailures).toEqual([]);
  expect(out.rejected.map((r) => r.frame_id).sort()).toEqual(bad.map(frameIdOf).sort());
  expect(out.predictions.map((p) => p.frame_id).sort()).toEqual(good.map(frameIdOf).sort());
  const byReason: Record<string, number> = {};
  for (const r of out.rejected) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
  const expected: Record<string, number> = {};
  for (const c of rejectCases) expected[c.reason] = (expected[c.reason] ?? 0) + 1;
  expect(byReason).toEqual(expected);
  expect(out.result.counts).toMatchObject({ records: records.length, rejected: bad.length, predicted: good.length, failed: 0 });
});

describe('the home outputs never use a camera id as a path unsanitised', () => {
  const hostile = [
    '../../escaped',
    '..',
    '.hidden',
    'a/b',
    'a\\b',
    '/etc/passwd',
    'C:\\Windows\\evil',
    'cam\u0000era',
    'line\nbreak',
    `${'x'.repeat(300)}`,
    '%2e%2e%2fencoded',
    'con',
  ];

  it.each(hostile.map((camera) => [JSON.stringify(camera).slice(0, 40), camera]))(
    'an uncertain record from camera %s is written inside uncertain/ under a safe name',
    async (_, camera) => {
      // Prepare: a record as it could arrive on uncertain-images from any writer on the
      // served emulator, not only from classify.
      const outDir = mkdtempSync(join(tmpdir(), 'home-paths-'));
      const home = new HomeOutputs(join(outDir, 'out'));
      const body = {
        frame_id: `../${camera}`,
        camera,
        device: 'edge',
        timestamp: '2026-11-27T15:00:00Z',
        received_at: '2026-11-27T15:00:01Z',
        scored_at: '2026-11-27T15:00:01Z',
        result_class: 7,
        result_probability: 0.4,
        prep_time: 0.001,
        predict_time: 0.001,
        model_version: 'test',
        blank: false,
        image: goodPng().toString('base64'),
        prepared_image: Array.from({ length: 28 }, () => Array.from({ length: 28 }, () => 0)),
        predictions: [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0],
        reason: 'low_confidence',
      };
      const event = { Records: [cameraRecord(json(body))] } as KinesisStreamEvent;

      // Act
      await home.handlers()['uncertain-images'](event);

      // Assess: two files, both directly inside uncertain/, nothing anywhere else.
      const dir = home.path('uncertain');
      const files = readdirSync(dir);
      expect(files).toHaveLength(2);
      for (const name of files) {
        expect(name).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/);
        expect(name.length).toBeLessThanOrEqual(255);
        expect(relative(dir, resolve(dir, name))).toBe(name);
      }
      expect(readdirSync(join(outDir, 'out')).sort()).toEqual(['uncertain']);
      expect(readdirSync(outDir)).toEqual(['out']);
      expect(existsSync(join(outDir, 'escaped'))).toBe(false);
      rmSync(outDir, { recursive: true, force: true });
    },
  );
});
