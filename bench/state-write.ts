/**
 * What a crash-consistent state write costs here: writeStateFile (temporary file, fsync, link
 * of the previous copy, rename, fsync of the folder) for a checkpoint file of a few kB and one
 * carrying a large metrics window state. Prints the median and the slowest of 40 writes.
 *
 *   npx tsx bench/state-write.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeStateFile } from '../functions/lib/state-file';

const WRITES = 40;
const dir = mkdtempSync(join(tmpdir(), 'state-write-'));
try {
  for (const [label, bytes] of [
    ['checkpoints, 2 kB', 2_000],
    ['checkpoints with a 30,000-frame window state, 330 kB', 330_000],
  ] as const) {
    const value = { padding: 'x'.repeat(bytes) };
    const times: number[] = [];
    for (let i = 0; i < WRITES; i += 1) {
      const started = performance.now();
      writeStateFile(join(dir, 'checkpoints.json'), value);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    console.log(`${label}: median ${times[WRITES / 2]?.toFixed(1)} ms, slowest ${times[WRITES - 1]?.toFixed(1)} ms`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
