/**
 * classify: `camera-images` batches in; `predictions`, `uncertain-images` and
 * `rejected-images` out; partial batch response for records whose outputs could not be
 * written. The work is in lib/classify-batch.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { classifyBatch } from './lib/classify-batch';
import { getConfig, streamName } from './lib/config';
import { loadDigitModel } from './lib/model';
import { sinkFromConfig } from './lib/stream-writer';

const config = getConfig();
const logger = new Logger({ serviceName: 'classify', logLevel: config.logLevel });
const sink = sinkFromConfig(config);
const streams = {
  predictions: streamName('predictions', config.streamPrefix),
  uncertainImages: streamName('uncertainImages', config.streamPrefix),
  rejectedImages: streamName('rejectedImages', config.streamPrefix),
};
// Loaded once per container, during init. CommonJS has no top-level await, so a load failure
// is logged now and rethrown by every invocation: the container can never score. Hosts that
// can wait for asynchronous init (the local runner) await `ready` and refuse to start.
const model = loadDigitModel(config.modelDir);
model.catch((error: unknown) => logger.error('model failed to load', { error }));

/** Settles when the cold start is complete; rejects with the ModelLoadError if it failed. */
export const ready: Promise<void> = model.then(() => undefined);
// Hosts that never await `ready` (Lambda) must not see an unhandled rejection: logged above.
ready.catch(() => undefined);

export const handler = middy(async (event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> => {
  const { batchItemFailures } = await classifyBatch(event.Records, { model: await model, sink, streams, config, logger });
  return { batchItemFailures };
}).use(injectLambdaContext(logger));
