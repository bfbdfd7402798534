import { REJECT_PAYLOAD_BYTES, predictionSchema, rejectedImageSchema, uncertainImageSchema } from '../../functions/lib/contracts';
import {
  encodeUncertain,
  preparedImageJson,
  preparedImageRows,
  predictionRecord,
  rejectRecord,
  topClass,
  uncertainReason,
} from '../../functions/lib/route';

const rule = { confidenceThreshold: 0.7, testCameraPrefix: 'Test' };

const scores = (winner: number, p: number) => {
  const out = new Float32Array(10).fill((1 - p) / 9);
  out[winner] = p;
  return out;
};

const prediction = (overrides: Partial<Parameters<typeof predictionRecord>[0]> = {}) =>
  predictionRecord({
    frameId: 'shardId-000000000000-49590338271490256608559692538361571095921575989136588898',
    camera: 'Camera-edge1',
    device: 'edge1',
    timestamp: '2026-11-27T15:00:00.000Z',
    receivedAt: '2026-11-27T15:00:00.120Z',
    scoredAt: '2026-11-27T15:00:00.130Z',
    probabilities: scores(7, 0.95),
    prepTime: 0.0004,
    predictTime: 0.00002,
    modelVersion: 'digits-test',
    blank: false,
    ...overrides,
  });

describe('certainty filter', () => {
  it.each([
    ['confident, ordinary camera', 'Camera-a', 0.95, false, undefined],
    ['exactly at the threshold (the original used <=)', 'Camera-a', 0.7, false, 'low_confidence'],
    ['below the threshold', 'Camera-a', 0.41, false, 'low_confidence'],
    ['confident, Test camera', 'Test-a', 0.99, false, 'test_camera'],
    ['unsure Test camera: the probability says more', 'Test-a', 0.3, false, 'low_confidence'],
    ['blank frame however confident', 'Camera-a', 0.99, true, 'low_confidence'],
    ['prefix is case-sensitive as in the original', 'test-a', 0.99, false, undefined],
  ])('%s', (_, camera, probability, blank, expected) => {
    expect(uncertainReason(camera, probability, blank, rule)).toBe(expected);
  });

  it('has no Test rule when the prefix is empty', () => {
    expect(uncertainReason('Test-a', 0.99, false, { ...rule, testCameraPrefix: '' })).toBeUndefined();
  });

  it('takes the most probable class and clamps float rounding', () => {
    expect(topClass(scores(3, 0.8))).toEqual({ resultClass: 3, resultProbability: expect.closeTo(0.8, 6) });
    expect(topClass(Float32Array.from([0, 1.0000001, 0, 0, 0, 0, 0, 0, 0, 0])).resultProbability).toBe(1);
  });
});

describe('prediction and uncertain records', () => {
  it('builds a prediction that satisfies the contract, label only when known', () => {
    const withLabel = prediction({ label: 7 });
    expect(predictionSchema.parse(withLabel)).toEqual(withLabel);
    expect(withLabel).toMatchObject({ result_class: 7, label: 7 });
    expect('label' in prediction()).toBe(false);
  });

  it('writes the prepared image as 28 rows of 28 ints, row-major', () => {
    const pixels = new Uint8Array(784).map((_, i) => i % 256);
    const rows = preparedImageRows(pixels);
    expect(rows).toHaveLength(28);
    expect(rows[1]?.[0]).toBe(28);
    expect(rows[27]?.[27]).toBe(783 % 256);
    expect(JSON.parse(preparedImageJson(pixels))).toEqual(rows);
  });

  it('extends the prediction JSON into a valid uncertain record', () => {
    const p = prediction({ probabilities: scores(2, 0.5) });
    const pixels = new Uint8Array(784).fill(9);
    const { data, imageOmitted } = encodeUncertain(
      JSON.stringify(p),
      { image: 'iVBORw0KGgo=', pixels, probabilities: scores(2, 0.5), reason: 'low_confidence' },
      1024 * 1024,
    );
    const parsed = uncertainImageSchema.parse(JSON.parse(data.toString('utf8')));
    expect(imageOmitted).toBe(false);
    expect(parsed).toMatchObject({ ...p, image: 'iVBORw0KGgo=', reason: 'low_confidence' });
    expect(parsed.prepared_image[5]?.[5]).toBe(9);
    expect(parsed.predictions[2]).toBeCloseTo(0.5, 6);
    expect(parsed.image_omitted).toBeUndefined();
  });

  it('drops only the original image when the record would pass 1 MiB, and flags it', () => {
    const p = prediction();
    const image = 'A'.repeat(1024 * 1024 - 1000);
    const { data, imageOmitted } = encodeUncertain(
      JSON.stringify(p),
      { image, pixels: new Uint8Array(784), probabilities: scores(7, 0.95), reason: 'test_camera' },
      1024 * 1024 - 12,
    );
    const parsed = uncertainImageSchema.parse(JSON.parse(data.toString('utf8')));
    expect(imageOmitted).toBe(true);
    expect(parsed).toMatchObject({ image: '', image_omitted: true, frame_id: p.frame_id, reason: 'test_camera' });
    expect(data.byteLength).toBeLessThan(10_000);
  });
});

describe('reject records', () => {
  it('keeps a small payload whole', () => {
    const payload = Buffer.from('{"camera": "x", "image": ');
    const record = rejectRecord({
      frameId: 'shardId-000000000000-1',
      device: 'edge1',
      reason: 'invalid_json',
      error: 'the record is not valid JSON',
      payload,
      receivedAt: '2026-11-27T15:00:00.000Z',
    });
    expect(rejectedImageSchema.parse(record)).toEqual(record);
    expect(Buffer.from(record.payload, 'base64').equals(payload)).toBe(true);
    expect(record).toMatchObject({ payload_bytes: payload.length, payload_truncated: false });
    expect('camera' in record).toBe(false);
  });

  it(`truncates the payload to its first ${REJECT_PAYLOAD_BYTES} bytes and says how big it was`, () => {
    const payload = Buffer.alloc(10_000, 0x41);
    payload[0] = 0x42;
    const record = rejectRecord({
      frameId: 'f',
      camera: 'Camera-a',
      timestamp: '2026-11-27T15:00:00Z',
      device: 'edge1',
      reason: 'corrupt_png',
      error: 'the PNG is truncated',
      payload,
      receivedAt: '2026-11-27T15:00:00.000Z',
    });
    const kept = Buffer.from(record.payload, 'base64');
    expect(kept.length).toBe(REJECT_PAYLOAD_BYTES);
    expect(kept[0]).toBe(0x42);
    expect(record).toMatchObject({ payload_bytes: 10_000, payload_truncated: true, camera: 'Camera-a' });
  });
});
