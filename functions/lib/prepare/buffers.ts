/**
 * Scratch buffers: preparation is synchronous, so each module keeps its typed arrays across
 * calls and grows them (doubling) only when a larger frame arrives: no per-frame allocation.
 */
export function grow<T extends Float32Array | Int32Array>(buf: T, n: number, make: (n: number) => T): T {
  return buf.length >= n ? buf : make(Math.max(n, buf.length * 2));
}
