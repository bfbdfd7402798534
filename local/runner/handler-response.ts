/**
 * What an invocation came to and what becomes of its records, decided the way Lambda decides
 * for a Kinesis event source mapping. Pure: the lanes do the invoking, waiting and
 * checkpointing, these functions only read responses and choose the next step.
 */
import type { RunnerMapping, WindowState } from './types';

/** One invocation's result: every record done, done up to `failedIndex`, or failed whole. */
export type Outcome =
  | { kind: 'success'; state?: WindowState }
  | { kind: 'partial'; failedIndex: number; state?: WindowState }
  | { kind: 'error'; message: string };

/** What happens to the failed records of an attempt that the endpoint's absence does not excuse. */
export type FailureStep = 'bisect' | 'dead-letter' | 'retry';

/**
 * Reads a handler's response the way Lambda does. With `windowed`, a response without a
 * `state` object, or whose state cannot be serialised, fails the invocation. With
 * `reportBatchItemFailures`, `batchItemFailures` names the failed records: the lowest one
 * (by position in `batch`) and everything after it are failed; a list entry with an empty,
 * missing or unknown `itemIdentifier`, or a value that is not a list, fails the whole batch.
 */
export function interpretResponse(
  response: unknown,
  batch: ReadonlyArray<{ readonly seq: string }>,
  settings: { windowed: boolean; reportBatchItemFailures: boolean },
): Outcome {
  let state: WindowState | undefined;
  if (settings.windowed) {
    const candidate = response && typeof response === 'object' ? (response as { state?: unknown }).state : undefined;
    if (!candidate || typeof candidate !== 'object' || Array.isArray(candidate)) {
      return { kind: 'error', message: 'the response carries no state object (required with tumbling windows)' };
    }
    // The response crosses a JSON boundary on Lambda too: keep a serialised copy, so the
    // state is plain JSON and later mutations of the handler's object cannot reach it.
    try {
      state = JSON.parse(JSON.stringify(candidate)) as WindowState;
    } catch (error: unknown) {
      return {
        kind: 'error',
        message: `the state cannot be serialised: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
  }
  const failures =
    settings.reportBatchItemFailures && response && typeof response === 'object'
      ? (response as { batchItemFailures?: unknown }).batchItemFailures
      : undefined;
  if (failures === undefined || failures === null) return state ? { kind: 'success', state } : { kind: 'success' };
  if (!Array.isArray(failures)) return { kind: 'error', message: 'batchItemFailures is not a list' };
  if (failures.length === 0) return state ? { kind: 'success', state } : { kind: 'success' };
  let lowest = Number.POSITIVE_INFINITY;
  for (const failure of failures as unknown[]) {
    const id = failure && typeof failure === 'object' ? (failure as { itemIdentifier?: unknown }).itemIdentifier : undefined;
    if (typeof id !== 'string' || id === '') {
      return { kind: 'error', message: 'a batch item failure has an empty or missing itemIdentifier' };
    }
    const index = batch.findIndex((e) => e.seq === id);
    if (index < 0) return { kind: 'error', message: `batch item failure ${id} is not in the batch` };
    lowest = Math.min(lowest, index);
  }
  return state ? { kind: 'partial', failedIndex: lowest, state } : { kind: 'partial', failedIndex: lowest };
}

/** The outcome of an invocation that threw, timed out or was rejected. */
export function errorOutcome(error: unknown): Outcome {
  return { kind: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
}

/**
 * The records an outcome finished (to checkpoint) and those it failed (to retry, split or
 * send to the on-failure destination): a partial response splits the batch at its lowest
 * failed record.
 */
export function splitAtFailure<T>(batch: readonly T[], outcome: Outcome): { finished: T[]; failed: T[] } {
  if (outcome.kind === 'success') return { finished: [...batch], failed: [] };
  if (outcome.kind === 'partial') {
    return { finished: batch.slice(0, outcome.failedIndex), failed: batch.slice(outcome.failedIndex) };
  }
  return { finished: [], failed: [...batch] };
}

/** Why an attempt failed, as the on-failure record states it. */
export function failureReason(outcome: Outcome): string {
  return outcome.kind === 'error' ? outcome.message : 'the function reported batch item failures';
}

/** True once `retries` retries used up `maximumRetryAttempts` (-1 retries forever). */
export function retriesExhausted(retries: number, maximumRetryAttempts: number): boolean {
  return maximumRetryAttempts >= 0 && retries >= maximumRetryAttempts;
}

/**
 * The next step for an attempt's `failedCount` failed records after `retries` retries: a
 * function error splits a batch of two or more in two when the mapping bisects (a split does
 * not count against the retry quota, Lambda's rule); otherwise exhausted retries send the
 * records to the on-failure destination, and anything else is retried.
 */
export function failureStep(
  outcome: Outcome,
  failedCount: number,
  retries: number,
  mapping: Pick<RunnerMapping, 'bisectBatchOnFunctionError' | 'maximumRetryAttempts'>,
): FailureStep {
  if (outcome.kind === 'error' && mapping.bisectBatchOnFunctionError && failedCount > 1) return 'bisect';
  if (retriesExhausted(retries, mapping.maximumRetryAttempts)) return 'dead-letter';
  return 'retry';
}

/** Splits failed records in two halves, the first one the larger when the count is odd. */
export function bisect<T>(records: readonly T[]): [T[], T[]] {
  const middle = Math.ceil(records.length / 2);
  return [records.slice(0, middle), records.slice(middle)];
}
