/**
 * What a thread of the pipeline process runs, for the memory probes preloaded into it
 * (bench/thread-heaps.cjs, scripts/soak-heap-probe.cjs): `main`, `emulator` (kinesalite's
 * worker) or the handler module a container runs (`classify`, `aggregate-metrics`).
 */
'use strict';
const { isMainThread, workerData } = require('node:worker_threads');

function threadRole() {
  if (isMainThread) return 'main';
  const module = workerData && typeof workerData.modulePath === 'string' ? workerData.modulePath : undefined;
  if (module) return module.split('/').pop().replace(/\.ts$/, '');
  const emulator = workerData && typeof workerData.module === 'string' && workerData.module.includes('kinesalite');
  return emulator ? 'emulator' : 'worker';
}

module.exports = { threadRole };
