/**
 * classify: `camera-images` batches in; `predictions`, `uncertain-images` and
 * `rejected-images` out (and `shadow-scores` while a candidate runs in shadow); partial batch
 * response for records whose outputs could not be written. The work is in
 * lib/classify-batch.ts; which model scores a batch is lib/model-source.ts's.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { classifyBatch } from './lib/classify-batch';
import { getConfig, streamName } from './lib/config';
import { modelSourceFor } from './lib/model-source';
import { sinkFromConfig } from './lib/stream-writer';

const config = getConfig();
const logger = new Logger({ serviceName: 'classify', logLevel: config.logLevel });
const sink = sinkFromConfig(config);
const streams = {
  predictions: streamName('predictions', config.streamPrefix),
  uncertainImages: streamName('uncertainImages', config.streamPrefix),
  rejectedImages: streamName('rejectedImages', config.streamPrefix),
  shadowScores: streamName('shadowScores', config.streamPrefix),
};
// Loaded once per container, during init: MODEL_DIR or the layer's model for the container's
// life, else the registry's current model, followed between batches. CommonJS has no
// top-level await, so a load failure is logged now and rethrown by every invocation: the
// container can never score. Hosts that can wait for asynchronous init (the local runner)
// await `ready` and refuse to start.
const models = modelSourceFor(config, logger);
models.ready.catch((error: unknown) => logger.error('model failed to load', { error }));

/** Settles when the cold start is complete; rejects with the ModelLoadError if it failed. */
export const ready: Promise<void> = models.ready;

export const handler = middy(async (event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> => {
  const lease = await models.acquire();
  try {
    const { batchItemFailures } = await classifyBatch(event.Records, {
      model: lease.model,
      ...(lease.shadow ? { shadow: lease.shadow } : {}),
      sink,
      streams,
      config,
      logger,
    });
    return { batchItemFailures };
  } finally {
    lease.done();
  }
}).use(injectLambdaContext(logger));
