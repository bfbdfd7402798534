import { checkFrame } from '../../functions/lib/validate-frame';

const NOW = Date.parse('2026-11-27T15:00:00.000Z');
const options = { nowMs: NOW, maxFutureSkewSeconds: 300 };
const PNG_B64 = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]).toString('base64');

const good = { image: PNG_B64, camera: 'Camera-edge1', timestamp: '2026-11-27T14:59:59.000Z' };
const bytes = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

describe('checkFrame accepts', () => {
  it('a well-formed frame, returning the decoded PNG bytes', () => {
    const result = checkFrame(bytes({ ...good, label: 3 }), options);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const { image, ...fields } = good;
    expect(result.frame).toEqual({ ...fields, label: 3 });
    expect(result.imageBase64).toBe(image);
    expect(result.png.equals(Buffer.from(PNG_B64, 'base64'))).toBe(true);
  });

  it.each([
    ['unknown extra fields (ignored)', { ...good, exposure: 12, meta: { a: 1 } }],
    ['an offset timestamp', { ...good, timestamp: '2026-11-27T16:00:00+01:00' }],
    ['a timestamp within the allowed clock skew', { ...good, timestamp: '2026-11-27T15:04:59Z' }],
    ['unpadded base64', { ...good, image: PNG_B64.replace(/=+$/, '') }],
  ])('%s', (_, value) => {
    expect(checkFrame(bytes(value), options).ok).toBe(true);
  });
});

describe('checkFrame rejects', () => {
  it.each([
    ['invalid JSON', '{"image": "abc", "camera": ', 'invalid_json'],
    ['a JSON array', [good], 'invalid_record'],
    ['JSON null', 'null', 'invalid_record'],
    ['a JSON string', '"hello"', 'invalid_record'],
    ['a missing image', { camera: good.camera, timestamp: good.timestamp }, 'invalid_record'],
    ['a missing camera', { image: good.image, timestamp: good.timestamp }, 'invalid_record'],
    ['a numeric image', { ...good, image: 12 }, 'invalid_record'],
    ['a camera with a slash', { ...good, camera: '../../etc/passwd' }, 'invalid_camera'],
    ['a camera with a control character', { ...good, camera: 'cam\u0007era' }, 'invalid_camera'],
    ['a camera with a space', { ...good, camera: 'my camera' }, 'invalid_camera'],
    ['a camera id of 129 characters', { ...good, camera: 'c'.repeat(129) }, 'invalid_camera'],
    ['a numeric camera', { ...good, camera: 7 }, 'invalid_camera'],
    ['a garbage timestamp', { ...good, timestamp: 'yesterday' }, 'invalid_timestamp'],
    ['a timestamp without a zone', { ...good, timestamp: '2026-11-27T15:00:00' }, 'invalid_timestamp'],
    ['an impossible date', { ...good, timestamp: '2026-02-30T10:00:00Z' }, 'invalid_timestamp'],
    ['a timestamp beyond the skew', { ...good, timestamp: '2026-11-27T15:05:01Z' }, 'future_timestamp'],
    ['a timestamp years ahead', { ...good, timestamp: '2099-01-01T00:00:00Z' }, 'future_timestamp'],
    ['label 10', { ...good, label: 10 }, 'invalid_label'],
    ['label 2.5', { ...good, label: 2.5 }, 'invalid_label'],
    ['label "3"', { ...good, label: '3' }, 'invalid_label'],
    ['an empty image', { ...good, image: '' }, 'image_empty'],
    ['an image of padding only', { ...good, image: '====' }, 'image_not_base64'],
    ['an image with spaces', { ...good, image: `${PNG_B64.slice(0, 4)} ${PNG_B64.slice(4)}` }, 'image_not_base64'],
    ['an image with a quote', { ...good, image: `${PNG_B64}"` }, 'image_not_base64'],
    ['an image whose length no base64 can have (4n+1)', { ...good, image: 'QUJDR' }, 'image_not_base64'],
    ['padding in the middle', { ...good, image: `QQ==${PNG_B64}` }, 'image_not_base64'],
  ])('%s', (_, value, reason) => {
    const result = checkFrame(bytes(value), options);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe(reason);
    expect(result.error.length).toBeGreaterThan(20);
  });

  it('rejects a record over 1 MiB before parsing it', () => {
    const result = checkFrame(bytes({ ...good, image: 'A'.repeat(1024 * 1024) }), options);
    expect(result).toMatchObject({ ok: false, reason: 'record_too_large' });
  });

  it('keeps what it could read of camera and timestamp, but never an unsafe camera id', () => {
    expect(checkFrame(bytes({ ...good, label: 11 }), options)).toMatchObject({
      ok: false,
      camera: good.camera,
      timestamp: good.timestamp,
    });
    const unsafe = checkFrame(bytes({ ...good, camera: 'a/b' }), options);
    expect(unsafe).toMatchObject({ ok: false, reason: 'invalid_camera', timestamp: good.timestamp });
    expect('camera' in unsafe).toBe(false);
    const long = checkFrame(bytes({ ...good, timestamp: 'x'.repeat(5000) }), options);
    expect(long.ok ? '' : long.timestamp).toHaveLength(64);
  });
});
