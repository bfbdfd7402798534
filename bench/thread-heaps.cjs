/**
 * Preloaded into a pipeline process (`node --require bench/thread-heaps.cjs`, which worker
 * threads load too): every 0.5 s each thread appends its V8 heap and external memory to
 * `$THREAD_HEAPS_DIR/<pid>-<thread>-<role>.log`, for bench/memory.ts.
 */
const { threadId } = require('node:worker_threads');
const { getHeapStatistics } = require('node:v8');
const { appendFileSync } = require('node:fs');
const { join } = require('node:path');
const { threadRole } = require('./thread-role.cjs');

const dir = process.env.THREAD_HEAPS_DIR;
if (dir) {
  const role = threadRole();
  const file = join(dir, `${process.pid}-${threadId}-${role}.log`);
  const mb = (bytes) => (bytes / 1048576).toFixed(1);
  setInterval(() => {
    const heap = getHeapStatistics();
    const memory = process.memoryUsage();
    appendFileSync(file, `${mb(heap.used_heap_size)} ${mb(heap.total_heap_size)} ${mb(memory.external)} ${mb(memory.rss)}\n`);
  }, 500).unref();
}
