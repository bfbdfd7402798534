/**
 * The project's handlers hosted over Greengrass Stream Manager, as one long-running process
 * (the Greengrass component): Stream Manager streams are created from
 * edge/stream-manager/streams.json (with their Kinesis exports), the handlers write to them
 * through a {@link StreamManagerRecordSink}, and the event source mapping runner reads them
 * through a Kinesis client served by Stream Manager, with the mappings of serverless.yml: the
 * same batches, partial batch responses, retries, on-failure records, tumbling windows and
 * checkpoints (written to `stateDir`, so a restart resumes) as on the laptop.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { COUNTED_FRAMES_FOLDER } from '../../functions/lib/metrics/counted-frames-store';
import { useHostSink } from '../../functions/lib/stream-writer';
import { REPO_ROOT, type ServiceDefinition, type StreamMapping } from '../runner/mappings';
import { EventSourceMappingRunner, type RunnerLogger, type StreamHandler } from '../runner';
import { kinesisClientOverStreamManager } from './kinesis-over-stream-manager';
import { StreamManagerRecordSink } from './record-sink';
import type { StreamManagerClientLike } from './stream-manager';
import { ensureMessageStreams, loadStreamDefinitions } from './streams';

export interface StreamManagerHostOptions {
  client: StreamManagerClientLike;
  /** The service's mappings (serverless.yml, resolved). */
  definition: ServiceDefinition;
  /** Checkpoints and the dead-letter file. */
  stateDir: string;
  /** Replaces `PREFIX-` in the export stream names (the deployment's stream prefix). */
  exportPrefix: string;
  /** Environment for the handlers besides the defaults (MODEL_DIR, CONFIDENCE_THRESHOLD...). */
  env?: Record<string, string>;
  /** Replace a function's handler (key as in serverless.yml); the real module is loaded otherwise. */
  handlers?: Record<string, StreamHandler>;
  logger?: RunnerLogger;
  retryBaseDelayMs?: number;
  /** Stream Manager dropped messages before they were read (stream full or past its TTL). */
  onGap?: (stream: string, expected: number, got: number) => void;
}

export interface StreamManagerHost {
  runner: EventSourceMappingRunner;
  stop(): Promise<void>;
}

async function loadHandler(mapping: StreamMapping): Promise<StreamHandler> {
  const dot = mapping.handler.lastIndexOf('.');
  const loaded = require(join(REPO_ROOT, mapping.handler.slice(0, dot))) as Record<string, unknown>;
  const handler = loaded[mapping.handler.slice(dot + 1)];
  if (typeof handler !== 'function') throw new Error(`${mapping.handler}: no exported function`);
  await loaded.ready;
  return handler as StreamHandler;
}

/** Creates the streams, loads the handlers (in this process) and starts reading. */
export async function startStreamManagerHost(options: StreamManagerHostOptions): Promise<StreamManagerHost> {
  const { client, definition } = options;
  await ensureMessageStreams(client, loadStreamDefinitions(options.exportPrefix));
  // Before the handler modules load: they take their sink once, at cold start.
  useHostSink(new StreamManagerRecordSink(client));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(definition.environment)) {
    if (key === 'NODE_OPTIONS' || key === 'KINESIS_ENDPOINT') continue;
    env[key] = process.env[key] ?? value;
  }
  // Stream Manager stream names are the base names; the prefix applies to the exports only.
  Object.assign(
    process.env,
    env,
    {
      STREAM_PREFIX: '',
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      // The aggregator's memory of counted frames outlives a restart, like the checkpoints.
      METRICS_COUNTED_FRAMES_DIR: join(options.stateDir, COUNTED_FRAMES_FOLDER),
    },
    options.env,
  );
  delete process.env.KINESIS_ENDPOINT;
  mkdirSync(options.stateDir, { recursive: true });
  const runner = new EventSourceMappingRunner({
    client: kinesisClientOverStreamManager(client, definition.region, options.onGap ? { onGap: options.onGap } : {}),
    streamPrefix: '',
    region: definition.region,
    checkpointFile: join(options.stateDir, 'checkpoints.json'),
    deadLetterFile: join(options.stateDir, 'dead-letter.jsonl'),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.retryBaseDelayMs !== undefined ? { retryBaseDelayMs: options.retryBaseDelayMs } : {}),
  });
  for (const mapping of definition.mappings) {
    runner.add(mapping, options.handlers?.[mapping.functionKey] ?? (await loadHandler(mapping)));
  }
  await runner.start();
  return {
    runner,
    stop: async () => {
      await runner.stop();
    },
  };
}
