/**
 * The stream handlers of the home: each turns one Kinesis batch of `uncertain-images`,
 * `rejected-images` or `metrics` into store entries with one append per batch. Records are
 * checked against their contracts; one that does not match is counted as unreadable and
 * skipped, never thrown (a batch that threw would be retried forever). Redeliveries are
 * dropped by the stores (frame_id / document id).
 */
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { z } from 'zod';
import { rejectedImageSchema, STREAMS, uncertainImageSchema } from '../functions/lib/contracts';
import { metricsDocumentSchema } from '../functions/lib/metrics/document';
import type { HomeStore } from './store';

/** The streams the home reads, by base name. */
export const HOME_STREAMS = [STREAMS.uncertainImages, STREAMS.rejectedImages, STREAMS.metrics] as const;
export type HomeStream = (typeof HOME_STREAMS)[number];

export type HomeHandler = (event: KinesisStreamEvent) => Promise<void>;

function decodeAll<T>(store: HomeStore, stream: string, records: readonly KinesisStreamRecord[], schema: z.ZodType<T>): T[] {
  const out: T[] = [];
  for (const record of records) {
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
    } catch {
      store.countUnreadable(stream);
      continue;
    }
    const parsed = schema.safeParse(value);
    if (parsed.success) out.push(parsed.data);
    else store.countUnreadable(stream);
  }
  return out;
}

/** Handlers keyed by base stream name, for the event source mapping runner. */
export function homeHandlers(store: HomeStore): Record<HomeStream, HomeHandler> {
  return {
    'uncertain-images': async (event) => {
      store.addFrames(decodeAll(store, STREAMS.uncertainImages, event.Records, uncertainImageSchema));
    },
    'rejected-images': async (event) => {
      store.addRejects(decodeAll(store, STREAMS.rejectedImages, event.Records, rejectedImageSchema));
    },
    metrics: async (event) => {
      store.addMetrics(decodeAll(store, STREAMS.metrics, event.Records, metricsDocumentSchema));
    },
  };
}
