/**
 * The gates a retrained candidate must pass before it can be promoted: pure checks over
 * figures measured elsewhere (retrain.ts measures them on the exported file, as the edge
 * loads it). The names are the ones the model card and the registry use.
 */

export const GATE_LIMITS = {
  /** MNIST test set through preparePng. */
  mnistAccuracy: 0.993,
  /** How far below the parent's MNIST accuracy the candidate may fall (0.1 points). */
  mnistMaxDrop: 0.001,
  /** Expected calibration error on the MNIST test set. */
  ece: 0.015,
  /** The largest probability blank paper may get: the confidence threshold. */
  blankMaxProbability: 0.7,
  /** ONNX file size. */
  bytes: 1_000_000,
} as const;

export type GateName =
  | 'mnist_accuracy'
  | 'mnist_not_worse'
  | 'held_out_better'
  | 'calibration'
  | 'blank_never_certain'
  | 'size'
  | 'signature';

export interface GateCheck {
  name: GateName;
  passed: boolean;
  value: number | string;
  limit: string;
  detail: string;
}

export interface GateResult {
  passed: boolean;
  checks: GateCheck[];
}

/** A model's input/output signature as its card states it. */
export interface Signature {
  input: { name: string; shape: ReadonlyArray<number | string> };
  outputs: ReadonlyArray<{ name: string; shape: ReadonlyArray<number | string> }>;
}

export interface GateFigures {
  mnist: { accuracy: number; ece: number; parentAccuracy: number; frames: number };
  heldOut: { accuracy: number; parentAccuracy: number; count: number };
  blankMaxProbability: number;
  bytes: number;
  signature: Signature;
  parentSignature: Signature;
}

function signatureText(s: Signature): string {
  const one = (t: { name: string; shape: ReadonlyArray<number | string> }) => `${t.name}[${t.shape.join(',')}]`;
  return `${one(s.input)} -> ${s.outputs.map(one).join(', ')}`;
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;

/**
 * Checks every gate. A candidate passes only when all pass: MNIST >= 99.3% and not more
 * than 0.1 points below the parent; on the held-out labelled frames strictly better than
 * the parent; ECE <= 1.5%; blank paper never over the confidence threshold; the file
 * <= 1 MB; input and output names and shapes as the parent's.
 */
export function checkGates(f: GateFigures, limits = GATE_LIMITS): GateResult {
  const mnistFloor = f.mnist.parentAccuracy - limits.mnistMaxDrop;
  const candidateSig = signatureText(f.signature);
  const parentSig = signatureText(f.parentSignature);
  const checks: GateCheck[] = [
    {
      name: 'mnist_accuracy',
      passed: f.mnist.accuracy >= limits.mnistAccuracy,
      value: f.mnist.accuracy,
      limit: `>= ${limits.mnistAccuracy}`,
      detail: `${pct(f.mnist.accuracy)} of ${f.mnist.frames} MNIST test frames through preparePng`,
    },
    {
      name: 'mnist_not_worse',
      // A hair of slack: the parent's figure minus 0.001 is not exact in binary.
      passed: f.mnist.accuracy >= mnistFloor - 1e-9,
      value: f.mnist.accuracy,
      limit: `>= ${round(mnistFloor)} (parent ${round(f.mnist.parentAccuracy)} - ${limits.mnistMaxDrop})`,
      detail: `${pct(f.mnist.accuracy)} against the parent's ${pct(f.mnist.parentAccuracy)} (${((f.mnist.accuracy - f.mnist.parentAccuracy) * 100).toFixed(2)} points)`,
    },
    {
      name: 'held_out_better',
      passed: f.heldOut.count > 0 && f.heldOut.accuracy > f.heldOut.parentAccuracy,
      value: f.heldOut.accuracy,
      limit: `> ${round(f.heldOut.parentAccuracy)} (parent)`,
      detail:
        f.heldOut.count === 0
          ? 'no held-out labelled frames: nothing shows the candidate is better'
          : `${pct(f.heldOut.accuracy)} against the parent's ${pct(f.heldOut.parentAccuracy)} on ${f.heldOut.count} held-out labelled frames`,
    },
    {
      name: 'calibration',
      passed: f.mnist.ece <= limits.ece,
      value: f.mnist.ece,
      limit: `<= ${limits.ece}`,
      detail: `ECE ${pct(f.mnist.ece)} on the MNIST test set (15 bins)`,
    },
    {
      name: 'blank_never_certain',
      passed: f.blankMaxProbability <= limits.blankMaxProbability,
      value: f.blankMaxProbability,
      limit: `<= ${limits.blankMaxProbability}`,
      detail: `highest probability given to a blank input or blank paper: ${f.blankMaxProbability.toFixed(3)}`,
    },
    {
      name: 'size',
      passed: f.bytes <= limits.bytes,
      value: f.bytes,
      limit: `<= ${limits.bytes}`,
      detail: `${f.bytes} bytes of ONNX`,
    },
    {
      name: 'signature',
      passed: candidateSig === parentSig,
      value: candidateSig,
      limit: parentSig,
      detail:
        candidateSig === parentSig
          ? 'input and output names and shapes as the parent'
          : `the parent has ${parentSig}, the candidate ${candidateSig}`,
    },
  ];
  return { passed: checks.every((c) => c.passed), checks };
}

function round(v: number, digits = 5): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The gates as a fixed-width table, one line per gate, failing ones marked FAIL. */
export function formatGateTable(result: GateResult): string {
  const rows = result.checks.map((c) => [c.name, c.passed ? 'pass' : 'FAIL', c.detail, c.limit]);
  const header = ['gate', 'result', 'measured', 'limit'];
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => r[k]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, k) => c.padEnd(widths[k]!))
      .join('  ')
      .trimEnd();
  const failed = result.checks.filter((c) => !c.passed).map((c) => c.name);
  return [
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    result.passed
      ? 'all gates passed: the candidate can be promoted'
      : `gates failed: ${failed.join(', ')}: the candidate cannot be promoted`,
  ].join('\n');
}
