/**
 * The local event source mapping runner (Lambda's Kinesis semantics, see
 * event-source-mapping-runner.ts): what the pipeline, the home readers, the Greengrass host
 * and the tests use.
 */
export { type CheckpointEntry, CheckpointStore, CHECKPOINT_WRITE_INTERVAL_MS } from './checkpoint-store';
export { isConnectionError } from './connection-error';
export { MAX_INVOKE_PAYLOAD_BYTES, MAX_WINDOW_STATE_BYTES } from './constants';
export { EventSourceMappingRunner } from './event-source-mapping-runner';
export type {
  ConsumerPosition,
  DeadLetterRecord,
  InvocationReport,
  RunnerLogger,
  RunnerMapping,
  RunnerOptions,
  StreamHandler,
} from './types';
