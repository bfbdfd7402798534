/**
 * The home's stand-in for the cloud: a second embedded emulator on its own port holding the
 * streams the edge's uplink forwards to (uncertain images, rejects, metrics, and predictions
 * for `--uplink-predictions`), in memory or persisted, so the edge and the home run as two
 * processes on one machine.
 */
import { join } from 'node:path';
import { STREAMS } from '../functions/lib/contracts';
import { createKinesisClient } from '../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from './emulator';

/** The home streams' port unless told otherwise (the edge's emulator is on 4567). */
export const DEFAULT_HOME_STREAMS_PORT = 4568;

/** Streams the home holds (base names). */
export const HOME_STREAMS = [STREAMS.uncertainImages, STREAMS.rejectedImages, STREAMS.metrics, STREAMS.predictions] as const;

export interface HomeStreamsOptions {
  /** Port on 127.0.0.1 (0 picks a free one). Default 4568. */
  port?: number;
  /** Keep the streams on disk here (in `<dir>/home-kinesis`); unset keeps them in memory. */
  persistDir?: string;
  /** Prepended to each stream name (the edge's `--home-stream-prefix`). */
  streamPrefix?: string;
}

export interface HomeStreams {
  endpoint: string;
  emulator: KinesisEmulator;
  stop(): Promise<void>;
}

/** Starts the home emulator and creates the home streams (kept if they exist). Rejects if the port is taken. */
export async function startHomeStreams(options: HomeStreamsOptions = {}): Promise<HomeStreams> {
  const emulator = await KinesisEmulator.start({
    port: options.port ?? DEFAULT_HOME_STREAMS_PORT,
    ...(options.persistDir ? { persistPath: join(options.persistDir, 'home-kinesis') } : {}),
  });
  const client = createKinesisClient({ endpoint: emulator.endpoint });
  try {
    await ensureStreams(
      client,
      HOME_STREAMS.map((name) => ({ name: `${options.streamPrefix ?? ''}${name}`, shards: 1 })),
    );
  } catch (error: unknown) {
    await emulator.stop();
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint: emulator.endpoint, emulator, stop: () => emulator.stop() };
}
