/**
 * The emulator's BigInt fast paths must behave exactly like kinesalite's own helpers: same
 * sequence numbers, same parsed fields, same errors, same hash-key ordering.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { seededRandom } from '../../training/rng';

type SeqObj = Record<string, unknown>;
interface Db {
  parseSequence(seq: unknown): SeqObj;
  stringifySequence(obj: SeqObj): string;
  partitionKeyToHashKey(key: string): { comparedTo(other: unknown): number };
  __fastPaths?: Pick<Db, 'parseSequence' | 'stringifySequence' | 'partitionKeyToHashKey'>;
}

const localRequire = createRequire(__filename);
const kinesaliteDir = dirname(localRequire.resolve('kinesalite'));
const db = localRequire(join(kinesaliteDir, 'db')) as Db;
const fast = localRequire('../../local/emulator/kinesalite-fast-paths.js') as { install(db?: Db): Db };
fast.install(db);
const original = db.__fastPaths as NonNullable<Db['__fastPaths']>;
const BigNumber = localRequire(localRequire.resolve('bignumber.js', { paths: [kinesaliteDir] })) as new (
  v: string,
) => {
  div(n: number): { integerValue(mode: number): { times(n: number): { toFixed(): string } } };
};

/** Seeded draws (mulberry32), so a run repeats exactly. */
const rng = seededRandom;

const outcome = <T>(f: () => T): { value?: T; error?: string } => {
  try {
    return { value: f() };
  } catch (error: unknown) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
};

describe('kinesalite fast paths', () => {
  it('is installed on the module kinesalite actions use', () => {
    expect(db.parseSequence).not.toBe(original.parseSequence);
  });

  it('stringifies and parses sequence numbers exactly as kinesalite does', () => {
    const random = rng(7);
    const now = Date.now();
    for (let i = 0; i < 3000; i++) {
      const shardCreateTime = Math.floor((now - random() * 1e10) / 1000) * 1000;
      const obj: SeqObj = {
        shardCreateTime,
        shardIx: i % 5 === 0 ? 0 : Math.floor(random() * 2000),
        seqIx:
          i % 3 === 0 ? Math.floor(random() * 1e6) : String(Math.floor(random() * 2 ** 52) * 1000 + Math.floor(random() * 1000)),
        seqTime: i % 7 === 0 ? undefined : shardCreateTime + Math.floor(random() * 1e9),
        ...(i % 11 === 0 ? { version: 1, seqRand: '0123456789abcd' } : {}),
        ...(i % 13 === 0 ? { version: 0, seqRand: '0123456789abcdef' } : {}),
      };
      const expected = outcome(() => original.stringifySequence(obj));
      expect(outcome(() => db.stringifySequence(obj))).toEqual(expected);
      if (expected.value !== undefined) {
        const seq = expected.value;
        expect(outcome(() => db.parseSequence(seq))).toEqual(outcome(() => original.parseSequence(seq)));
      }
    }
  });

  it.each([[''], ['abc'], ['1.5'], ['-5'], ['0'], ['1'], ['9'.repeat(60)], ['12345678901234567890'], ['4'.repeat(56)]])(
    'treats the odd sequence number %j the same way',
    (seq) => {
      expect(outcome(() => db.parseSequence(seq))).toEqual(outcome(() => original.parseSequence(seq)));
    },
  );

  it('orders partition-key hashes against shard ranges as kinesalite does', () => {
    const random = rng(11);
    const pow128 = new BigNumber('340282366920938463463374607431768211456');
    const bounds = [1, 2, 3, 7, 10].flatMap((shards) =>
      Array.from({ length: shards + 1 }, (_, i) => pow128.div(shards).integerValue(1).times(i).toFixed()),
    );
    for (let i = 0; i < 500; i++) {
      const key = i % 10 === 0 ? `Camera-${i % 3}` : Math.floor(random() * 1e12).toString(36);
      const a = db.partitionKeyToHashKey(key);
      const b = original.partitionKeyToHashKey(key);
      for (const bound of bounds) expect(a.comparedTo(bound)).toBe(b.comparedTo(bound));
    }
  });
});
