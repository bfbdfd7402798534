import { checkGates, formatGateTable, type GateFigures } from '../../training/gates';
import { parseRetrainArgs, progressLine } from '../../training/retrain-cli';
import { nextCandidateVersion } from '../../training/retrain';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const signature = {
  input: { name: 'pixels', shape: ['batch', 784] },
  outputs: [
    { name: 'probabilities', shape: ['batch', 10] },
    { name: 'logits', shape: ['batch', 10] },
  ],
};

function figures(change: (f: GateFigures) => void = () => {}): GateFigures {
  const f: GateFigures = {
    mnist: { accuracy: 0.994, ece: 0.003, parentAccuracy: 0.9941, frames: 10000 },
    heldOut: { accuracy: 0.97, parentAccuracy: 0.78, count: 300 },
    blankMaxProbability: 0.1,
    bytes: 507_353,
    signature: structuredClone(signature),
    parentSignature: structuredClone(signature),
  };
  change(f);
  return f;
}

describe('the gates of a retrained candidate', () => {
  it('pass a candidate that is better on the held-out frames and as good on MNIST', () => {
    const result = checkGates(figures());
    expect(result.passed).toBe(true);
    expect(result.checks.map((c) => c.name)).toEqual([
      'mnist_accuracy',
      'mnist_not_worse',
      'held_out_better',
      'calibration',
      'blank_never_certain',
      'size',
      'signature',
    ]);
    expect(formatGateTable(result)).toMatch(/all gates passed/);
  });

  it.each<[string, (f: GateFigures) => void, string[]]>([
    [
      'MNIST under 99.3%',
      (f) => {
        f.mnist = { ...f.mnist, accuracy: 0.9925, parentAccuracy: 0.9928 };
      },
      ['mnist_accuracy'],
    ],
    [
      'MNIST more than 0.1 points below the parent',
      (f) => {
        f.mnist = { ...f.mnist, accuracy: 0.9935, parentAccuracy: 0.9948 };
      },
      ['mnist_not_worse'],
    ],
    [
      'a candidate that forgot MNIST',
      (f) => {
        f.mnist = { ...f.mnist, accuracy: 0.9, parentAccuracy: 0.9941 };
      },
      ['mnist_accuracy', 'mnist_not_worse'],
    ],
    [
      'held-out accuracy equal to the parent',
      (f) => {
        f.heldOut = { ...f.heldOut, accuracy: 0.78 };
      },
      ['held_out_better'],
    ],
    [
      'held-out accuracy below the parent',
      (f) => {
        f.heldOut = { ...f.heldOut, accuracy: 0.7 };
      },
      ['held_out_better'],
    ],
    [
      'no held-out frames',
      (f) => {
        f.heldOut = { accuracy: 0, parentAccuracy: 0, count: 0 };
      },
      ['held_out_better'],
    ],
    [
      'ECE over 1.5%',
      (f) => {
        f.mnist = { ...f.mnist, ece: 0.02 };
      },
      ['calibration'],
    ],
    [
      'blank paper scored over the threshold',
      (f) => {
        f.blankMaxProbability = 0.71;
      },
      ['blank_never_certain'],
    ],
    [
      'a file over 1 MB',
      (f) => {
        f.bytes = 1_000_001;
      },
      ['size'],
    ],
    [
      'another output name',
      (f) => {
        f.signature.outputs = [{ name: 'probs', shape: ['batch', 10] }, signature.outputs[1]!];
      },
      ['signature'],
    ],
    [
      'another input shape',
      (f) => {
        f.signature.input = { name: 'pixels', shape: ['batch', 28, 28] };
      },
      ['signature'],
    ],
  ])('refuse %s, naming the failing gate', (_name, change, failing) => {
    // Act
    const result = checkGates(figures(change));
    // Assess
    expect(result.passed).toBe(false);
    expect(result.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual(failing);
    const table = formatGateTable(result);
    for (const name of failing) expect(table).toMatch(new RegExp(`^${name}\\s+FAIL`, 'm'));
    expect(table).toMatch(`gates failed: ${failing.join(', ')}`);
  });

  it('allow exactly 0.1 points below the parent', () => {
    expect(
      checkGates(
        figures((f) => {
          f.mnist = { ...f.mnist, accuracy: 0.9931, parentAccuracy: 0.9941 };
        }),
      ).passed,
    ).toBe(true);
  });
});

describe('retrain command line and versions', () => {
  it('names the next free minor version of the parent', () => {
    const out = mkdtempSync(join(tmpdir(), 'candidates-'));
    try {
      expect(nextCandidateVersion('1.0.0', out)).toBe('1.1.0');
      mkdirSync(join(out, '1.1.0'));
      expect(nextCandidateVersion('1.0.0', out)).toBe('1.2.0');
      expect(nextCandidateVersion('1.1.0', out)).toBe('1.2.0');
      expect(() => nextCandidateVersion('latest', out)).toThrow(/not major\.minor\.patch/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('parses its flags and refuses unknown ones', () => {
    expect(parseRetrainArgs(['--dataset', 'd', '--epochs', '3', '--out', 'o'])).toEqual({ datasetDir: 'd', epochs: 3, out: 'o' });
    expect(() => parseRetrainArgs(['--epoch', '3'])).toThrow(/unknown option --epoch/);
    expect(() => parseRetrainArgs(['--epochs', 'many'])).toThrow(/--epochs needs a number/);
    expect(() => parseRetrainArgs(['--dataset'])).toThrow(/--dataset needs a value/);
  });

  it('draws a progress line with epoch, loss and held-out accuracy', () => {
    const line = progressLine(
      {
        phase: 'train',
        epoch: 2,
        epochs: 4,
        step: 50,
        steps: 100,
        loss: 0.12345,
        heldOutAccuracy: 0.9512,
        mnistAccuracy: 0.99432,
        epochEnd: false,
      },
      10,
    );
    expect(line).toBe('[#####-----] epoch 2/4  step 50/100  loss 0.1235  held-out 95.1%  MNIST 99.43%');
  });
});
