/**
 * Folds prediction records into the state of one tumbling window. The state is what Lambda
 * hands back on the next invocation of the same window (capped at 1 MB per shard), so it
 * holds counters and histograms only, never per-frame lists: its size depends on the number
 * of cameras, model versions and latency spread, not on the number of frames.
 */
import { z } from 'zod';
import type { Prediction, RejectedImage, ShadowScore } from '../contracts';
import { REJECT_REASONS, type RejectReason } from '../errors';
import { histogramDataSchema, LogLinearHistogram } from './histogram';
import { SeenFrames } from './seen-frames';

/** Bumped when the state's shape changes; a state of another version is not trusted. */
export const STATE_VERSION = 1;

/** Reasons a `predictions` record could not be counted. */
export const INVALID_REASONS = ['invalid_json', 'invalid_record'] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

/**
 * Cameras counted individually per window and shard; frames from further cameras are counted
 * together under {@link OTHER_CAMERAS}. Each camera costs about 1 KB of state and of
 * document (its histogram), so this keeps both far below the 1 MB state cap and the 1 MiB
 * Kinesis record limit whatever the number of cameras behind one shard.
 */
export const MAX_TRACKED_CAMERAS = 200;

/** Key of the frames from cameras past {@link MAX_TRACKED_CAMERAS}; no camera id can start with "(". */
export const OTHER_CAMERAS = '(other)';

/** Key of rejects whose camera could not be read. */
export const UNKNOWN_CAMERA = '(unknown)';

/** Reject counts of one camera, by reason. */
export type RejectCounts = Partial<Record<RejectReason, number>>;

/** Unparseable records kept as examples per window, and the length of each error kept. */
export const MAX_INVALID_EXAMPLES = 5;
export const MAX_INVALID_ERROR_LENGTH = 300;

const count = z.number().int().nonnegative();
const digitCounts = z.array(count).length(10);

export const invalidExampleSchema = z.object({
  sequence_number: z.string(),
  reason: z.enum(INVALID_REASONS),
  error: z.string(),
});
export type InvalidExample = z.infer<typeof invalidExampleSchema>;

/** Frames where the shadow candidate disagreed, kept as examples per window and model pair. */
export const MAX_SHADOW_DISAGREEMENTS = 5;

export const shadowDisagreementSchema = z.object({
  frame_id: z.string(),
  camera: z.string(),
  current_class: z.number().int(),
  candidate_class: z.number().int(),
  candidate_probability: z.number(),
  label: z.number().int().optional(),
});
export type ShadowDisagreement = z.infer<typeof shadowDisagreementSchema>;

/** One current x candidate pair's comparison over a window (state and document alike). */
export const shadowTallySchema = z.object({
  current: z.string(),
  candidate: z.string(),
  count,
  agree: count,
  /** 100 counts: row = the current model's class, column = the candidate's. */
  confusion: z.array(count).length(100),
  /** Labelled frames, and how many each model got right. */
  labelled: count,
  current_correct: count,
  candidate_correct: count,
  disagreements: z.array(shadowDisagreementSchema).max(MAX_SHADOW_DISAGREEMENTS),
});
export type ShadowTally = z.infer<typeof shadowTallySchema>;

/** Per model version: what it scored in the window. */
export const versionTallySchema = z.object({ count, uncertain: count, labelled: count, correct: count });
export type VersionTally = z.infer<typeof versionTallySchema>;

const cameraStateSchema = z.object({
  certain: digitCounts,
  uncertain: digitCounts,
  probability_sum: z.number().nonnegative(),
  blank: count,
  labelled: count,
  correct: count,
  end_to_end_negative: count,
  end_to_end: histogramDataSchema,
});
type CameraState = z.infer<typeof cameraStateSchema>;

/** The tumbling-window state returned to Lambda on every invocation. */
export const windowStateSchema = z.object({
  version: z.literal(STATE_VERSION),
  first_sequence: z.string().nullable(),
  count,
  invalid: z.partialRecord(z.enum(INVALID_REASONS), count),
  invalid_examples: z.array(invalidExampleSchema).max(MAX_INVALID_EXAMPLES),
  prep: histogramDataSchema,
  predict: histogramDataSchema,
  end_to_end: histogramDataSchema,
  cameras: z.record(z.string(), cameraStateSchema),
  model_versions: z.record(z.string(), count),
  /** Digests of the frames counted (seen-frames.ts); absent in states written before it. */
  seen: z.string().default(''),
  duplicates: count.default(0),
  unchecked: count.default(0),
  /** Rejects per camera and reason. */
  rejected: z.record(z.string(), z.partialRecord(z.enum(REJECT_REASONS), count)).default({}),
  /** Absent in states written before shadow scoring and the per-version split existed. */
  versions: z.record(z.string(), versionTallySchema).optional(),
  shadow: z.array(shadowTallySchema).optional(),
});
export type WindowState = z.infer<typeof windowStateSchema>;

/** Per-camera tallies while a window is being folded. */
export interface CameraTally {
  certain: number[];
  uncertain: number[];
  probabilitySum: number;
  blank: number;
  labelled: number;
  correct: number;
  endToEndNegative: number;
  endToEnd: LogLinearHistogram;
}

function newCameraTally(): CameraTally {
  return {
    certain: new Array<number>(10).fill(0),
    uncertain: new Array<number>(10).fill(0),
    probabilitySum: 0,
    blank: 0,
    labelled: 0,
    correct: 0,
    endToEndNegative: 0,
    endToEnd: new LogLinearHistogram(),
  };
}

/** Kinesis sequence numbers are decimal strings of up to 128-bit integers. */
export function compareSequenceNumbers(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Seconds from capture (`timestamp`) to scoring (`scored_at`), or null when either cannot
 * be read as a date.
 */
export function endToEndSeconds(prediction: Pick<Prediction, 'timestamp' | 'scored_at'>): number | null {
  const captured = Date.parse(prediction.timestamp);
  const scored = Date.parse(prediction.scored_at);
  if (Number.isNaN(captured) || Number.isNaN(scored)) return null;
  return (scored - captured) / 1000;
}

/**
 * The live form of a window: histograms and counters that predictions are folded into,
 * convertible to and from the JSON state Lambda carries between invocations.
 */
export class WindowAccumulator {
  firstSequence: string | null = null;
  count = 0;
  readonly invalid = new Map<InvalidReason, number>();
  readonly invalidExamples: InvalidExample[] = [];
  readonly prep = new LogLinearHistogram();
  readonly predict = new LogLinearHistogram();
  readonly endToEnd = new LogLinearHistogram();
  readonly cameras = new Map<string, CameraTally>();
  readonly modelVersions = new Map<string, number>();
  /** Frames counted so far in this window (not carried by documents, so not merged). */
  seen = new SeenFrames();
  /**
   * True for the digest of a frame an earlier window's document counted (counted-frames.ts);
   * not carried by the state: the aggregator sets it on every invocation.
   */
  countedBefore: ((digest: string) => boolean) | undefined;
  /** Frames delivered again (within the window, or counted by an earlier window) and not counted again. */
  duplicates = 0;
  /** Frames counted without the duplicate check, the window's memory being full. */
  unchecked = 0;
  /** Rejects per camera and reason (cameras past {@link MAX_TRACKED_CAMERAS} as {@link OTHER_CAMERAS}). */
  readonly rejected = new Map<string, Map<RejectReason, number>>();
  /** Per model version: frames, uncertain, labelled, correct. */
  readonly versions = new Map<string, VersionTally>();
  /** Shadow comparisons, keyed `<current>\n<candidate>`. */
  readonly shadow = new Map<string, ShadowTally>();

  /**
   * @param confidence a frame is certain when its probability is strictly above this, as
   *   in the original's `camera_metrics`.
   */
  constructor(readonly confidence: number) {}

  /** Rebuilds the accumulator from a state this module produced (already validated). */
  static fromState(state: WindowState, confidence: number): WindowAccumulator {
    const acc = new WindowAccumulator(confidence);
    acc.firstSequence = state.first_sequence;
    acc.count = state.count;
    for (const reason of INVALID_REASONS) {
      const n = state.invalid[reason];
      if (n) acc.invalid.set(reason, n);
    }
    acc.invalidExamples.push(...state.invalid_examples);
    acc.prep.merge(LogLinearHistogram.fromData(state.prep));
    acc.predict.merge(LogLinearHistogram.fromData(state.predict));
    acc.endToEnd.merge(LogLinearHistogram.fromData(state.end_to_end));
    for (const [camera, tally] of Object.entries(state.cameras)) {
      acc.cameras.set(camera, {
        certain: [...tally.certain],
        uncertain: [...tally.uncertain],
        probabilitySum: tally.probability_sum,
        blank: tally.blank,
        labelled: tally.labelled,
        correct: tally.correct,
        endToEndNegative: tally.end_to_end_negative,
        endToEnd: LogLinearHistogram.fromData(tally.end_to_end),
      });
    }
    for (const [version, n] of Object.entries(state.model_versions)) acc.modelVersions.set(version, n);
    for (const [version, tally] of Object.entries(state.versions ?? {})) acc.versions.set(version, { ...tally });
    for (const tally of state.shadow ?? []) acc.mergeShadow(tally);
    acc.seen = SeenFrames.fromState(state.seen);
    acc.duplicates = state.duplicates;
    acc.unchecked = state.unchecked;
    for (const [camera, reasons] of Object.entries(state.rejected)) {
      acc.rejected.set(camera, new Map(Object.entries(reasons) as [RejectReason, number][]));
    }
    return acc;
  }

  /** True the first time a frame is seen in this window; a repeat is counted as a duplicate. */
  private firstTime(frameId: string): boolean {
    const seen = this.seen.note(frameId, this.countedBefore);
    if (seen === 'duplicate') {
      this.duplicates += 1;
      return false;
    }
    if (seen === 'unchecked') this.unchecked += 1;
    return true;
  }

  /** Counts one reject of the classify stage by camera and reason, once per frame. */
  addReject(reject: Pick<RejectedImage, 'frame_id' | 'camera' | 'reason'>): void {
    if (!this.firstTime(reject.frame_id)) return;
    this.countReject(reject.camera ?? UNKNOWN_CAMERA, reject.reason, 1);
  }

  private countReject(cameraId: string, reason: RejectReason, n: number): void {
    let camera = cameraId;
    if (!this.rejected.has(camera) && this.rejected.size >= MAX_TRACKED_CAMERAS) camera = OTHER_CAMERAS;
    const reasons = this.rejected.get(camera) ?? new Map<RejectReason, number>();
    this.rejected.set(camera, reasons);
    reasons.set(reason, (reasons.get(reason) ?? 0) + n);
  }

  /** Rejects counted. */
  get rejectedCount(): number {
    let total = 0;
    for (const reasons of this.rejected.values()) for (const n of reasons.values()) total += n;
    return total;
  }

  /** Counts one frame the shadow candidate scored beside the current model. */
  addShadow(score: ShadowScore): void {
    // A shadow score shares its frame_id with the frame's prediction: a kind of its own, so an
    // accumulator that folds both (as merged windows do) does not take one for a repeat of the other.
    if (!this.firstTime(`shadow/${score.frame_id}`)) return;
    const tally = this.shadowTally(score.model_version, score.shadow_version);
    tally.count += 1;
    const agree = score.result_class === score.shadow_class;
    if (agree) tally.agree += 1;
    const cell = score.result_class * 10 + score.shadow_class;
    tally.confusion[cell] = (tally.confusion[cell] ?? 0) + 1;
    if (score.label !== undefined) {
      tally.labelled += 1;
      if (score.label === score.result_class) tally.current_correct += 1;
      if (score.label === score.shadow_class) tally.candidate_correct += 1;
    }
    if (!agree && tally.disagreements.length < MAX_SHADOW_DISAGREEMENTS) {
      tally.disagreements.push({
        frame_id: score.frame_id,
        camera: score.camera,
        current_class: score.result_class,
        candidate_class: score.shadow_class,
        candidate_probability: score.shadow_probability,
        ...(score.label !== undefined ? { label: score.label } : {}),
      });
    }
  }

  private shadowTally(current: string, candidate: string): ShadowTally {
    const key = `${current}\n${candidate}`;
    let tally = this.shadow.get(key);
    if (!tally) {
      tally = {
        current,
        candidate,
        count: 0,
        agree: 0,
        confusion: new Array<number>(100).fill(0),
        labelled: 0,
        current_correct: 0,
        candidate_correct: 0,
        disagreements: [],
      };
      this.shadow.set(key, tally);
    }
    return tally;
  }

  /** Adds another window's (or shard's) comparison of the same pair. */
  mergeShadow(other: ShadowTally): void {
    const tally = this.shadowTally(other.current, other.candidate);
    tally.count += other.count;
    tally.agree += other.agree;
    for (let i = 0; i < 100; i += 1) tally.confusion[i] = (tally.confusion[i] ?? 0) + (other.confusion[i] ?? 0);
    tally.labelled += other.labelled;
    tally.current_correct += other.current_correct;
    tally.candidate_correct += other.candidate_correct;
    for (const d of other.disagreements) {
      if (tally.disagreements.length < MAX_SHADOW_DISAGREEMENTS) tally.disagreements.push({ ...d });
    }
  }

  /** Adds another accumulator's per-version tallies. */
  mergeVersion(version: string, other: VersionTally): void {
    const ours = this.versions.get(version) ?? { count: 0, uncertain: 0, labelled: 0, correct: 0 };
    ours.count += other.count;
    ours.uncertain += other.uncertain;
    ours.labelled += other.labelled;
    ours.correct += other.correct;
    this.versions.set(version, ours);
  }

  /** Notes the sequence number of a folded record, valid or not, to name the window. */
  noteSequence(sequenceNumber: string): void {
    if (this.firstSequence === null || compareSequenceNumbers(sequenceNumber, this.firstSequence) < 0) {
      this.firstSequence = sequenceNumber;
    }
  }

  /** Counts one prediction, once per frame: a repeat within the window counts as a duplicate. */
  add(prediction: Prediction): void {
    if (!this.firstTime(prediction.frame_id)) return;
    this.count += 1;
    let camera = prediction.camera;
    if (!this.cameras.has(camera) && this.cameras.size >= MAX_TRACKED_CAMERAS) camera = OTHER_CAMERAS;
    let tally = this.cameras.get(camera);
    if (!tally) {
      tally = newCameraTally();
      this.cameras.set(camera, tally);
    }
    const digit = prediction.result_class;
    const certain = prediction.result_probability > this.confidence;
    const slots = certain ? tally.certain : tally.uncertain;
    slots[digit] = (slots[digit] ?? 0) + 1;
    tally.probabilitySum += prediction.result_probability;
    if (prediction.blank) tally.blank += 1;
    if (prediction.label !== undefined) {
      tally.labelled += 1;
      if (prediction.label === digit) tally.correct += 1;
    }
    this.prep.record(prediction.prep_time);
    this.predict.record(prediction.predict_time);
    const e2e = endToEndSeconds(prediction);
    if (e2e !== null) {
      // A camera clock ahead of the scorer's gives a negative latency: counted, recorded as 0.
      if (e2e < 0) tally.endToEndNegative += 1;
      const measured = Math.max(0, e2e);
      this.endToEnd.record(measured);
      tally.endToEnd.record(measured);
    }
    this.modelVersions.set(prediction.model_version, (this.modelVersions.get(prediction.model_version) ?? 0) + 1);
    this.mergeVersion(prediction.model_version, {
      count: 1,
      uncertain: certain ? 0 : 1,
      labelled: prediction.label !== undefined ? 1 : 0,
      correct: prediction.label !== undefined && prediction.label === digit ? 1 : 0,
    });
  }

  /** Counts one record that could not be read as a prediction, keeping a few as examples. */
  addInvalid(reason: InvalidReason, sequenceNumber: string, error: string): void {
    this.invalid.set(reason, (this.invalid.get(reason) ?? 0) + 1);
    if (this.invalidExamples.length < MAX_INVALID_EXAMPLES) {
      this.invalidExamples.push({
        sequence_number: sequenceNumber,
        reason,
        error: error.length > MAX_INVALID_ERROR_LENGTH ? `${error.slice(0, MAX_INVALID_ERROR_LENGTH - 1)}…` : error,
      });
    }
  }

  /** Records that could not be read as predictions. */
  get invalidCount(): number {
    let total = 0;
    for (const n of this.invalid.values()) total += n;
    return total;
  }

  /** True when nothing at all was folded: such a window produces no document. */
  get empty(): boolean {
    return (
      this.count === 0 && this.invalidCount === 0 && this.shadow.size === 0 && this.rejected.size === 0 && this.duplicates === 0
    );
  }

  /** Adds another accumulator's counts (used to merge shard documents). */
  merge(other: WindowAccumulator): this {
    if (other.firstSequence !== null) this.noteSequence(other.firstSequence);
    this.count += other.count;
    for (const [reason, n] of other.invalid) this.invalid.set(reason, (this.invalid.get(reason) ?? 0) + n);
    for (const example of other.invalidExamples) {
      if (this.invalidExamples.length < MAX_INVALID_EXAMPLES) this.invalidExamples.push(example);
    }
    this.prep.merge(other.prep);
    this.predict.merge(other.predict);
    this.endToEnd.merge(other.endToEnd);
    for (const [camera, theirs] of other.cameras) {
      const ours = this.cameras.get(camera) ?? newCameraTally();
      this.cameras.set(camera, ours);
      for (let d = 0; d < 10; d += 1) {
        ours.certain[d] = (ours.certain[d] ?? 0) + (theirs.certain[d] ?? 0);
        ours.uncertain[d] = (ours.uncertain[d] ?? 0) + (theirs.uncertain[d] ?? 0);
      }
      ours.probabilitySum += theirs.probabilitySum;
      ours.blank += theirs.blank;
      ours.labelled += theirs.labelled;
      ours.correct += theirs.correct;
      ours.endToEndNegative += theirs.endToEndNegative;
      ours.endToEnd.merge(theirs.endToEnd);
    }
    for (const [version, n] of other.modelVersions) {
      this.modelVersions.set(version, (this.modelVersions.get(version) ?? 0) + n);
    }
    this.duplicates += other.duplicates;
    this.unchecked += other.unchecked;
    for (const [camera, reasons] of other.rejected) for (const [reason, n] of reasons) this.countReject(camera, reason, n);
    for (const [version, tally] of other.versions) this.mergeVersion(version, tally);
    for (const tally of other.shadow.values()) this.mergeShadow(tally);
    return this;
  }

  /** The JSON state to hand back to Lambda. */
  toState(): WindowState {
    // Object.fromEntries defines own properties, so no camera id can reach a prototype.
    const cameras: Record<string, CameraState> = Object.fromEntries(
      [...this.cameras]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([camera, tally]) => [
          camera,
          {
            certain: [...tally.certain],
            uncertain: [...tally.uncertain],
            probability_sum: tally.probabilitySum,
            blank: tally.blank,
            labelled: tally.labelled,
            correct: tally.correct,
            end_to_end_negative: tally.endToEndNegative,
            end_to_end: tally.endToEnd.toData(),
          },
        ]),
    );
    return {
      version: STATE_VERSION,
      first_sequence: this.firstSequence,
      count: this.count,
      invalid: Object.fromEntries(this.invalid),
      invalid_examples: [...this.invalidExamples],
      prep: this.prep.toData(),
      predict: this.predict.toData(),
      end_to_end: this.endToEnd.toData(),
      cameras,
      model_versions: Object.fromEntries(this.modelVersions),
      seen: this.seen.toState(),
      duplicates: this.duplicates,
      unchecked: this.unchecked,
      rejected: Object.fromEntries([...this.rejected].map(([camera, reasons]) => [camera, Object.fromEntries(reasons)])),
      ...(this.versions.size > 0 ? { versions: Object.fromEntries([...this.versions].map(([v, t]) => [v, { ...t }])) } : {}),
      ...(this.shadow.size > 0 ? { shadow: [...this.shadow.values()].map((t) => structuredClone(t)) } : {}),
    };
  }
}

/** Outcome of reading the `state` Lambda passed in. */
export type StateReadResult =
  | { ok: true; accumulator: WindowAccumulator; fresh: boolean }
  | { ok: false; accumulator: WindowAccumulator; error: string };

/**
 * Reads the window state Lambda passed in: an absent or empty state starts a new window. A
 * state this version cannot read (another deployment's, mid-window) is reported and replaced
 * by an empty one rather than failing the window forever; the caller logs it.
 */
export function readWindowState(state: unknown, confidence: number): StateReadResult {
  if (state === undefined || state === null || (typeof state === 'object' && Object.keys(state).length === 0)) {
    return { ok: true, accumulator: new WindowAccumulator(confidence), fresh: true };
  }
  const parsed = windowStateSchema.safeParse(state);
  if (!parsed.success) {
    return { ok: false, accumulator: new WindowAccumulator(confidence), error: z.prettifyError(parsed.error) };
  }
  try {
    return { ok: true, accumulator: WindowAccumulator.fromState(parsed.data, confidence), fresh: false };
  } catch (error: unknown) {
    return {
      ok: false,
      accumulator: new WindowAccumulator(confidence),
      error: error instanceof Error ? error.message : String(error),
    };
  }
}
