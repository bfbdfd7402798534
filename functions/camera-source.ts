/**
 * camera-source: publishes MNIST test frames (or a folder of PNGs) to `camera-images`, as the
 * original ImageSource did. Invoke it with `{ count, camera, delay, repeat, rate, source }`;
 * it answers with a summary. It stops a few seconds before the function's timeout.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { cameraSourceEventSchema } from './lib/camera-source/event';
import { framesFrom } from './lib/camera-source/frames';
import { type PublishSummary, cameraId, publishFrames } from './lib/camera-source/publish';
import { getConfig, streamName } from './lib/config';
import { sinkFromConfig } from './lib/stream-writer';

const config = getConfig();
const logger = new Logger({ serviceName: 'camera-source', logLevel: config.logLevel });
const sink = sinkFromConfig(config);
const SAFETY_MARGIN_MS = 3000;

export const handler = middy(async (event: unknown, context: Context): Promise<PublishSummary> => {
  const params = cameraSourceEventSchema.parse(event ?? {});
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), Math.max(0, context.getRemainingTimeInMillis() - SAFETY_MARGIN_MS));
  try {
    const summary = await publishFrames(framesFrom(params.source ?? config.source, params.repeat ?? config.repeat), sink, {
      camera: cameraId(params.camera ?? config.camera, config.deviceId),
      stream: streamName('cameraImages', config.streamPrefix),
      recordFormat: config.recordFormat,
      delay: params.delay ?? config.delay,
      count: params.count,
      rate: params.rate,
      signal: deadline.signal,
    });
    logger.info('frames published', { ...summary });
    return summary;
  } finally {
    clearTimeout(timer);
  }
}).use(injectLambdaContext(logger));
