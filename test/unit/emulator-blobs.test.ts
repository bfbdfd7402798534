/**
 * The emulator decodes a record's base64 once, before kinesalite's type check: it must accept
 * exactly the text kinesalite's Blob check accepts, with the same bytes, and leave the rest to
 * kinesalite's own error.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import fc from 'fast-check';

const localRequire = createRequire(__filename);
const validations = localRequire(join(dirname(localRequire.resolve('kinesalite')), 'validations')) as {
  checkTypes(data: object, types: object): Record<string, unknown>;
};
const { canonicalBase64, canonicalBase64Bytes, lighten } = localRequire('../../local/emulator/kinesalite-blobs.js') as {
  canonicalBase64(text: string): Buffer | undefined;
  canonicalBase64Bytes(body: Buffer, start: number, end: number): Buffer | undefined;
  lighten(request: { headers: Record<string, string> }, body: Buffer): { body: Buffer; blobs: Buffer[] } | undefined;
};

const putRecords = {
  headers: { 'x-amz-target': 'Kinesis_20131202.PutRecords', 'content-type': 'application/x-amz-json-1.1' },
};

/** What kinesalite would see: the light body parsed, each emptied Data given its bytes back in order. */
function restored(light: { body: Buffer; blobs: Buffer[] }): unknown {
  const parsed = JSON.parse(light.body.toString('utf8')) as { Records: Array<{ Data: unknown }> };
  parsed.Records.forEach((record, k) => {
    expect(record.Data).toBe('');
    record.Data = light.blobs[k];
  });
  return parsed;
}

/** kinesalite's own verdict on `text` as a Blob (this file never installs the emulator's patches). */
function kinesaliteAccepts(text: string): boolean {
  try {
    validations.checkTypes({ Data: text }, { Data: { type: 'Blob' } });
    return true;
  } catch {
    return false;
  }
}

describe('decoding record data once', () => {
  it("accepts exactly what kinesalite's Blob check accepts, with the same bytes", () => {
    const alphabet = fc.constantFrom('A', 'Q', 'R', 'g', 'w', 'z', '0', '9', '+', '/', '=', '-', '_', ' ', '\n', '.', 'é');
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 16 }), fc.nat(3), (text, margin) => {
        const accepted = kinesaliteAccepts(text);
        const bytes = canonicalBase64(text);
        // The same text read from a request's bytes, between other bytes.
        const body = Buffer.concat([Buffer.alloc(margin, 61), Buffer.from(text, 'utf8'), Buffer.alloc(margin, 61)]);
        const fromBody = canonicalBase64Bytes(body, margin, body.length - margin);
        expect([text, bytes !== undefined, fromBody !== undefined]).toEqual([text, accepted, accepted]);
        if (bytes) expect(bytes.equals(Buffer.from(text, 'base64'))).toBe(true);
        if (fromBody) expect(fromBody.equals(Buffer.from(text, 'base64'))).toBe(true);
      }),
      { numRuns: 5000, seed: 20261206 },
    );
  });

  it('accepts the base64 of any bytes, and refuses a non-canonical last quantum as kinesalite does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (data) => {
        const text = Buffer.from(data).toString('base64');
        expect(canonicalBase64(text)?.equals(Buffer.from(data))).toBe(true);
      }),
      { numRuns: 500, seed: 7 },
    );
    // Values longer than one 64 kB slice, spoilt in the middle of the second slice.
    const data = Buffer.from(Array.from({ length: 150_000 }, (_, i) => (i * 7919) % 256));
    const text = data.toString('base64');
    const whole = Buffer.from(text);
    expect(canonicalBase64Bytes(whole, 0, whole.length)?.equals(data)).toBe(true);
    for (const spoiler of [' ', '=', '-', '_', '\n', '"']) {
      const spoilt = Buffer.from(`${text.slice(0, 70_001)}${spoiler}${text.slice(70_002)}`);
      expect([spoiler, canonicalBase64Bytes(spoilt, 0, spoilt.length)]).toEqual([spoiler, undefined]);
      expect([spoiler, kinesaliteAccepts(spoilt.toString())]).toEqual([spoiler, false]);
    }
    for (const text of ['QR==', 'QUJ=', 'A===', '====', 'QQ=Q', 'QQ', 'QQ== ']) {
      expect([text, canonicalBase64(text)]).toEqual([text, undefined]);
      expect([text, kinesaliteAccepts(text)]).toEqual([text, false]);
    }
  });

  it('takes record data from the raw bytes of a put only when the body parses back to the same request', () => {
    const text = fc.constantFrom('cam', 'a"b', '"Data":"', 'x\\', '\\"Data\\":\\"QUJD', 'é', '');
    const record = fc.record({
      PartitionKey: fc.string({ unit: text, minLength: 1, maxLength: 4 }),
      Data: fc.constantFrom(0, 3, 30_000, 70_000).chain((n) => fc.integer({ min: 0, max: 255 }).map((b) => Buffer.alloc(n, b))),
    });
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 5 }), (records) => {
        const request = { StreamName: 'frames', Records: records.map((r) => ({ ...r, Data: r.Data.toString('base64') })) };
        const light = lighten(putRecords, Buffer.from(JSON.stringify(request)));
        const total = records.reduce((sum, r) => sum + r.Data.length, 0);
        if (total >= 30_000) expect(light).toBeDefined();
        if (!light) return;
        const back = restored(light) as { StreamName: string; Records: Array<{ PartitionKey: string; Data: Buffer }> };
        expect(back.StreamName).toBe('frames');
        expect(back.Records.map((r) => r.PartitionKey)).toEqual(records.map((r) => r.PartitionKey));
        expect(back.Records.every((r, k) => r.Data.equals(records[k]?.Data ?? Buffer.alloc(1)))).toBe(true);
      }),
      { numRuns: 150, seed: 11 },
    );
  });

  it('leaves to kinesalite any body whose data it cannot put back exactly, and every other request', () => {
    const big = Buffer.alloc(40_000, 1).toString('base64');
    const cases = [
      `{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"${big}","Data":"${big}"}]}`, // a duplicate key
      `{"StreamName":"s","Data":"${big}","Records":[{"PartitionKey":"a","Data":"QUJD"}]}`, // Data outside a record
      `{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"${big.slice(0, -4)}QR=="}]}`, // not canonical
      `{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"${big} "}]}`, // not base64
      `{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"${big}"}]`, // not JSON
      `{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"QUJD"}]}`, // too small to gain anything
    ];
    for (const body of cases) expect(lighten(putRecords, Buffer.from(body))).toBeUndefined();
    const good = Buffer.from(`{"StreamName":"s","Records":[{"PartitionKey":"a","Data":"${big}"}]}`);
    expect(lighten(putRecords, good)).toBeDefined();
    expect(lighten({ headers: { ...putRecords.headers, 'x-amz-target': 'Kinesis_20131202.GetRecords' } }, good)).toBeUndefined();
    expect(lighten({ headers: { ...putRecords.headers, 'content-type': 'application/x-amz-cbor-1.1' } }, good)).toBeUndefined();
  });
});
