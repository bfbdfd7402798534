/**
 * How the runner reads a handler's response and settles a failed attempt (Lambda's rules for
 * Kinesis event source mappings), without an emulator: the pure functions the lanes call.
 */
import {
  bisect,
  errorOutcome,
  failureReason,
  failureStep,
  interpretResponse,
  type Outcome,
  retriesExhausted,
  splitAtFailure,
} from '../../local/runner/handler-response';

const batch = [{ seq: '100' }, { seq: '200' }, { seq: '300' }, { seq: '400' }];
const plain = { windowed: false, reportBatchItemFailures: true };
const windowed = { windowed: true, reportBatchItemFailures: true };

describe('interpretResponse: partial batch responses', () => {
  it.each([undefined, null, 'ok', 42, {}, { batchItemFailures: null }, { batchItemFailures: [] }])(
    'reads %p as every record done',
    (response) => {
      // Act
      const outcome = interpretResponse(response, batch, plain);

      // Assess
      expect(outcome).toEqual({ kind: 'success' });
    },
  );

  it('fails from the lowest reported record on, whatever the order of the list', () => {
    // Prepare
    const response = { batchItemFailures: [{ itemIdentifier: '400' }, { itemIdentifier: '200' }] };

    // Act
    const outcome = interpretResponse(response, batch, plain);

    // Assess
    expect(outcome).toEqual({ kind: 'partial', failedIndex: 1 });
  });

  it.each([
    [{ batchItemFailures: 'all' }, 'batchItemFailures is not a list'],
    [{ batchItemFailures: [{ itemIdentifier: '' }] }, 'a batch item failure has an empty or missing itemIdentifier'],
    [{ batchItemFailures: [{}] }, 'a batch item failure has an empty or missing itemIdentifier'],
    [{ batchItemFailures: [null] }, 'a batch item failure has an empty or missing itemIdentifier'],
    [{ batchItemFailures: [{ itemIdentifier: 300 }] }, 'a batch item failure has an empty or missing itemIdentifier'],
    [{ batchItemFailures: [{ itemIdentifier: '999' }] }, 'batch item failure 999 is not in the batch'],
  ])('fails the whole batch for %j', (response, message) => {
    // Act
    const outcome = interpretResponse(response, batch, plain);

    // Assess
    expect(outcome).toEqual({ kind: 'error', message });
  });

  it('ignores batchItemFailures when the mapping does not report them', () => {
    // Act
    const outcome = interpretResponse({ batchItemFailures: [{ itemIdentifier: '100' }] }, batch, {
      windowed: false,
      reportBatchItemFailures: false,
    });

    // Assess
    expect(outcome).toEqual({ kind: 'success' });
  });
});

describe('interpretResponse: tumbling windows', () => {
  it.each([undefined, {}, { state: null }, { state: [1, 2] }, { state: 'text' }])(
    'fails an invocation whose response %p carries no state object',
    (response) => {
      // Act
      const outcome = interpretResponse(response, batch, windowed);

      // Assess
      expect(outcome).toEqual({
        kind: 'error',
        message: 'the response carries no state object (required with tumbling windows)',
      });
    },
  );

  it('keeps a JSON copy of the state, out of reach of later changes by the handler', () => {
    // Prepare
    const state = { counts: { '7': 2 } };

    // Act
    const outcome = interpretResponse({ state }, batch, windowed);
    state.counts['7'] = 99;

    // Assess
    expect(outcome).toEqual({ kind: 'success', state: { counts: { '7': 2 } } });
  });

  it('carries the state with a partial response', () => {
    // Act
    const outcome = interpretResponse({ state: { n: 1 }, batchItemFailures: [{ itemIdentifier: '300' }] }, batch, windowed);

    // Assess
    expect(outcome).toEqual({ kind: 'partial', failedIndex: 2, state: { n: 1 } });
  });

  it('fails an invocation whose state cannot be serialised', () => {
    // Prepare
    const state: Record<string, unknown> = {};
    state.self = state;

    // Act
    const outcome = interpretResponse({ state }, batch, windowed);

    // Assess
    expect(outcome.kind).toBe('error');
    expect(outcome.kind === 'error' && outcome.message).toMatch(/^the state cannot be serialised: /);
  });
});

describe('errorOutcome', () => {
  it('names the error class and message of a thrown error, or the thrown value', () => {
    // Act and assess
    expect(errorOutcome(new TypeError('bad frame'))).toEqual({ kind: 'error', message: 'TypeError: bad frame' });
    expect(errorOutcome('plain text')).toEqual({ kind: 'error', message: 'plain text' });
  });
});

describe('settling a failed attempt', () => {
  const error: Outcome = { kind: 'error', message: 'Error: boom' };
  const partial: Outcome = { kind: 'partial', failedIndex: 2 };

  it('checkpoints the records before the lowest failure and fails the rest', () => {
    // Act and assess
    expect(splitAtFailure(batch, partial)).toEqual({ finished: batch.slice(0, 2), failed: batch.slice(2) });
    expect(splitAtFailure(batch, error)).toEqual({ finished: [], failed: batch });
    expect(splitAtFailure(batch, { kind: 'success' })).toEqual({ finished: batch, failed: [] });
  });

  it('states why an attempt failed', () => {
    // Act and assess
    expect(failureReason(error)).toBe('Error: boom');
    expect(failureReason(partial)).toBe('the function reported batch item failures');
  });

  it('bisects a function error of two or more records, without counting it as a retry', () => {
    // Prepare
    const mapping = { bisectBatchOnFunctionError: true, maximumRetryAttempts: 0 };

    // Act and assess: bisecting comes before the (already exhausted) retry quota
    expect(failureStep(error, 2, 0, mapping)).toBe('bisect');
    expect(failureStep(error, 1, 0, mapping)).toBe('dead-letter');
    expect(failureStep(partial, 2, 0, mapping)).toBe('dead-letter');
  });

  it('retries until maximumRetryAttempts, then sends to the on-failure destination; -1 retries forever', () => {
    // Prepare
    const twice = { bisectBatchOnFunctionError: false, maximumRetryAttempts: 2 };
    const forever = { bisectBatchOnFunctionError: false, maximumRetryAttempts: -1 };

    // Act and assess
    expect([0, 1, 2].map((retries) => failureStep(error, 4, retries, twice))).toEqual(['retry', 'retry', 'dead-letter']);
    expect(failureStep(partial, 2, 10_000, forever)).toBe('retry');
    expect(retriesExhausted(0, 0)).toBe(true);
    expect(retriesExhausted(10_000, -1)).toBe(false);
  });

  it('splits into halves, the first the larger', () => {
    // Act and assess
    expect(bisect([1, 2, 3, 4, 5])).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
    expect(bisect([1, 2])).toEqual([[1], [2]]);
  });
});
