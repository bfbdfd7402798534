/**
 * Preloaded (node --require) into the pipeline process by `npm run soak`: every
 * SOAK_HEAP_INTERVAL_MS it appends one JSON line of this thread's memory to SOAK_HEAP_FILE,
 * after a full garbage collection when node runs with --expose-gc, so the line shows what
 * the thread keeps rather than what it has not collected yet. Loaded into worker threads too
 * (the emulator's), each line says which thread it is.
 */
'use strict';
const { appendFileSync } = require('node:fs');
const { isMainThread, threadId } = require('node:worker_threads');

const file = process.env.SOAK_HEAP_FILE;
if (file) {
  const interval = Number(process.env.SOAK_HEAP_INTERVAL_MS || 5000);
  const started = Date.now();
  const timer = setInterval(() => {
    if (typeof global.gc === 'function') global.gc();
    const m = process.memoryUsage();
    const line = {
      t: (Date.now() - started) / 1000,
      at: Date.now(),
      thread: isMainThread ? 'main' : `worker-${threadId}`,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
    };
    try {
      appendFileSync(file, `${JSON.stringify(line)}\n`);
    } catch {
      // the soak's folder is gone: nothing to report to
    }
  }, interval);
  timer.unref();
}
