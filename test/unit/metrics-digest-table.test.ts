/**
 * The counted-frames memory's index: frame digests to numbers in typed arrays. It must answer
 * exactly as a Map would through any mix of sets and deletes (deletion moves entries, so a
 * wrong shift would lose one), and read each digest's 64 bits as its bytes say.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DigestTable, digestBits, isFrameDigest } from '../../functions/lib/metrics/digest-table';
import { frameDigest } from '../../functions/lib/metrics/seen-frames';

const digestOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

describe('digestBits', () => {
  it('reads the 64 bits of any digest as its bytes, big-endian', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (bytes) => {
        const buffer = Buffer.from(bytes);
        expect(digestBits(digestOf(bytes))).toEqual([buffer.readUInt32BE(0), buffer.readUInt32BE(4)]);
      }),
      { numRuns: 2000 },
    );
  });

  it('takes the digests frameDigest makes', () => {
    for (const id of ['cam-1/0', 'shardId-000000000000-1-49', '', 'ünïcode']) expect(isFrameDigest(frameDigest(id))).toBe(true);
  });

  it('refuses what is not a digest, so no two strings share a key', () => {
    const valid = frameDigest('frame');
    expect(digestBits(valid.slice(0, 10))).toBeUndefined();
    expect(digestBits(`${valid}A`)).toBeUndefined();
    expect(digestBits(`${valid.slice(0, 10)}=`)).toBeUndefined();
    expect(digestBits(`${valid.slice(0, 10)}é`)).toBeUndefined();
    expect(digestBits('AAAAAAAAAA+')).toBeUndefined();
    // The last character carries 4 bits of the 64th and two zero bits: 'B' sets one of those.
    expect(digestBits('AAAAAAAAAAB')).toBeUndefined();
    expect(digestBits('AAAAAAAAAAE')).toEqual([0, 1]);
  });
});

describe('DigestTable', () => {
  /** Digests of a small pool, so sets and deletes often meet the same keys and long probe runs form. */
  const pool = Array.from({ length: 300 }, (_, i) => frameDigest(`frame-${i}`));
  const operation = fc.oneof(
    fc.record({ op: fc.constant('set' as const), key: fc.nat(pool.length - 1), value: fc.nat(1_000_000) }),
    fc.record({ op: fc.constant('delete' as const), key: fc.nat(pool.length - 1) }),
  );

  it('answers as a Map does through any sequence of sets and deletes', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 1500 }), (operations) => {
        const table = new DigestTable();
        const model = new Map<string, number>();
        for (const o of operations) {
          const digest = pool[o.key] as string;
          if (o.op === 'set') {
            table.set(digest, o.value);
            model.set(digest, o.value);
          } else expect(table.delete(digest)).toBe(model.delete(digest));
        }
        expect(table.size).toBe(model.size);
        for (const digest of pool) expect(table.get(digest)).toBe(model.get(digest));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps every entry through growth and a churn of deletes far past its first size', () => {
    const table = new DigestTable();
    const kept: string[] = [];
    for (let i = 0; i < 20_000; i += 1) {
      const digest = digestOf(randomBytes(8));
      table.set(digest, i);
      kept.push(digest);
      // Forget the oldest as the counted-frames memory does, keeping 5,000.
      if (kept.length > 5_000) expect(table.delete(kept.shift() as string)).toBe(true);
    }
    expect(table.size).toBe(5_000);
    for (const [i, digest] of kept.entries()) expect(table.get(digest)).toBe(15_000 + i);
    // Half full at most: 5,000 entries took 16,384 slots at their peak of growth, not more.
    expect(table.bytes).toBeLessThanOrEqual(16_384 * 12);
  });

  it('answers undefined for strings that are not digests, and refuses to keep them', () => {
    const table = new DigestTable();
    expect(table.get('not a digest')).toBeUndefined();
    expect(table.delete('not a digest')).toBe(false);
    expect(() => table.set('not a digest', 1)).toThrow(RangeError);
    expect(() => table.set(frameDigest('a'), -1)).toThrow(RangeError);
    expect(() => table.set(frameDigest('a'), 0xffffffff)).toThrow(RangeError);
    table.set(frameDigest('a'), 0xfffffffe);
    expect(table.get(frameDigest('a'))).toBe(0xfffffffe);
  });
});
