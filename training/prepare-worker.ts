/**
 * Builds training sets (augmentation + production preparation) on a worker thread, so the
 * next epoch's images are ready when the current epoch's training ends. Augmenting and
 * preparing ~28k camera-like frames takes minutes per epoch on one core; overlapped, it costs
 * almost no wall time. Every set is a pure function of its job (seed included), so results
 * do not depend on timing.
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { loadMnist } from '../functions/lib/mnist';
import { buildPreparedSet, type PreparedSet } from './data';
import { cameraAugment, fromMnist } from './augment';
import { Rng } from './rng';

export interface PrepareJob {
  indices: number[];
  augmentShare: number;
  blankShare: number;
  seed: number;
}

interface JobMessage extends PrepareJob {
  id: number;
}

interface ResultMessage {
  id: number;
  set?: PreparedSet;
  error?: string;
}

/** Runs {@link buildPreparedSet} over the MNIST training set on a worker thread. */
export class PrepareWorker {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (set: PreparedSet) => void; reject: (error: Error) => void }>();

  constructor() {
    // tsx registers TypeScript loading in this thread only: the worker registers it itself.
    this.worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(__filename)});`, { eval: true });
    this.worker.on('message', (message: ResultMessage) => {
      const waiter = this.pending.get(message.id);
      if (waiter === undefined) return;
      this.pending.delete(message.id);
      if (message.set !== undefined) waiter.resolve(message.set);
      else waiter.reject(new Error(`preparation worker: ${message.error ?? 'no result'}`));
    });
    this.worker.on('error', (error: Error) => {
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    });
  }

  /** Starts building a set; the promise settles when it is ready. */
  build(job: PrepareJob): Promise<PreparedSet> {
    const id = this.nextId++;
    const promise = new Promise<PreparedSet>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    const message: JobMessage = { id, ...job };
    this.worker.postMessage(message);
    return promise;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  port.on('message', (job: JobMessage) => {
    try {
      const mnist = loadMnist('train');
      const set = buildPreparedSet({
        images: mnist.images,
        labels: mnist.labels,
        indices: job.indices,
        augmentShare: job.augmentShare,
        augment: (raw, rng) => cameraAugment(fromMnist(raw), rng),
        blankShare: job.blankShare,
        rng: new Rng(job.seed),
      });
      const result: ResultMessage = { id: job.id, set };
      port.postMessage(result, [set.images.buffer as ArrayBuffer, set.labels.buffer as ArrayBuffer]);
    } catch (error: unknown) {
      const result: ResultMessage = { id: job.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
      port.postMessage(result);
    }
  });
}
