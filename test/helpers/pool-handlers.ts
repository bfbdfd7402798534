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

export const slow = async (): Promise<{ threadId: number }> => {
  await sleep(300);
  return { threadId };
};
