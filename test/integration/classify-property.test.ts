/**
 * Property: whatever bytes arrive on camera-images, the classify stage neither crashes nor
 * loses a frame. Every record ends in exactly one of predictions / rejected-images (by
 * frame_id), uncertain-images only holds predicted frames, and no record is failed.
 */
import fc from 'fast-check';
import type { KinesisStreamRecord } from 'aws-lambda';
import { type ClassifyStreams, classifyBatch } from '../../functions/lib/classify-batch';
import { loadConfig } from '../../functions/lib/config';
import { predictionSchema, rejectedImageSchema, uncertainImageSchema } from '../../functions/lib/contracts';
import { REJECT_REASONS } from '../../functions/lib/errors';
import { type DigitModel, loadDigitModel } from '../../functions/lib/model';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { pngChunk } from '../../functions/lib/png';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';

const mnist = loadMnist('t10k');
const realPng = (index: number) => renderOriginalFrameSync(mnistImage(mnist, index));

let sequence = 1n;
function kinesisRecord(data: Uint8Array): KinesisStreamRecord {
  sequence += 1n;
  const sequenceNumber = (49659580453262040838183519227452711853474233516389318658n + sequence).toString();
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: 'any',
      sequenceNumber,
      data: Buffer.from(data).toString('base64'),
      approximateArrivalTimestamp: 1_764_255_600,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `shardId-000000000001:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/classify',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/camera-images',
  };
}

/** PNG-ish images: real ones, real ones with bytes changed or cut, and arbitrary bytes. */
const imageBytes = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 9999 }).map(realPng) },
  fc
    .tuple(
      fc.integer({ min: 0, max: 9999 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    )
    .map(([index, edits]) => {
      const png = Buffer.from(realPng(index));
      for (const [at, value] of edits) png[at % png.length] = value;
      return png;
    }),
  fc.tuple(fc.integer({ min: 0, max: 9999 }), fc.nat()).map(([index, cut]) => {
    const png = realPng(index);
    return png.subarray(0, cut % png.length);
  }),
  fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)),
);

/** Mostly valid fields (so most frames reach preparation and scoring), sometimes not. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
  fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: invalid });

const frameObject = fc.record(
  {
    image: mostly(
      imageBytes.map((b) => b.toString('base64')),
      fc.oneof(fc.string(), fc.integer(), fc.constant('')),
    ),
    camera: mostly(
      fc.constantFrom('Camera-edge1', 'Test-edge1', 'Camera-edge2'),
      fc.oneof(fc.string({ maxLength: 140 }), fc.constant(null), fc.constant('../etc/passwd')),
    ),
    timestamp: mostly(
      fc
        .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2026-01-01T00:00:00Z'), noInvalidDate: true })
        .map((d) => d.toISOString()),
      fc.oneof(fc.string({ maxLength: 40 }), fc.constant('2999-01-01T00:00:00Z')),
    ),
    label: mostly(
      fc.integer({ min: 0, max: 9 }),
      fc.oneof(fc.integer({ min: -2, max: 12 }), fc.double(), fc.string({ maxLength: 2 })),
    ),
    extra: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: ['image', 'camera', 'timestamp'] },
);

/** A tEXt chunk from any keyword and value bytes (Latin-1 or not, NULs included). */
const textChunk = fc
  .tuple(
    fc.oneof(fc.constantFrom('camera', 'timestamp', 'label'), fc.string({ maxLength: 12 })),
    fc.oneof(fc.string({ maxLength: 60 }), fc.uint8Array({ maxLength: 80 })),
  )
  .map(([keyword, value]) =>
    pngChunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(value)])),
  );

/**
 * PNG records: a PNG-ish image with mostly valid camera / timestamp / label chunks after its
 * first 33 bytes (where IHDR ends in a real PNG), sometimes other or repeated text chunks, and
 * sometimes bytes changed anywhere afterwards (damaging a field chunk's CRC or its length).
 */
const pngRecord = fc
  .tuple(
    imageBytes,
    frameObject,
    fc.array(textChunk, { maxLength: 3 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
  )
  .map(([image, fields, extra, edits]) => {
    const chunks = [...extra];
    if (typeof fields.camera === 'string') chunks.push(pngChunk('tEXt', Buffer.from(`camera\u0000${fields.camera}`, 'latin1')));
    if (typeof fields.timestamp === 'string')
      chunks.push(pngChunk('tEXt', Buffer.from(`timestamp\u0000${fields.timestamp}`, 'latin1')));
    if (fields.label !== undefined) chunks.push(pngChunk('tEXt', Buffer.from(`label\u0000${String(fields.label)}`, 'latin1')));
    const record = Buffer.concat([image.subarray(0, 33), ...chunks, image.subarray(33)]);
    for (const [at, value] of edits) record[8 + (at % Math.max(1, record.length - 8))] = value;
    return record;
  });

/** Record payloads: valid-looking frames as JSON and as PNG records, arbitrary JSON, arbitrary bytes. */
const payload = fc.oneof(
  { weight: 3, arbitrary: frameObject.map((o) => Buffer.from(JSON.stringify(o))) },
  { weight: 2, arbitrary: pngRecord },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }).map((text) => Buffer.from(text)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)) },
);

let kinesis: TestKinesis;
let model: DigitModel;
const streams: ClassifyStreams = {
  predictions: 'p-predictions',
  uncertainImages: 'p-uncertain-images',
  rejectedImages: 'p-rejected-images',
};
const config = loadConfig({ DEVICE_ID: 'edge-property' });

beforeAll(async () => {
  kinesis = await startKinesalite();
  await kinesis.createStreams(Object.values(streams));
  model = await loadDigitModel();
});
afterAll(async () => {
  await kinesis.close();
});

it('accounts for every record of any batch, never crashing and never failing a record', async () => {
  const writer = new KinesisStreamWriter(kinesis.client);
  await fc.assert(
    fc.asyncProperty(fc.array(payload, { minLength: 1, maxLength: 16 }), async (payloads) => {
      const records = payloads.map(kinesisRecord);
      const ids = new Set(records.map((r) => `shardId-000000000001-${r.kinesis.sequenceNumber}`));

      const result = await classifyBatch(records, { model, sink: writer, streams, config });

      expect(result.batchItemFailures).toEqual([]);
      const mine = <T extends { frame_id: string }>(rows: T[]) => rows.filter((r) => ids.has(r.frame_id));
      const predicted = mine((await kinesis.readJson(streams.predictions)).map((r) => predictionSchema.parse(r)));
      const rejected = mine((await kinesis.readJson(streams.rejectedImages)).map((r) => rejectedImageSchema.parse(r)));
      const uncertain = mine((await kinesis.readJson(streams.uncertainImages)).map((r) => uncertainImageSchema.parse(r)));
      const landed = [...predicted, ...rejected].map((r) => r.frame_id).sort();
      expect(landed).toEqual([...ids].sort());
      const predictedIds = new Set(predicted.map((p) => p.frame_id));
      expect(uncertain.every((u) => predictedIds.has(u.frame_id))).toBe(true);
      for (const r of rejected) {
        expect(REJECT_REASONS).toContain(r.reason);
        expect(r.error.length).toBeGreaterThan(10);
      }
    }),
    { numRuns: 60, seed: 20261127 },
  );
});
