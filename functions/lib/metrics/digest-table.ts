/**
 * A hash table from frame digests (the 11-character base64url form of 64 bits, seen-frames.ts)
 * to a 32-bit number, in typed arrays: 12 bytes a slot, at most half the slots used, so about
 * 24-48 bytes a digest where a Map of digest strings takes about 80 (bench/counted-frames.ts).
 * The counted-frames memory holds up to 100,000 digests per shard in every aggregator
 * container; as strings in a Map, its filling was most of a long run's growth in memory.
 *
 * Open addressing with linear probing; a deletion shifts the entries after it back, so no
 * tombstones accumulate and lookups stay short however many digests come and go. The table
 * doubles when half full and never shrinks (it is bounded by its user, which can size it for
 * its bound at the start, so its memory does not grow while it fills).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Character code -> 6-bit value, -1 outside base64url. */
const SIXTETS = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i += 1) SIXTETS[ALPHABET.charCodeAt(i)] = i;

/** Characters of a digest: 64 bits in base64url without padding. */
export const DIGEST_CHARS = 11;

const INITIAL_SLOTS = 1024;

/** The halves decodeDigest wrote last (module scope: no allocation per lookup). */
let decodedHigh = 0;
let decodedLow = 0;

/**
 * Decodes a digest's 64 bits into decodedHigh / decodedLow (big-endian halves, as the bytes
 * read). False when it is not 11 base64url characters whose last one carries no bits past the
 * 64th, the only form frameDigest makes, so no two strings share a key.
 */
function decodeDigest(digest: string): boolean {
  if (digest.length !== DIGEST_CHARS) return false;
  let high = 0;
  let low = 0;
  for (let i = 0; i < DIGEST_CHARS; i += 1) {
    const code = digest.charCodeAt(i);
    const v = code < 128 ? (SIXTETS[code] ?? -1) : -1;
    if (v < 0) return false;
    if (i < 5) high = (high << 6) | v;
    else if (i === 5) {
      high = (high << 2) | (v >>> 4);
      low = v & 15;
    } else if (i < 10) low = (low << 6) | v;
    else {
      if ((v & 3) !== 0) return false;
      low = (low << 4) | (v >>> 2);
    }
  }
  decodedHigh = high >>> 0;
  decodedLow = low >>> 0;
  return true;
}

/** True for a digest as frameDigest makes it: 11 base64url characters, no bits past the 64th. */
export function isFrameDigest(digest: string): boolean {
  return decodeDigest(digest);
}

/** A digest's 64 bits as [high, low] 32-bit halves, or undefined when it is not a digest. */
export function digestBits(digest: string): [number, number] | undefined {
  return decodeDigest(digest) ? [decodedHigh, decodedLow] : undefined;
}

/** Digest -> unsigned 32-bit value. */
export class DigestTable {
  /** Per slot: high bits, low bits, value + 1 (0 marks an empty slot). */
  private slots: Uint32Array;
  private mask: number;
  private count = 0;

  /** @param expected digests it will hold at most: the table is sized for them at once. */
  constructor(expected = 0) {
    let slots = INITIAL_SLOTS;
    while (slots < expected * 2) slots *= 2;
    this.slots = new Uint32Array(slots * 3);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes the table's arrays take (its own memory, outside the V8 heap). */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /** The value kept for the digest, or undefined (also for a string that is not a digest). */
  get(digest: string): number | undefined {
    if (!decodeDigest(digest)) return undefined;
    const slot = this.find(decodedHigh, decodedLow);
    const stored = this.slots[slot * 3 + 2] ?? 0;
    return stored === 0 ? undefined : stored - 1;
  }

  has(digest: string): boolean {
    return this.get(digest) !== undefined;
  }

  /**
   * Keeps `value` (0 to 2³² - 2) for the digest, replacing any value it had.
   *
   * @throws RangeError when `digest` is not a digest or `value` out of range.
   */
  set(digest: string, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value >= 0xffffffff) throw new RangeError(`value ${value} out of range`);
    if (!decodeDigest(digest)) throw new RangeError(`${JSON.stringify(digest)} is not an ${DIGEST_CHARS}-character frame digest`);
    const high = decodedHigh;
    const low = decodedLow;
    let slot = this.find(high, low);
    if (this.slots[slot * 3 + 2] === 0) {
      if ((this.count + 1) * 2 > this.mask + 1) {
        this.grow();
        slot = this.find(high, low);
      }
      this.count += 1;
      this.slots[slot * 3] = high;
      this.slots[slot * 3 + 1] = low;
    }
    this.slots[slot * 3 + 2] = value + 1;
  }

  /** Forgets the digest; true when it was kept. */
  delete(digest: string): boolean {
    if (!decodeDigest(digest)) return false;
    let hole = this.find(decodedHigh, decodedLow);
    if (this.slots[hole * 3 + 2] === 0) return false;
    this.count -= 1;
    // Backward shift: move each later entry of the probe run into the hole when its home slot
    // is not between the hole and where it sits, so every entry stays reachable from its home.
    let next = hole;
    for (;;) {
      next = (next + 1) & this.mask;
      if (this.slots[next * 3 + 2] === 0) break;
      const home = this.home(this.slots[next * 3] ?? 0, this.slots[next * 3 + 1] ?? 0);
      const between = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (between) continue;
      this.slots.copyWithin(hole * 3, next * 3, next * 3 + 3);
      hole = next;
    }
    this.slots.fill(0, hole * 3, hole * 3 + 3);
    return true;
  }

  /** The digest's home slot: the bits mixed (digests are uniform, but tests' are not). */
  private home(high: number, low: number): number {
    return (Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) >>> 7) & this.mask;
  }

  /** The slot holding the digest, or the empty slot where it would go. */
  private find(high: number, low: number): number {
    let slot = this.home(high, low);
    for (;;) {
      const base = slot * 3;
      if (this.slots[base + 2] === 0) return slot;
      if (this.slots[base] === high && this.slots[base + 1] === low) return slot;
      slot = (slot + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = (this.mask << 1) | 1;
    for (let base = 0; base < old.length; base += 3) {
      if (old[base + 2] === 0) continue;
      const high = old[base] ?? 0;
      const low = old[base + 1] ?? 0;
      const slot = this.find(high, low);
      this.slots[slot * 3] = high;
      this.slots[slot * 3 + 1] = low;
      this.slots[slot * 3 + 2] = old[base + 2] ?? 0;
    }
  }
}
