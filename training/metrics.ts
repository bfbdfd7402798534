/**
 * Evaluation figures for the model card, computed from per-frame probabilities and labels.
 * Pure functions, shared by the trainer and the tests.
 */

export interface ThresholdStats {
  threshold: number;
  /** Frames whose top probability is at or under the threshold: they go home. */
  frames_at_or_under: number;
  share_at_or_under: number;
  /** Error rate among the frames that go home, and among those that stay. */
  error_rate_at_or_under: number;
  error_rate_over: number;
  /** Share of all misclassified frames that go home. */
  share_of_errors_at_or_under: number;
}

export interface Evaluation {
  frames: number;
  correct: number;
  accuracy: number;
  /** Expected calibration error of the top probability, equal-width bins. */
  ece: number;
  ece_bins: number;
  /** confusion[label][predicted] */
  confusion: number[][];
  threshold: ThresholdStats;
  mean_confidence: number;
  /** Mean negative log-likelihood of the true class. */
  nll: number;
}

/** Index and value of the largest entry. */
export function argmax(row: ArrayLike<number>): { index: number; value: number } {
  let index = 0;
  let value = -Infinity;
  for (let k = 0; k < row.length; k++) {
    if (row[k]! > value) {
      value = row[k]!;
      index = k;
    }
  }
  return { index, value };
}

/**
 * Expected calibration error: frames binned by top probability into `bins` equal-width bins,
 * |accuracy - mean confidence| per bin weighted by the bin's share of frames.
 */
export function expectedCalibrationError(confidences: readonly number[], correct: readonly boolean[], bins = 15): number {
  if (confidences.length !== correct.length) throw new Error('confidences and correctness differ in length');
  if (confidences.length === 0) return 0;
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const hits = new Array<number>(bins).fill(0);
  confidences.forEach((c, k) => {
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    count[b]! += 1;
    conf[b]! += c;
    if (correct[k]) hits[b]! += 1;
  });
  let ece = 0;
  for (let b = 0; b < bins; b++) {
    if (count[b]! > 0) ece += Math.abs(hits[b]! - conf[b]!) / confidences.length;
  }
  return ece;
}

/**
 * Every figure of the card's evaluation section, from the 10 probabilities of each frame and
 * its label. `threshold` is the send-home threshold (a frame goes home at or under it).
 */
export function evaluate(
  probabilities: readonly ArrayLike<number>[],
  labels: ArrayLike<number>,
  threshold = 0.7,
  bins = 15,
): Evaluation {
  if (probabilities.length !== labels.length) throw new Error('probabilities and labels differ in length');
  const n = probabilities.length;
  const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  const confidences: number[] = [];
  const correct: boolean[] = [];
  let nll = 0;
  let under = 0;
  let errorsUnder = 0;
  let errors = 0;
  probabilities.forEach((row, k) => {
    const label = labels[k]!;
    const top = argmax(row);
    confusion[label]![top.index]! += 1;
    const ok = top.index === label;
    confidences.push(top.value);
    correct.push(ok);
    nll -= Math.log(Math.max(row[label]!, 1e-12));
    if (!ok) errors += 1;
    if (top.value <= threshold) {
      under += 1;
      if (!ok) errorsUnder += 1;
    }
  });
  const right = n - errors;
  const over = n - under;
  return {
    frames: n,
    correct: right,
    accuracy: n === 0 ? 0 : right / n,
    ece: expectedCalibrationError(confidences, correct, bins),
    ece_bins: bins,
    confusion,
    threshold: {
      threshold,
      frames_at_or_under: under,
      share_at_or_under: n === 0 ? 0 : under / n,
      error_rate_at_or_under: under === 0 ? 0 : errorsUnder / under,
      error_rate_over: over === 0 ? 0 : (errors - errorsUnder) / over,
      share_of_errors_at_or_under: errors === 0 ? 0 : errorsUnder / errors,
    },
    mean_confidence: n === 0 ? 0 : confidences.reduce((a, b) => a + b, 0) / n,
    nll: n === 0 ? 0 : nll / n,
  };
}

/** Softmax of logits / temperature, row by row, in float64. */
export function softmaxRows(logits: Float32Array, classes: number, temperature = 1): Float32Array[] {
  const rows: Float32Array[] = [];
  for (let r = 0; r < logits.length / classes; r++) {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v / temperature);
    let sum = 0;
    const out = new Float32Array(classes);
    row.forEach((v, k) => {
      const e = Math.exp(v / temperature - max);
      out[k] = e;
      sum += e;
    });
    for (let k = 0; k < classes; k++) out[k] = out[k]! / sum;
    rows.push(out);
  }
  return rows;
}

/** Mean NLL of the labels under softmax(logits / temperature). */
export function temperatureNll(logits: Float32Array, labels: ArrayLike<number>, temperature: number, classes = 10): number {
  let total = 0;
  for (let r = 0; r < labels.length; r++) {
    let max = -Infinity;
    for (let k = 0; k < classes; k++) max = Math.max(max, logits[r * classes + k]! / temperature);
    let sum = 0;
    for (let k = 0; k < classes; k++) sum += Math.exp(logits[r * classes + k]! / temperature - max);
    total -= logits[r * classes + labels[r]!]! / temperature - max - Math.log(sum);
  }
  return total / labels.length;
}

/**
 * Temperature scaling: the T in [0.25, 10] that minimises the held-out NLL (golden-section
 * search on log T; the NLL is unimodal in T). Changes no prediction, only confidences.
 */
export function fitTemperature(logits: Float32Array, labels: ArrayLike<number>, classes = 10): number {
  let lo = Math.log(0.25);
  let hi = Math.log(10);
  const phi = (Math.sqrt(5) - 1) / 2;
  const f = (logT: number) => temperatureNll(logits, labels, Math.exp(logT), classes);
  let a = hi - phi * (hi - lo);
  let b = lo + phi * (hi - lo);
  let fa = f(a);
  let fb = f(b);
  for (let i = 0; i < 60; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - phi * (hi - lo);
      fa = f(a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + phi * (hi - lo);
      fb = f(b);
    }
  }
  return Math.exp((lo + hi) / 2);
}
