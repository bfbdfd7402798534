/**
 * The home reads its streams through the same event source mapping runner as the functions:
 * inside `npm start` on the pipeline's own runner (so the consumed-record trimmer waits for
 * it), alone (`npm run home`) on a runner of its own with checkpoints in the data folder.
 */
import type { EventSourceMappingRunner, RunnerMapping, StreamHandler } from '../local/runner';
import { HOME_STREAMS, homeHandlers } from './feed';
import type { HomeStore } from './store';

/** Records per batch: a batch is one append to the store, so large batches keep up with a Test camera. */
export const HOME_BATCH_SIZE = 10_000;

/** The mapping of one home reader: every record, from the oldest kept, retried until stored. */
export function homeReaderMapping(stream: string, functionName: string): RunnerMapping {
  return {
    functionName,
    stream,
    batchSize: HOME_BATCH_SIZE,
    batchWindowSeconds: 0,
    startingPosition: 'TRIM_HORIZON',
    parallelizationFactor: 1,
    reportBatchItemFailures: false,
    bisectBatchOnFunctionError: false,
    // A batch fails only when the data folder cannot be written: keep it until it can.
    maximumRetryAttempts: -1,
    maximumRecordAgeInSeconds: -1,
    tumblingWindowInSeconds: 0,
    onFailure: undefined,
    timeoutSeconds: 300,
  };
}

/** Adds the home's readers of `uncertain-images`, `rejected-images` and `metrics` to `runner`. */
export function addHomeReaders(runner: EventSourceMappingRunner, store: HomeStore, namePrefix = 'home-app'): void {
  const handlers = homeHandlers(store);
  for (const stream of HOME_STREAMS) {
    runner.add(homeReaderMapping(stream, `${namePrefix}-${stream}`), handlers[stream] as unknown as StreamHandler);
  }
}
