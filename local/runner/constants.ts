/** Lambda's and Kinesis' limits as the runner applies them, and the runner's own timings. */
import type { BackoffSettings } from '../../functions/lib/retry';

/** Largest synchronous invocation payload Lambda accepts. */
export const MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Window state cap per shard; past it the window ends early. */
export const MAX_WINDOW_STATE_BYTES = 1024 * 1024;
/** Bytes one GetRecords call aims to return (Kinesis caps a response at 10 MB). */
export const GET_RECORDS_TARGET_BYTES = 8 * 1024 * 1024;
/** JSON envelope of one event record besides its data (ids, ARNs): a generous estimate. */
export const RECORD_OVERHEAD_BYTES = 600;
/** Longest wait before a failed batch is retried (the first wait is `retryBaseDelayMs`). */
export const MAX_RETRY_DELAY_MS = 2000;
/** Waits after a failed poll of a shard, and between probes of an unreachable endpoint. */
export const POLL_ERROR_BACKOFF: BackoffSettings = { baseMs: 100, maxMs: 5000 };
