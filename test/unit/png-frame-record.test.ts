/**
 * PNG records: a `camera-images` record that is the PNG file itself, camera, timestamp and
 * label in tEXt chunks. Checked like JSON records, field by field.
 */
import { crc32 } from 'node:zlib';
import { encodePngRecord, isPngRecord, readPngRecordText } from '../../functions/lib/png-frame-record';
import { encodePng, pngChunk, readPngChunks } from '../../functions/lib/png';
import { checkFrame } from '../../functions/lib/validate-frame';

const NOW = Date.parse('2026-11-27T15:00:00.000Z');
const options = { nowMs: NOW, maxFutureSkewSeconds: 300 };
const png = encodePng(new Uint8Array(28 * 28).fill(200), 28, 28, 1);
const fields = { camera: 'Camera-edge1', timestamp: '2026-11-27T14:59:59.000Z' };

/** A PNG with the given tEXt chunks (keyword, value) after IHDR. */
function withText(chunks: Array<[string, string]>, base: Buffer = png): Buffer {
  const text = chunks.map(([k, v]) =>
    pngChunk('tEXt', Buffer.concat([Buffer.from(k, 'latin1'), Buffer.from([0]), Buffer.from(v, 'latin1')])),
  );
  return Buffer.concat([base.subarray(0, 33), ...text, base.subarray(33)]);
}

describe('encodePngRecord', () => {
  it('keeps a valid PNG whose pixels are untouched and whose fields read back', () => {
    const record = encodePngRecord(png, { ...fields, label: 7 });
    expect(isPngRecord(record)).toBe(true);
    expect(readPngChunks(record).idat).toEqual(readPngChunks(png).idat);
    expect(readPngRecordText(record)).toEqual({ ok: true, text: { ...fields, label: '7' } });
    expect(readPngRecordText(encodePngRecord(png, { ...fields, label: null }))).toEqual({ ok: true, text: fields });
  });

  it('replaces the fields a PNG already carries instead of repeating them', () => {
    const first = encodePngRecord(png, { ...fields, label: 1 });
    const again = encodePngRecord(first, { camera: 'Camera-edge2', timestamp: fields.timestamp });
    expect(readPngRecordText(again)).toEqual({ ok: true, text: { camera: 'Camera-edge2', timestamp: fields.timestamp } });
    expect(again.length).toBe(encodePngRecord(png, { camera: 'Camera-edge2', timestamp: fields.timestamp }).length);
  });

  it('refuses bytes that are not a PNG', () => {
    expect(() => encodePngRecord(Buffer.from('{"image":""}'), fields)).toThrow(/not a PNG/);
  });
});

describe('checkFrame on PNG records', () => {
  it('accepts one, with the record itself as the PNG and no base64 to copy', () => {
    const record = encodePngRecord(png, { ...fields, label: 3 });
    const result = checkFrame(record, options);
    expect(result).toMatchObject({ ok: true, frame: { ...fields, label: 3 } });
    if (!result.ok) return;
    expect(result.png.equals(record)).toBe(true);
    expect(result.imageBase64).toBeUndefined();
  });

  it('ignores other text chunks and our keywords after the image data', () => {
    const record = withText([
      ['Software', 'camera firmware 2.1'],
      ['camera', 'Camera-edge1'],
      ['timestamp', fields.timestamp],
    ]);
    const iend = record.length - 12;
    const late = Buffer.concat([
      record.subarray(0, iend),
      pngChunk('tEXt', Buffer.from('label\u0000not-a-digit', 'latin1')),
      record.subarray(iend),
    ]);
    expect(checkFrame(late, options)).toMatchObject({ ok: true, frame: fields });
  });

  it.each([
    ['no text chunks at all', png, 'invalid_record', /no camera or timestamp text chunk/],
    ['no timestamp', withText([['camera', 'Camera-edge1']]), 'invalid_record', /no timestamp text chunk/],
    [
      'an unsafe camera id',
      withText([
        ['camera', '../etc'],
        ['timestamp', fields.timestamp],
      ]),
      'invalid_camera',
      /not allowed/,
    ],
    [
      'a timestamp that is not ISO-8601',
      withText([
        ['camera', 'c1'],
        ['timestamp', 'yesterday'],
      ]),
      'invalid_timestamp',
      /ISO-8601/,
    ],
    [
      'a timestamp far in the future',
      withText([
        ['camera', 'c1'],
        ['timestamp', '2027-01-01T00:00:00Z'],
      ]),
      'future_timestamp',
      /future/,
    ],
    [
      'a label that is not a digit',
      withText([
        ['camera', 'c1'],
        ['timestamp', fields.timestamp],
        ['label', '12'],
      ]),
      'invalid_label',
      /digit/,
    ],
    [
      'a camera given twice',
      withText([
        ['camera', 'c1'],
        ['camera', 'c2'],
        ['timestamp', fields.timestamp],
      ]),
      'invalid_record',
      /two camera text chunks/,
    ],
  ])('rejects %s', (_, record, reason, error) => {
    const result = checkFrame(record, options);
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.error).toMatch(error);
  });

  it('rejects a damaged field chunk instead of trusting it', () => {
    const record = encodePngRecord(png, fields);
    const damaged = Buffer.from(record);
    const at = damaged.indexOf('Camera-edge1', 0, 'latin1');
    damaged[at] = 'K'.charCodeAt(0); // Kamera-edge1: still a valid id, but the CRC no longer matches
    expect(crc32(damaged)).not.toBe(crc32(record));
    expect(checkFrame(damaged, options)).toMatchObject({
      ok: false,
      reason: 'invalid_record',
      error: expect.stringMatching(/camera text chunk is damaged/),
    });
  });

  it('keeps the camera id it could read for the reject record', () => {
    expect(
      checkFrame(
        withText([
          ['camera', 'Camera-edge1'],
          ['timestamp', 'soon'],
        ]),
        options,
      ),
    ).toMatchObject({
      ok: false,
      camera: 'Camera-edge1',
      timestamp: 'soon',
    });
  });
});
