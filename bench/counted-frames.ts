/**
 * What the metrics aggregator's memory of counted frames costs at its bound: one shard holding
 * MAX_COUNTED_FRAMES digests (two full windows of MAX_SEEN_FRAMES). Prints the heap it takes,
 * the size of its state file, the time to save it (once per window) and to load it (at a
 * restart, or when another container closed the shard's last window), and the lookups per
 * second on the per-frame path.
 *
 *   node --expose-gc --import tsx bench/counted-frames.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CountedFrames, MAX_COUNTED_FRAMES } from '../functions/lib/metrics/counted-frames';
import { countedFramesFile, createCountedFramesStore } from '../functions/lib/metrics/counted-frames-store';
import { MAX_SEEN_FRAMES, SeenFrames } from '../functions/lib/metrics/seen-frames';

const RUNS = 10;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

/** A full window's digests, as the window state hands them over. */
function windowDigests(window: number): string {
  const seen = new SeenFrames();
  for (let i = 0; i < MAX_SEEN_FRAMES; i += 1) seen.note(`shardId-000000000000-${window}-${i}`);
  return seen.toState();
}

const windows = [windowDigests(1), windowDigests(2)];
gc();
// The V8 heap (the documents' digest strings) and array buffers (the index's typed arrays).
const held = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
const before = held();
const memory = new CountedFrames();
for (const [i, digests] of windows.entries()) memory.remember(`doc-${i}`, digests);
gc();
const memoryBytes = held() - before;
const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);
console.log(
  `${memory.size.toLocaleString('en')} digests (bound ${MAX_COUNTED_FRAMES.toLocaleString('en')}): ${mb(memoryBytes)} MB (heap and array buffers; ` +
    `index ${mb(memory.indexBytes)} MB), ${(memoryBytes / memory.size).toFixed(0)} bytes per frame`,
);

const probes = windows[0] ?? '';
let found = 0;
const started = performance.now();
for (let i = 0; i < probes.length; i += 11) if (memory.countedIn(probes.slice(i, i + 11))) found += 1;
const lookupMs = performance.now() - started;
console.log(`lookups: ${(((found / lookupMs) * 1000) / 1e6).toFixed(1)} M/s (${found.toLocaleString('en')} found)`);

const root = mkdtempSync(join(tmpdir(), 'counted-frames-bench-'));
try {
  const saves: number[] = [];
  const loads: number[] = [];
  let bytes = 0;
  for (let run = 0; run < RUNS; run += 1) {
    const dir = join(root, String(run));
    const store = createCountedFramesStore(dir, (message) => console.error(message));
    store.remember('shard', `doc-a-${run}`, windows[0] ?? '');
    let t = performance.now();
    store.remember('shard', `doc-b-${run}`, windows[1] ?? '');
    saves.push(performance.now() - t);
    t = performance.now();
    const loaded = createCountedFramesStore(dir, () => undefined).forShard('shard');
    loads.push(performance.now() - t);
    if (loaded.size !== MAX_COUNTED_FRAMES) throw new Error(`loaded ${loaded.size} digests`);
    bytes = statSync(countedFramesFile(dir, 'shard')).size;
  }
  saves.sort((a, b) => a - b);
  loads.sort((a, b) => a - b);
  console.log(`state file: ${(bytes / 1024).toFixed(0)} kB`);
  console.log(`save at a window's end: median ${saves[RUNS / 2]?.toFixed(1)} ms, slowest ${saves[RUNS - 1]?.toFixed(1)} ms`);
  console.log(`load: median ${loads[RUNS / 2]?.toFixed(1)} ms, slowest ${loads[RUNS - 1]?.toFixed(1)} ms`);
} finally {
  rmSync(root, { recursive: true, force: true });
}
