/**
 * aggregate-metrics: `predictions` and `rejected-images` in, through Kinesis tumbling windows;
 * one metrics document per window and shard out to `metrics`, and the window's headline figures as
 * CloudWatch embedded-metric-format logs. The work is in lib/metrics/aggregate.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { KinesisStreamStateResponse } from 'aws-lambda';
import { getConfig, streamName } from './lib/config';
import { aggregateWindow, type TumblingWindowEvent } from './lib/metrics/aggregate';
import { createCountedFramesStore } from './lib/metrics/counted-frames-store';
import type { MetricsConfig, MetricsDocument } from './lib/metrics/document';
import { sinkFromConfig } from './lib/stream-writer';

/** CloudWatch namespace of the project's metrics. */
export const METRICS_NAMESPACE = 'EdgeCameraClassifier';

const config = getConfig();
const logger = new Logger({ serviceName: 'aggregate-metrics', logLevel: config.logLevel });
const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: 'aggregate-metrics' });
const sink = sinkFromConfig(config);
const metricsStream = streamName('metrics', config.streamPrefix);
// Module scope: the frames counted by the windows this container closed outlive the window
// (and, with METRICS_COUNTED_FRAMES_DIR, the process), so a later window does not count a
// redelivered frame again.
const counted = createCountedFramesStore(config.metricsCountedFramesDir, (message, details) => logger.error(message, details));
const documentConfig: MetricsConfig = {
  delay: config.delay,
  repeat: config.repeat,
  source: config.source,
  confidence: config.confidenceThreshold,
  classify_parallel: config.parallelism,
  metrics_duration: config.metricsWindowSeconds,
};

/** The window's headline figures as EMF metrics (null percentiles are left out). */
function emitWindowMetrics(document: MetricsDocument): void {
  metrics.addMetadata('window', document.window.start);
  metrics.addMetadata('shard', document.shard);
  metrics.addMetric('Frames', MetricUnit.Count, document.count);
  metrics.addMetric('UnreadableRecords', MetricUnit.Count, document.invalid.count);
  metrics.addMetric('RejectedFrames', MetricUnit.Count, document.rejected.count);
  metrics.addMetric('DuplicateFrames', MetricUnit.Count, document.duplicates);
  metrics.addMetric('Throughput', MetricUnit.CountPerSecond, document.throughput);
  if (document.count > 0) {
    metrics.addMetric('UncertainShare', MetricUnit.Percent, (100 * document.uncertain) / document.count);
  }
  const p99 = {
    PrepLatencyP99: document.latency_metrics.prep['99'],
    PredictLatencyP99: document.latency_metrics.predict['99'],
    EndToEndLatencyP99: document.latency_metrics.end_to_end['99'],
  };
  for (const [name, value] of Object.entries(p99)) {
    if (value !== null) metrics.addMetric(name, MetricUnit.Seconds, value);
  }
}

export const handler = middy(async (event: TumblingWindowEvent): Promise<KinesisStreamStateResponse> => {
  const result = await aggregateWindow(event, { sink, metricsStream, config: documentConfig, logger, counted });
  // Every invocation publishes something, so a quiet window does not log "no metrics".
  metrics.addMetric('RecordsFolded', MetricUnit.Count, result.folded);
  if (result.document) emitWindowMetrics(result.document);
  return result.response;
})
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics));
