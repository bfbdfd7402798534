/**
 * The uplink's settings, modelled on Greengrass Stream Manager's export to Kinesis: a bounded
 * local store per device (`maxSize`, 256 MB by default) with a strategy when full
 * (`RejectNewData` / `OverwriteOldestData`), export batches (`batchSize` up to 500,
 * `batchIntervalMillis`), a priority per export (1 = first), retries at intervals of up to five
 * minutes with no limit on attempts, and a device-wide bandwidth cap in kilobits per second
 * (`STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH`).
 */
import { z } from 'zod';
import { STREAMS } from '../../functions/lib/contracts';

/** What to do with a record when the backlog is full. */
export const UPLINK_POLICIES = ['reject-new', 'drop-oldest'] as const;
export type UplinkPolicy = (typeof UPLINK_POLICIES)[number];

/**
 * Streams the uplink may forward, first sent first: the metrics documents (small, and what a
 * person watches), then rejects (a camera or a sender is broken), then the uncertain images
 * (the bulk), then, when asked, every prediction.
 */
export const UPLINK_PRIORITY = [STREAMS.metrics, STREAMS.rejectedImages, STREAMS.uncertainImages, STREAMS.predictions] as const;
export type UplinkStream = (typeof UPLINK_PRIORITY)[number];

/** The streams forwarded unless predictions are asked for too. */
export const DEFAULT_UPLINK_STREAMS: readonly UplinkStream[] = [STREAMS.metrics, STREAMS.rejectedImages, STREAMS.uncertainImages];

export const UPLINK_DEFAULTS = {
  maxMegabytes: 256,
  policy: 'reject-new' as UplinkPolicy,
  /** 0 = no cap. */
  kbps: 0,
  intervalSeconds: 1,
  /** Stream Manager's Kinesis export default and PutRecords' limit. */
  batchSize: 500,
  retryBaseMs: 1000,
  /** Stream Manager retries "at intervals of up to five minutes". */
  retryMaxMs: 300_000,
} as const;

export const uplinkSettingsSchema = z.object({
  /** The home's Kinesis endpoint URL, or "aws" for the regional AWS endpoint. */
  endpoint: z.union([z.literal('aws'), z.url({ protocol: /^https?$/, error: 'must be an http(s) URL or "aws"' })]),
  /** Prepended to each stream name at home (a deployment's `<service>-<stage>-`). */
  streamPrefix: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-" only')
    .default(''),
  streams: z
    .array(z.enum(UPLINK_PRIORITY))
    .min(1)
    .default([...DEFAULT_UPLINK_STREAMS]),
  maxBytes: z
    .number()
    .int()
    .min(1024)
    .default(UPLINK_DEFAULTS.maxMegabytes * 1024 * 1024),
  policy: z.enum(UPLINK_POLICIES).default(UPLINK_DEFAULTS.policy),
  /** Kilobits per second over the link, 0 = no cap. */
  kbps: z.number().min(0).default(UPLINK_DEFAULTS.kbps),
  /** A stream's records are sent once its oldest waited this long, or a full batch is ready. */
  intervalMs: z
    .number()
    .int()
    .min(0)
    .default(UPLINK_DEFAULTS.intervalSeconds * 1000),
  batchSize: z.number().int().min(1).max(500).default(UPLINK_DEFAULTS.batchSize),
  retryBaseMs: z.number().int().min(1).default(UPLINK_DEFAULTS.retryBaseMs),
  retryMaxMs: z.number().int().min(1).default(UPLINK_DEFAULTS.retryMaxMs),
});
export type UplinkSettingsInput = z.input<typeof uplinkSettingsSchema>;
export type UplinkSettings = z.output<typeof uplinkSettingsSchema>;

/** Validates uplink settings; throws a zod error naming the bad field. */
export function parseUplinkSettings(input: UplinkSettingsInput): UplinkSettings {
  return uplinkSettingsSchema.parse(input);
}

/** Priority rank of a stream: 0 is sent first. */
export function priorityOf(stream: string): number {
  const rank = (UPLINK_PRIORITY as readonly string[]).indexOf(stream);
  return rank < 0 ? UPLINK_PRIORITY.length : rank;
}
