/**
 * A Lambda `Context` for in-process invocations, shaped as the Node.js runtime builds it, so
 * middleware (Powertools' `injectLambdaContext`, middy) and handlers cannot tell the difference.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

export interface LambdaContextOptions {
  functionName: string;
  region?: string;
  memoryLimitInMB?: number;
  /** Function timeout; `getRemainingTimeInMillis` counts down from it. */
  timeoutSeconds?: number;
  /** Fixed request id (tests); a fresh UUID otherwise. */
  awsRequestId?: string;
}

/** Account id every local ARN carries, as the emulators use it. */
export const LOCAL_ACCOUNT_ID = '000000000000';

/**
 * Builds the context of one invocation. The deadline starts now: call it right before the
 * handler runs. `done`/`succeed`/`fail` exist only for the type; async handlers never call them.
 */
export function createLambdaContext(options: LambdaContextOptions): Context {
  const region = options.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const timeoutMs = (options.timeoutSeconds ?? 60) * 1000;
  const deadline = Date.now() + timeoutMs;
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
  const unsupported = (): never => {
    throw new Error('callback-style completion is not supported by the local runner; return a promise');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: options.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:${LOCAL_ACCOUNT_ID}:function:${options.functionName}`,
    memoryLimitInMB: String(options.memoryLimitInMB ?? 1024),
    awsRequestId: options.awsRequestId ?? randomUUID(),
    logGroupName: `/aws/lambda/${options.functionName}`,
    logStreamName: `${day}/[$LATEST]${randomUUID().replace(/-/g, '')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
