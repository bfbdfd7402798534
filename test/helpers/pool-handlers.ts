/** Small handlers for the worker-thread handler pool tests. */
import { threadId } from 'node:worker_threads';
import type { Context } from 'aws-lambda';
import { sleep } from '../../functions/lib/retry';

export const echo = async (event: unknown, context: Context) => ({
  event,
  functionName: context.functionName,
  awsRequestId: context.awsRequestId,
  remaining: context.getRemainingTimeInMillis(),
  threadId,
});

export const fail = async (): Promise<never> => {
  throw new TypeError('the record is not what it should be');
};

export const hang = (): Promise<never> => new Promise(() => undefined);

/**
 * Answers once as many invocations as the event's `parties` have begun, counted in its shared
 * `arrived` buffer (shared across worker threads): invocations started together then surely
 * overlap. Without `arrived` it answers at once. Bounded: fails after 30 s with the count.
 */
export const slow = async (event: { arrived?: SharedArrayBuffer; parties?: number }): Promise<{ threadId: number }> => {
  if (event.arrived) {
    const arrived = new Int32Array(event.arrived);
    const parties = event.parties ?? 1;
    Atomics.add(arrived, 0, 1);
    const deadline = Date.now() + 30_000;
    while (Atomics.load(arrived, 0) < parties) {
      if (Date.now() > deadline) throw new Error(`only ${Atomics.load(arrived, 0)} of ${parties} invocations began within 30 s`);
      await sleep(5);
    }
  }
  return { threadId };
};
