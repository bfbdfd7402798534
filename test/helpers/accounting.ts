/**
 * The "nothing lost" ledger of a pipeline run, read from the streams themselves: every frame
 * that went into camera-images must come out as a prediction or a reject (or, when its
 * outputs could never be written, in the on-failure destination), uncertain images must be
 * predicted frames, and a frame may appear more than once on an output stream only when its
 * source record was delivered more than once.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  type Prediction,
  predictionSchema,
  type RejectedImage,
  rejectedImageSchema,
  type UncertainImage,
  uncertainImageSchema,
} from '../../functions/lib/contracts';
import type { MetricsDocument } from '../../functions/lib/metrics/document';
import { mergeMetrics } from '../../functions/lib/metrics/merge';
import type { DeadLetterRecord } from '../../local/runner';
import { streamReader } from './stream-reader';

export interface StreamContents {
  /** Frame ids (`<shardId>-<sequenceNumber>`) of every camera-images record. */
  inputs: string[];
  predictions: Prediction[];
  uncertain: UncertainImage[];
  rejected: RejectedImage[];
  /** Records whose outputs did not parse against their contract, per stream. */
  unreadable: number;
}

/** Reads camera-images and the three classify outputs back from the emulator. */
export async function readStreams(client: KinesisClient, prefix = ''): Promise<StreamContents> {
  const reader = streamReader(client);
  let unreadable = 0;
  const parse = <T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, data: Buffer): T[] => {
    try {
      const parsed = schema.safeParse(JSON.parse(data.toString('utf8')));
      if (parsed.success) return [parsed.data];
    } catch {
      // counted below
    }
    unreadable += 1;
    return [];
  };
  const inputs = (await reader.readAll(`${prefix}camera-images`)).map((r) => `${r.shardId}-${r.sequenceNumber}`);
  const predictions = (await reader.readAll(`${prefix}predictions`)).flatMap((r) => parse<Prediction>(predictionSchema, r.data));
  const uncertain = (await reader.readAll(`${prefix}uncertain-images`)).flatMap((r) =>
    parse<UncertainImage>(uncertainImageSchema, r.data),
  );
  const rejected = (await reader.readAll(`${prefix}rejected-images`)).flatMap((r) =>
    parse<RejectedImage>(rejectedImageSchema, r.data),
  );
  return { inputs, predictions, uncertain, rejected, unreadable };
}

/** Frame ids of the records an on-failure record carries. */
export function deadLetteredIds(records: readonly DeadLetterRecord[]): Set<string> {
  return new Set(records.flatMap((d) => d.records.map((r) => `${d.KinesisBatchInfo.shardId}-${r.sequenceNumber}`)));
}

export interface Ledger {
  framesIn: number;
  predicted: number;
  uncertain: number;
  rejected: number;
  /** Frames found only in the on-failure destination. */
  deadLetteredOnly: string[];
  /** Frames in no output and not dead-lettered: lost. */
  missing: string[];
  /** Frames both predicted and rejected. */
  predictedAndRejected: string[];
  /** Uncertain frames with no prediction (allowed only for dead-lettered frames). */
  uncertainNotPredicted: string[];
  /** Output records whose frame id no input had. */
  strangers: string[];
  /** Output records beyond the first, per stream. */
  duplicates: { predictions: number; uncertain: number; rejected: number };
  /** Frames written more than once although their source record was delivered once. */
  duplicatedWithoutRedelivery: string[];
}

function counts(ids: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const id of ids) out.set(id, (out.get(id) ?? 0) + 1);
  return out;
}

/**
 * Balances a run. `deliveries` (frame id -> invocations that carried it), when known, lets
 * the ledger tell duplicates caused by redelivery from duplicates that should not exist.
 */
export function balance(
  contents: StreamContents,
  deadLettered: ReadonlySet<string> = new Set(),
  deliveries?: ReadonlyMap<string, number>,
): Ledger {
  const inputs = new Set(contents.inputs);
  const predicted = counts(contents.predictions.map((p) => p.frame_id));
  const uncertain = counts(contents.uncertain.map((u) => u.frame_id));
  const rejected = counts(contents.rejected.map((r) => r.frame_id));
  const missing: string[] = [];
  const deadLetteredOnly: string[] = [];
  for (const id of inputs) {
    if (predicted.has(id) || rejected.has(id)) continue;
    if (deadLettered.has(id)) deadLetteredOnly.push(id);
    else missing.push(id);
  }
  const duplicatedWithoutRedelivery: string[] = [];
  if (deliveries) {
    for (const map of [predicted, uncertain, rejected]) {
      for (const [id, copies] of map) if (copies > (deliveries.get(id) ?? 1)) duplicatedWithoutRedelivery.push(id);
    }
  }
  const extra = (map: Map<string, number>) => [...map.values()].reduce((sum, n) => sum + n - 1, 0);
  return {
    framesIn: inputs.size,
    predicted: predicted.size,
    uncertain: uncertain.size,
    rejected: rejected.size,
    deadLetteredOnly,
    missing,
    predictedAndRejected: [...predicted.keys()].filter((id) => rejected.has(id)),
    uncertainNotPredicted: [...uncertain.keys()].filter((id) => !predicted.has(id)),
    strangers: [...new Set([...predicted.keys(), ...uncertain.keys(), ...rejected.keys()])].filter((id) => !inputs.has(id)),
    duplicates: { predictions: extra(predicted), uncertain: extra(uncertain), rejected: extra(rejected) },
    duplicatedWithoutRedelivery: [...new Set(duplicatedWithoutRedelivery)],
  };
}

/** Frames per camera as the streams hold them, each frame once however often it was written. */
export interface FramesPerCamera {
  predicted: Record<string, number>;
  rejected: Record<string, number>;
}

/** Distinct predicted and rejected frames per camera (a reject without a camera as `(unknown)`). */
export function distinctFramesPerCamera(contents: StreamContents): FramesPerCamera {
  const distinct = (pairs: [string, string][]): Record<string, number> => {
    const frames = new Map<string, Set<string>>();
    for (const [camera, frameId] of pairs) frames.set(camera, (frames.get(camera) ?? new Set()).add(frameId));
    return Object.fromEntries([...frames].map(([camera, ids]) => [camera, ids.size]));
  };
  return {
    predicted: distinct(contents.predictions.map((p) => [p.camera, p.frame_id])),
    rejected: distinct(contents.rejected.map((r) => [r.camera ?? '(unknown)', r.frame_id])),
  };
}

/**
 * What metrics documents counted per camera once merged, in the shape of
 * {@link distinctFramesPerCamera}, and their duplicates (none when there is no document).
 */
export function countedFramesPerCamera(documents: MetricsDocument[]): FramesPerCamera & { duplicates: number } {
  if (documents.length === 0) return { predicted: {}, rejected: {}, duplicates: 0 };
  const merged = mergeMetrics(documents);
  return {
    duplicates: merged.duplicates,
    predicted: Object.fromEntries(Object.entries(merged.camera_metrics).map(([camera, m]) => [camera, m.count])),
    rejected: Object.fromEntries(
      Object.entries(merged.rejected.cameras).map(([camera, reasons]) => [
        camera,
        Object.values(reasons).reduce((sum, n) => sum + (n ?? 0), 0),
      ]),
    ),
  };
}
