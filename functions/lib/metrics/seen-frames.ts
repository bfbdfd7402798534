/**
 * The frames a metrics window has counted, so a prediction (or reject) delivered twice within
 * the window counts once. Kept in the window state Lambda carries between invocations, which
 * is capped at 1 MB per shard, so each frame id is stored as a 64-bit digest in 11 base64url
 * characters, all concatenated in one string: {@link SEEN_FRAME_BYTES} bytes per frame.
 *
 * Bounded: at most {@link MAX_SEEN_FRAMES} ids per window and shard (550 kB of state). Frames
 * past that are still counted, without the check, and reported as `unchecked`. Two different
 * frame ids share a digest with probability n²/2⁶⁵ (about 7e-11 for 50,000 frames); the
 * second would be taken for a duplicate.
 *
 * A frame counted by an earlier window's document is caught by counted-frames.ts, which
 * remembers the digests of closed windows beyond the window's end.
 */
import { createHash } from 'node:crypto';

/** Characters (= bytes of state) per remembered frame. */
export const SEEN_FRAME_BYTES = 11;

/** Frame ids remembered per window and shard; see the module comment. */
export const MAX_SEEN_FRAMES = 50_000;

/** The 11-character digest of a frame id. */
export function frameDigest(frameId: string): string {
  return createHash('sha256').update(frameId).digest().subarray(0, 8).toString('base64url');
}

/** A set of frame digests that converts to and from its compact state string. */
export class SeenFrames {
  private readonly digests = new Set<string>();

  /** Rebuilds the set from {@link SeenFrames.toState}'s string; throws a RangeError on a malformed one. */
  static fromState(state: string): SeenFrames {
    if (state.length % SEEN_FRAME_BYTES !== 0 || !/^[A-Za-z0-9_-]*$/.test(state)) {
      throw new RangeError(
        `seen-frames state of ${state.length} characters is not a list of ${SEEN_FRAME_BYTES}-character digests`,
      );
    }
    const seen = new SeenFrames();
    for (let i = 0; i < state.length; i += SEEN_FRAME_BYTES) seen.digests.add(state.slice(i, i + SEEN_FRAME_BYTES));
    return seen;
  }

  get size(): number {
    return this.digests.size;
  }

  /**
   * Notes a frame: 'new' the first time, 'duplicate' after that (or when `countedBefore` says
   * an earlier window's document counted it: then it is not remembered here), 'unchecked'
   * once the set is full (the frame is not remembered and cannot be checked).
   */
  note(frameId: string, countedBefore?: (digest: string) => boolean): 'new' | 'duplicate' | 'unchecked' {
    const digest = frameDigest(frameId);
    if (this.digests.has(digest)) return 'duplicate';
    if (countedBefore?.(digest)) return 'duplicate';
    if (this.digests.size >= MAX_SEEN_FRAMES) return 'unchecked';
    this.digests.add(digest);
    return 'new';
  }

  toState(): string {
    return [...this.digests].join('');
  }
}
