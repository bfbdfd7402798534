/**
 * The metrics document written to the `metrics` stream once per window and shard: every
 * field the original sent home (`camera_metrics`, `latency_metrics`, `config`, `timestamp`)
 * plus what its readers had to work out for themselves, and the histograms that let
 * {@link mergeMetrics} combine shard documents exactly.
 *
 * Percentile keys are "50", "75", "90" and "99", as the original named its percentiles;
 * times are in seconds; percentiles use numpy's default linear interpolation and are within
 * {@link RELATIVE_ERROR} of the exact values; min, max, mean and std (population) are exact.
 */
import { z } from 'zod';
import { histogramDataSchema, LogLinearHistogram, RELATIVE_ERROR } from './histogram';
import { REJECT_REASONS, type RejectReason } from '../errors';
import {
  INVALID_REASONS,
  invalidExampleSchema,
  type InvalidReason,
  type RejectCounts,
  shadowTallySchema,
  versionTallySchema,
  WindowAccumulator,
} from './reducer';

export { RELATIVE_ERROR };

/** The percentiles reported in every latency block, as the original had them. */
export const PERCENTILES = [50, 75, 90, 99] as const;

/** Written into every document so that no reader mistakes the window for capture time. */
export const WINDOW_NOTE =
  'Kinesis tumbling window: frames are grouped by their arrival time in the predictions stream, per shard, ' +
  'not by capture time; combine the shard documents of one window with mergeMetrics.';

const count = z.number().int().nonnegative();
const seconds = z.number().nullable();

/** `min, max, mean, std` and percentiles 50/75/90/99 in seconds (null when no frame). */
export const latencyBlockSchema = z.object({
  min: seconds,
  max: seconds,
  mean: seconds,
  std: seconds,
  '50': seconds,
  '75': seconds,
  '90': seconds,
  '99': seconds,
});
export type LatencyBlock = z.infer<typeof latencyBlockSchema>;

/**
 * Capture `timestamp` to `scored_at`. `count` frames had both readable; `negative` of them
 * had a capture time after the scoring time (a camera clock ahead) and count as 0 s.
 */
export const endToEndBlockSchema = latencyBlockSchema.extend({ count, negative: count });
export type EndToEndBlock = z.infer<typeof endToEndBlockSchema>;

export const cameraMetricsSchema = z.object({
  /** Frames per digit with probability > confidence (10 slots, digits 0-9). */
  certain: z.array(count).length(10),
  /** Frames per digit with probability <= confidence. */
  uncertain: z.array(count).length(10),
  count,
  mean_probability: z.number().nullable(),
  /** Frames with no ink, scored as blank. */
  blank: count,
  /** Present when some frames carried a label: correct / labelled. */
  accuracy: z.object({ correct: count, labelled: count, rate: z.number() }).optional(),
  end_to_end: endToEndBlockSchema,
});
export type CameraMetrics = z.infer<typeof cameraMetricsSchema>;

/** The run's settings, as the original reported them. */
export const metricsConfigSchema = z.object({
  delay: z.number().nonnegative(),
  repeat: z.number().int().nonnegative(),
  source: z.string(),
  confidence: z.number().min(0).max(1),
  classify_parallel: z.number().int().positive(),
  metrics_duration: z.number().positive(),
});
export type MetricsConfig = z.infer<typeof metricsConfigSchema>;

/**
 * A candidate in shadow against the current model over the window: frames both scored, how
 * many they agreed on (`agreement` = agree / count), the current x candidate confusion
 * (row-major, 10 x 10), accuracy of each on labelled frames, and a few disagreeing frames.
 */
export const shadowSummarySchema = shadowTallySchema.extend({ agreement: z.number().min(0).max(1) });
export type ShadowSummary = z.infer<typeof shadowSummarySchema>;

export const metricsDocumentSchema = z.object({
  /** `<shard>/<window start>/<first sequence number>`: the same for a retried write. */
  id: z.string(),
  /** Ids of the shard documents this one combines (just `id` for a shard document). */
  parts: z.array(z.string()).min(1),
  /** When the document was built (ISO-8601). */
  timestamp: z.string(),
  window: z.object({ start: z.string(), end: z.string(), note: z.string() }),
  /** The shard the window covers; shard ids joined with "," in a merged document. */
  shard: z.string(),
  /** Lambda ended the window before its end because the state grew past 1 MB. */
  terminated_early: z.boolean(),
  /** Predictions counted. */
  count,
  /** Predictions with probability <= confidence. */
  uncertain: count,
  /** Frames per second over the window's length. */
  throughput: z.number().nonnegative(),
  /** Per camera; past 200 cameras in one shard's window the rest are counted as "(other)". */
  camera_metrics: z.record(z.string(), cameraMetricsSchema),
  latency_metrics: z.object({
    prep: latencyBlockSchema,
    predict: latencyBlockSchema,
    end_to_end: endToEndBlockSchema,
  }),
  config: metricsConfigSchema,
  /** Model versions that scored the window's frames, with their frame counts. */
  model_versions: z.record(z.string(), count),
  /**
   * Counts split by the model version that scored the frames: frames, uncertain (probability
   * <= confidence), labelled and correct. Absent in documents of earlier releases.
   */
  version_metrics: z.record(z.string(), versionTallySchema).optional(),
  /** Shadow comparisons, one per current x candidate pair; absent when nothing ran in shadow. */
  shadow: z.array(shadowSummarySchema).optional(),
  /** Records on `predictions` that could not be read: never dropped silently. */
  invalid: z.object({
    count,
    reasons: z.partialRecord(z.enum(INVALID_REASONS), count),
    examples: z.array(invalidExampleSchema),
  }),
  /**
   * Frames delivered again within this window (a retried batch writes its outputs again) and
   * counted once; `unchecked` were counted without that check, the window's memory of frame
   * ids (50,000 per shard) being full. Absent in documents written before these fields: 0.
   */
  duplicates: count.default(0),
  unchecked: count.default(0),
  /**
   * Frames the classify stage rejected (read from `rejected-images`), by reason and by camera
   * and reason; a camera that could not be read is "(unknown)".
   */
  rejected: z
    .object({
      count,
      reasons: z.partialRecord(z.enum(REJECT_REASONS), count),
      cameras: z.record(z.string(), z.partialRecord(z.enum(REJECT_REASONS), count)),
    })
    .default({ count: 0, reasons: {}, cameras: {} }),
  /**
   * Mergeable histograms behind the latency blocks (see histogram.ts). `cameras` is empty
   * only when the document would otherwise exceed Kinesis' record limit.
   */
  histograms: z.object({
    prep: histogramDataSchema,
    predict: histogramDataSchema,
    end_to_end: histogramDataSchema,
    cameras: z.record(z.string(), histogramDataSchema),
  }),
});
export type MetricsDocument = z.infer<typeof metricsDocumentSchema>;

/** Summary block of a histogram. */
export function latencyBlock(histogram: LogLinearHistogram): LatencyBlock {
  const { min, max, mean, std } = histogram.summary();
  const [p50, p75, p90, p99] = histogram.percentiles(PERCENTILES);
  return { min, max, mean, std, '50': p50 ?? null, '75': p75 ?? null, '90': p90 ?? null, '99': p99 ?? null };
}

function windowSeconds(window: { start: string; end: string }): number {
  const ms = Date.parse(window.end) - Date.parse(window.start);
  return Number.isFinite(ms) && ms > 0 ? ms / 1000 : 0;
}

function byKey<T>(entries: Iterable<[string, T]>): [string, T][] {
  return [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What a document says about itself beyond the folded counts. */
export interface DocumentContext {
  window: { start: string; end: string };
  shard: string;
  terminatedEarly: boolean;
  config: MetricsConfig;
  /** Build time; defaults to now. */
  timestamp?: string;
  /** Defaults to the shard document id derived from shard, window start and first sequence. */
  id?: string;
  parts?: string[];
}

/** Id of a shard document: identical across retries of the same window's final write. */
export function documentId(shard: string, windowStart: string, firstSequence: string | null): string {
  return `${shard}/${windowStart}/${firstSequence ?? 'empty'}`;
}

/**
 * Builds the metrics document of a folded window. Pure apart from the default timestamp.
 */
export function buildMetricsDocument(acc: WindowAccumulator, context: DocumentContext): MetricsDocument {
  const id = context.id ?? documentId(context.shard, context.window.start, acc.firstSequence);
  const cameraMetrics: [string, CameraMetrics][] = [];
  const cameraHistograms: [string, ReturnType<LogLinearHistogram['toData']>][] = [];
  let uncertain = 0;
  for (const [camera, tally] of byKey(acc.cameras)) {
    const frames = tally.certain.reduce((a, b) => a + b, 0) + tally.uncertain.reduce((a, b) => a + b, 0);
    uncertain += tally.uncertain.reduce((a, b) => a + b, 0);
    cameraMetrics.push([
      camera,
      {
        certain: [...tally.certain],
        uncertain: [...tally.uncertain],
        count: frames,
        mean_probability: frames > 0 ? tally.probabilitySum / frames : null,
        blank: tally.blank,
        ...(tally.labelled > 0
          ? { accuracy: { correct: tally.correct, labelled: tally.labelled, rate: tally.correct / tally.labelled } }
          : {}),
        end_to_end: {
          ...latencyBlock(tally.endToEnd),
          count: tally.endToEnd.count,
          negative: tally.endToEndNegative,
        },
      },
    ]);
    cameraHistograms.push([camera, tally.endToEnd.toData()]);
  }
  let negative = 0;
  for (const tally of acc.cameras.values()) negative += tally.endToEndNegative;
  const rejectReasons = new Map<RejectReason, number>();
  const rejectCameras: [string, RejectCounts][] = [];
  for (const [camera, reasons] of byKey(acc.rejected)) {
    for (const [reason, n] of reasons) rejectReasons.set(reason, (rejectReasons.get(reason) ?? 0) + n);
    rejectCameras.push([camera, Object.fromEntries(byKey(reasons))]);
  }
  const duration = windowSeconds(context.window);
  return {
    id,
    parts: context.parts ?? [id],
    timestamp: context.timestamp ?? new Date().toISOString(),
    window: { start: context.window.start, end: context.window.end, note: WINDOW_NOTE },
    shard: context.shard,
    terminated_early: context.terminatedEarly,
    count: acc.count,
    uncertain,
    throughput: duration > 0 ? acc.count / duration : 0,
    camera_metrics: Object.fromEntries(cameraMetrics),
    latency_metrics: {
      prep: latencyBlock(acc.prep),
      predict: latencyBlock(acc.predict),
      end_to_end: { ...latencyBlock(acc.endToEnd), count: acc.endToEnd.count, negative },
    },
    config: context.config,
    model_versions: Object.fromEntries(byKey(acc.modelVersions)),
    ...(acc.versions.size > 0 ? { version_metrics: Object.fromEntries(byKey(acc.versions).map(([v, t]) => [v, { ...t }])) } : {}),
    ...(acc.shadow.size > 0
      ? {
          shadow: [...acc.shadow.values()]
            .sort((a, b) => (a.current + a.candidate < b.current + b.candidate ? -1 : 1))
            .map((t) => ({ ...structuredClone(t), agreement: t.count > 0 ? t.agree / t.count : 0 })),
        }
      : {}),
    invalid: {
      count: acc.invalidCount,
      reasons: Object.fromEntries(acc.invalid) as Partial<Record<InvalidReason, number>>,
      examples: [...acc.invalidExamples],
    },
    duplicates: acc.duplicates,
    unchecked: acc.unchecked,
    rejected: {
      count: acc.rejectedCount,
      reasons: Object.fromEntries(byKey(rejectReasons)),
      cameras: Object.fromEntries(rejectCameras),
    },
    histograms: {
      prep: acc.prep.toData(),
      predict: acc.predict.toData(),
      end_to_end: acc.endToEnd.toData(),
      cameras: Object.fromEntries(cameraHistograms),
    },
  };
}

/**
 * Rebuilds the accumulator a document was built from, so documents can be merged. Throws a
 * RangeError when the document's histograms and counts disagree.
 */
export function accumulatorFromDocument(doc: MetricsDocument): WindowAccumulator {
  const acc = new WindowAccumulator(doc.config.confidence);
  acc.count = doc.count;
  for (const reason of INVALID_REASONS) {
    const n = doc.invalid.reasons[reason];
    if (n) acc.invalid.set(reason, n);
  }
  acc.invalidExamples.push(...doc.invalid.examples);
  acc.prep.merge(LogLinearHistogram.fromData(doc.histograms.prep));
  acc.predict.merge(LogLinearHistogram.fromData(doc.histograms.predict));
  acc.endToEnd.merge(LogLinearHistogram.fromData(doc.histograms.end_to_end));
  for (const [camera, metrics] of Object.entries(doc.camera_metrics)) {
    const histogram = doc.histograms.cameras[camera];
    acc.cameras.set(camera, {
      certain: [...metrics.certain],
      uncertain: [...metrics.uncertain],
      probabilitySum: (metrics.mean_probability ?? 0) * metrics.count,
      blank: metrics.blank,
      labelled: metrics.accuracy?.labelled ?? 0,
      correct: metrics.accuracy?.correct ?? 0,
      endToEndNegative: metrics.end_to_end.negative,
      endToEnd: histogram ? LogLinearHistogram.fromData(histogram) : new LogLinearHistogram(),
    });
  }
  for (const [version, n] of Object.entries(doc.model_versions)) acc.modelVersions.set(version, n);
  acc.duplicates = doc.duplicates;
  acc.unchecked = doc.unchecked;
  for (const [camera, reasons] of Object.entries(doc.rejected.cameras)) {
    acc.rejected.set(camera, new Map(Object.entries(reasons) as [RejectReason, number][]));
  }
  for (const [version, tally] of Object.entries(doc.version_metrics ?? {})) acc.mergeVersion(version, tally);
  for (const { agreement: _agreement, ...tally } of doc.shadow ?? []) acc.mergeShadow(tally);
  return acc;
}
