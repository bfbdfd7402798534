/**
 * Preloaded (node --require) into the pipeline process by `npm run soak`: every
 * SOAK_HEAP_INTERVAL_MS it appends one JSON line of this thread's memory to SOAK_HEAP_FILE,
 * after a full garbage collection when node runs with --expose-gc, so the line shows what
 * the thread keeps rather than what it has not collected yet. Loaded into worker threads too
 * (the emulator's, the handlers' containers); each line says which thread it is and what it runs.
 *
 * With SOAK_HEAP_SNAPSHOTS (seconds, comma-separated) each thread also writes a V8 heap
 * snapshot next to SOAK_HEAP_FILE at those times after it started, for `npm run soak --
 * --snapshots` to compare what a thread holds more of later on.
 */
'use strict';
const { appendFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const { writeHeapSnapshot } = require('node:v8');
const { isMainThread, threadId } = require('node:worker_threads');
const { threadRole } = require('../bench/thread-role.cjs');

const file = process.env.SOAK_HEAP_FILE;
if (file) {
  const interval = Number(process.env.SOAK_HEAP_INTERVAL_MS || 5000);
  const role = threadRole();
  const thread = isMainThread ? role : `${role}-${threadId}`;
  const snapshotsDue = (process.env.SOAK_HEAP_SNAPSHOTS || '')
    .split(',')
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b);
  const started = Date.now();
  const timer = setInterval(() => {
    if (typeof global.gc === 'function') global.gc();
    const m = process.memoryUsage();
    const t = (Date.now() - started) / 1000;
    const line = {
      t,
      at: Date.now(),
      thread,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    };
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
      if (snapshotsDue.length > 0 && t >= snapshotsDue[0]) {
        const due = snapshotsDue.shift();
        writeHeapSnapshot(join(dirname(file), `${thread}-at-${due}s.heapsnapshot`));
      }
    } catch {
      // the soak's folder is gone: nothing to report to
    }
  }, interval);
  timer.unref();
}
