/**
 * The frames that earlier metrics documents of a shard counted, so a frame delivered again in a
 * *later* tumbling window is not counted a second time.
 *
 * Why this is needed: windows follow the arrival time of the records, and a redelivered frame
 * (a classify batch retried, or a pipeline killed and restarted: the records after its last
 * checkpoint are scored again) is written again with a new arrival time, so it can land in a
 * later window. Lambda discards a window's state at the window's end, so the window state
 * (seen-frames.ts) cannot see it; this memory outlives the window.
 *
 * Why it is safe: a document's frames enter the memory only after that document was written,
 * and each is remembered with the id of the document that counted it. A frame is a repeat only
 * when a *different* document counted it; the same window folded again (a retried final
 * invocation, a restart from an older checkpoint) rebuilds the same document instead of
 * dropping its own frames. So the memory can miss a repeat (after eviction, or in a container
 * that did not see the earlier window) but never drops a frame no written document counted.
 *
 * Why this and not something else: windows cannot follow capture time (Lambda groups by
 * arrival); a high-water mark of source sequence numbers would be smaller, but a partial write
 * failure rewrites an earlier frame after later ones, and the mark would drop it; documents
 * carrying their frames' digests would let readers subtract repeats, at ~11 bytes per frame
 * in every document and the work in every reader.
 *
 * Bounded: at most {@link MAX_COUNTED_FRAMES} digests per shard and at least the newest
 * MAX_SEEN_FRAMES (oldest documents evicted whole; a window holds at most MAX_SEEN_FRAMES), kept as
 * the same 64-bit digests as the window state. See counted-frames-store.ts for where it lives
 * (container memory, plus a state file in the local runtime). The index from digest to document
 * is a {@link DigestTable} (typed arrays, not a Map of strings). Measured at the bound with
 * `node --expose-gc --import tsx bench/counted-frames.ts`: a 1,074 kB state file; see that
 * benchmark for the memory.
 */
import { z } from 'zod';
import { DigestTable, isFrameDigest } from './digest-table';
import { MAX_SEEN_FRAMES, SEEN_FRAME_BYTES } from './seen-frames';

/**
 * Digests remembered per shard, at most. Documents are forgotten whole and one holds at most
 * MAX_SEEN_FRAMES, so the newest MAX_SEEN_FRAMES counted are always kept.
 */
export const MAX_COUNTED_FRAMES = 2 * MAX_SEEN_FRAMES;

/** Bumped when the persisted layout changes; another version is not trusted. */
export const COUNTED_FRAMES_VERSION = 1;

/** The persisted form: documents oldest first, each with its frames' digests concatenated. */
export const countedFramesStateSchema = z.object({
  version: z.literal(COUNTED_FRAMES_VERSION),
  documents: z.array(
    z.object({
      id: z.string().min(1),
      digests: z.string().regex(/^[A-Za-z0-9_-]*$/),
    }),
  ),
});
export type CountedFramesState = z.infer<typeof countedFramesStateSchema>;

/** True when every 11 characters of `digests` are a digest as frameDigest makes them. */
function isDigestList(digests: string): boolean {
  for (let i = 0; i < digests.length; i += SEEN_FRAME_BYTES) {
    if (!isFrameDigest(digests.slice(i, i + SEEN_FRAME_BYTES))) return false;
  }
  return true;
}

/** One shard's memory of the frames its earlier documents counted. */
export class CountedFrames {
  /** Oldest first; each document's number is `firstNumber` plus its place here. */
  private readonly documents: { id: string; digests: string }[] = [];
  private firstNumber = 0;
  /**
   * Digest -> number of the document that counted it. Sized for the bound from the start
   * (remember evicts before it adds, so the bound is never passed): 3 MB at the default bound,
   * and no growth while the memory fills.
   */
  private readonly index: DigestTable;

  /** @param maxFrames the bound on remembered digests (tests use small ones). */
  constructor(readonly maxFrames: number = MAX_COUNTED_FRAMES) {
    this.index = new DigestTable(maxFrames);
  }

  /**
   * Rebuilds the memory from {@link CountedFrames.toState}'s value (already validated); throws
   * a RangeError when a digest list is not a whole number of digests.
   */
  static fromState(state: CountedFramesState, maxFrames: number = MAX_COUNTED_FRAMES): CountedFrames {
    const memory = new CountedFrames(maxFrames);
    for (const document of state.documents) memory.remember(document.id, document.digests);
    return memory;
  }

  /** Digests remembered. */
  get size(): number {
    return this.index.size;
  }

  /** Documents whose frames are remembered. */
  get documentCount(): number {
    return this.documents.length;
  }

  /** The id of the document that counted the frame with this digest, if remembered. */
  countedIn(digest: string): string | undefined {
    const number = this.index.get(digest);
    return number === undefined ? undefined : this.documents[number - this.firstNumber]?.id;
  }

  /** Bytes the index takes outside the V8 heap (the documents' strings are in the heap). */
  get indexBytes(): number {
    return this.index.bytes;
  }

  /**
   * Remembers the frames a written document counted (`digests`: SeenFrames' state string),
   * first evicting the oldest documents until its frames fit within `maxFrames` (so the index
   * never holds more than its bound, unless one document alone is larger). A document already
   * remembered (its window's final invocation ran again) is left as it is.
   *
   * @throws RangeError when `digests` is not a whole number of digests (nothing is kept then).
   */
  remember(documentId: string, digests: string): void {
    if (digests.length % SEEN_FRAME_BYTES !== 0 || !isDigestList(digests)) {
      throw new RangeError(`counted frames of ${documentId}: ${digests.length} characters is not a list of digests`);
    }
    if (this.documents.some((d) => d.id === documentId)) return;
    const incoming = digests.length / SEEN_FRAME_BYTES;
    while (this.documents.length > 0 && this.index.size + incoming > this.maxFrames) this.evictOldest();
    // A digest still kept belongs to an earlier document, which counted the frame first:
    // each digest is kept once, so the documents' lists add up to the bound.
    const number = this.firstNumber + this.documents.length;
    const own: string[] = [];
    for (let i = 0; i < digests.length; i += SEEN_FRAME_BYTES) {
      const digest = digests.slice(i, i + SEEN_FRAME_BYTES);
      if (this.index.has(digest)) continue;
      this.index.set(digest, number);
      own.push(digest);
    }
    if (own.length === 0) return;
    this.documents.push({ id: documentId, digests: own.join('') });
  }

  private evictOldest(): void {
    const oldest = this.documents.shift();
    if (!oldest) return;
    this.firstNumber += 1;
    for (let i = 0; i < oldest.digests.length; i += SEEN_FRAME_BYTES) {
      const digest = oldest.digests.slice(i, i + SEEN_FRAME_BYTES);
      this.index.delete(digest);
    }
  }

  /** The persisted form. */
  toState(): CountedFramesState {
    return { version: COUNTED_FRAMES_VERSION, documents: this.documents.map((d) => ({ ...d })) };
  }
}
