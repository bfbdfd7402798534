/**
 * Builds training sets (augmentation + production preparation) on a worker thread, so the
 * next epoch's images are ready when the current epoch's training ends. Augmenting and
 * preparing ~28k camera-like frames takes minutes per epoch on one core; overlapped, it costs
 * almost no wall time. Every set is a pure function of its job (seed included), so results
 * do not depend on timing.
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { loadMnist } from '../functions/lib/mnist';
import { buildPreparedSet, prepareAll, type PreparedSet } from './data';
import type { GrayImage } from '../functions/lib/decode';
import { cameraAugment, fromMnist } from './augment';
import { cameraGrayAt, FRAME_SIZES } from './camera-frames';
import { Rng } from './rng';

export interface PrepareJob {
  indices: number[];
  augmentShare: number;
  blankShare: number;
  /** Printed and pen-drawn digits from the camera-frame generator, per set. */
  styledDigits: number;
  /** Blank-paper frames from the camera-frame generator, per set (uniform target). */
  blankFrames: number;
  seed: number;
}

/** Training frames stay small: large frames cost generation time and prepare to the same 28x28. */
const TRAIN_SIZES = FRAME_SIZES.slice(0, 5);
const BLANK_SIZES = FRAME_SIZES.slice(0, 6);

/** Printed / pen digits and blank paper, drawn with the job's seed (never the evaluation seeds). */
function* generatedFrames(job: PrepareJob): Generator<{ image: GrayImage; label: number | null }> {
  for (let i = 0; i < job.styledDigits; i++) {
    yield cameraGrayAt(i, { seed: job.seed, styles: ['printed', 'pen'], blankShare: 0, sizes: TRAIN_SIZES });
  }
  for (let i = 0; i < job.blankFrames; i++) {
    yield cameraGrayAt(i, { seed: job.seed ^ 0x5bd1e995, blankShare: 1, sizes: BLANK_SIZES });
  }
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
  let clean: Uint8Array | undefined;
  port.on('message', (job: JobMessage) => {
    try {
      const mnist = loadMnist('train');
      clean ??= prepareAll(mnist.images, mnist.count);
      const set = buildPreparedSet({
        images: mnist.images,
        labels: mnist.labels,
        indices: job.indices,
        augmentShare: job.augmentShare,
        augment: (raw, rng) => cameraAugment(fromMnist(raw), rng),
        clean,
        blankShare: job.blankShare,
        extra: generatedFrames(job),
        rng: new Rng(job.seed),
      });
      const result: ResultMessage = { id: job.id, set };
      port.postMessage(result, [set.images.buffer as ArrayBuffer, set.labels.buffer as ArrayBuffer]);
    } catch (error: unknown) {
      const result: ResultMessage = {
        id: job.id,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      };
      port.postMessage(result);
    }
  });
}
