import type { DigitModel } from '../functions/lib/model';
import { loadMnist, renderOriginalFrame } from '../functions/lib/mnist';
import { preparePng } from '../functions/lib/prepare';
import { argmax, evaluate, type Evaluation } from './metrics';

const BATCH = 1000;

/**
 * The full MNIST test set (or its first `limit` images) prepared exactly as the pipeline
 * prepares it: each raw image rendered as the original camera frame (inverted 28x28 RGB
 * PNG) and sent through preparePng. Prepare once, score with several models.
 */
export async function prepareTestSet(limit = Infinity): Promise<{ pixels: Uint8Array[]; labels: Uint8Array }> {
  const test = loadMnist('t10k');
  const count = Math.min(limit, test.count);
  const pixels: Uint8Array[] = [];
  for (let from = 0; from < count; from += BATCH) {
    const to = Math.min(count, from + BATCH);
    const prepared = await Promise.all(
      Array.from({ length: to - from }, async (_, k) => {
        const raw = test.images.subarray((from + k) * 784, (from + k + 1) * 784);
        return (await preparePng(await renderOriginalFrame(raw))).pixels;
      }),
    );
    pixels.push(...prepared);
  }
  return { pixels, labels: test.labels.subarray(0, count) };
}

/** Scores prepared images in batches of 1000. */
export async function scorePrepared(model: DigitModel, pixels: readonly Uint8Array[]): Promise<Float32Array[]> {
  const probabilities: Float32Array[] = [];
  for (let from = 0; from < pixels.length; from += BATCH) {
    probabilities.push(...(await model.scoreBatch(pixels.slice(from, from + BATCH))));
  }
  return probabilities;
}

/** Scores the MNIST test set ({@link prepareTestSet}) with the loaded model. */
export async function scoreTestSet(
  model: DigitModel,
  limit = Infinity,
): Promise<{ probabilities: Float32Array[]; labels: Uint8Array }> {
  const { pixels, labels } = await prepareTestSet(limit);
  return { probabilities: await scorePrepared(model, pixels), labels };
}

/** {@link scoreTestSet} followed by every card figure (accuracy, ECE, confusion, threshold). */
export async function evaluateTestSet(model: DigitModel, threshold: number, limit = Infinity): Promise<Evaluation> {
  const { probabilities, labels } = await scoreTestSet(model, limit);
  return evaluate(probabilities, labels, threshold);
}

/** A camera-like frame: a PNG and its digit, or null for blank paper. */
export interface LabelledFrame {
  png: Buffer;
  label: number | null;
  /** Reported separately as well (e.g. the digit's style). */
  group?: string;
}

export interface CameraSummary {
  frames: number;
  digits: number;
  accuracy: number;
  /** Share of digit frames whose top probability is at or under the threshold. */
  share_at_or_under: number;
  /** Accuracy among the digit frames over the threshold (the ones that stay at the edge). */
  accuracy_over: number;
  blank_frames: number;
  /** Blank frames the preparation found ink in. */
  blank_frames_with_ink: number;
  blank_max_probability: number;
  /** Digit frames the preparation called blank (scored, counted as wrong unless right). */
  digits_prepared_blank: number;
  /** Accuracy and digit frames per group. */
  by_group: Record<string, { digits: number; accuracy: number }>;
}

/** Scores camera-like frames through preparePng; digits give accuracy, blank paper its max probability. */
export async function evaluateCameraFrames(
  model: DigitModel,
  threshold: number,
  frames: readonly LabelledFrame[],
): Promise<CameraSummary> {
  let digits = 0;
  let right = 0;
  let under = 0;
  let over = 0;
  let rightOver = 0;
  let blanks = 0;
  let blanksWithInk = 0;
  let blankMax = 0;
  let digitsBlank = 0;
  const groups = new Map<string, { digits: number; right: number }>();
  for (let from = 0; from < frames.length; from += BATCH) {
    const batch = frames.slice(from, from + BATCH);
    const prepared = await Promise.all(batch.map((f) => preparePng(f.png)));
    const scores = await model.scoreBatch(prepared.map((p) => p.pixels));
    batch.forEach((frame, k) => {
      const top = argmax(scores[k]!);
      if (frame.label === null) {
        blanks += 1;
        if (!prepared[k]!.blank) blanksWithInk += 1;
        blankMax = Math.max(blankMax, top.value);
        return;
      }
      digits += 1;
      if (prepared[k]!.blank) digitsBlank += 1;
      const ok = top.index === frame.label;
      if (ok) right += 1;
      if (frame.group !== undefined) {
        const g = groups.get(frame.group) ?? { digits: 0, right: 0 };
        g.digits += 1;
        if (ok) g.right += 1;
        groups.set(frame.group, g);
      }
      if (top.value <= threshold) under += 1;
      else {
        over += 1;
        if (ok) rightOver += 1;
      }
    });
  }
  const r = (v: number) => Math.round(v * 1e5) / 1e5;
  return {
    frames: frames.length,
    digits,
    accuracy: r(digits === 0 ? 0 : right / digits),
    share_at_or_under: r(digits === 0 ? 0 : under / digits),
    accuracy_over: r(over === 0 ? 0 : rightOver / over),
    blank_frames: blanks,
    blank_frames_with_ink: blanksWithInk,
    blank_max_probability: r(blankMax),
    digits_prepared_blank: digitsBlank,
    by_group: Object.fromEntries([...groups].sort().map(([k, g]) => [k, { digits: g.digits, accuracy: r(g.right / g.digits) }])),
  };
}

/** The top probability the model gives an all-zero (blank) prepared image. */
export async function scoreBlank(model: DigitModel): Promise<number> {
  const [scores] = await model.scoreBatch([new Uint8Array(784)]);
  return argmax(scores!).value;
}
