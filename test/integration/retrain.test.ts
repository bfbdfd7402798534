/**
 * The retraining mechanics on small data: a real fine-tune (one short epoch) of the shipped
 * model, exported, loaded and gated. Small on purpose (a few hundred frames, a slice of the
 * MNIST test set for the MNIST gates); the figures of a full run are in the README.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDigitModel } from '../../functions/lib/model';
import { DatasetError } from '../../training/labelled-dataset';
import { retrain, RetrainError, type RetrainOptions, type RetrainProgress } from '../../training/retrain';
import { mnistEntries, writeDataset } from '../helpers/labelled-dataset';

// Bounds, not timings: each fine-tune takes ~10 s of CPU, longer on a loaded machine.
jest.setTimeout(180_000);

// The shipped model, whatever the checkout's registry says is current.
const SHIPPED = join(__dirname, '..', '..', 'models');
const SMALL: Omit<RetrainOptions, 'datasetDir'> = {
  parentDir: SHIPPED,
  epochs: 1,
  replay: 256,
  labelledRepeat: 1,
  mnistTestLimit: 600,
  blankFrames: 4,
};

describe('retrain', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'retrain-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes a candidate folder whose card has every contract field and whose model loads', async () => {
    // Prepare
    const datasetDir = writeDataset(join(root, 'ds-good'), mnistEntries('train', 0, 120));
    const out = join(root, 'candidates');
    const progress: RetrainProgress[] = [];
    // Act
    const result = await retrain({ ...SMALL, datasetDir, out, onProgress: (p) => progress.push(p) });
    // Assess
    expect(result.version).toBe('1.1.0');
    expect(result.dir).toBe(join(out, '1.1.0'));
    expect(readdirSync(out)).toEqual(['1.1.0']); // no partial folder left behind
    const model = await loadDigitModel(result.dir);
    expect(model.version).toBe('1.1.0');
    // biome-ignore lint/suspicious/noExplicitAny: the card is checked field by field below
    const card = result.card as Record<string, any>;
    expect(card.parent).toEqual(expect.objectContaining({ version: '1.0.0', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }));
    expect(card.dataset).toEqual(
      expect.objectContaining({
        version: expect.stringMatching(/^sha256:/),
        dir: datasetDir,
        labelled: 120,
        train: expect.any(Number),
        held_out: expect.any(Number),
      }),
    );
    expect(card.dataset.train + card.dataset.held_out).toBe(120);
    expect(Object.values(card.dataset.per_class as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(120);
    expect(card.training).toEqual(
      expect.objectContaining({
        epochs: 1,
        batch_size: 128,
        learning_rate: expect.any(Number),
        replay: expect.objectContaining({ source: 'mnist-train', count: 256 }),
        seconds: expect.any(Number),
        seed: expect.any(Number),
      }),
    );
    expect(card.evaluation.mnist).toEqual(
      expect.objectContaining({ accuracy: expect.any(Number), ece: expect.any(Number), parent_accuracy: expect.any(Number) }),
    );
    expect(card.evaluation.held_out).toEqual(
      expect.objectContaining({
        accuracy: expect.any(Number),
        parent_accuracy: expect.any(Number),
        count: card.dataset.held_out,
      }),
    );
    expect(card.evaluation.blank.max_probability).toBeLessThan(0.7);
    expect(card.evaluation.bytes).toBe(card.bytes);
    expect(card.gates.checks.map((c: { name: string }) => c.name)).toEqual([
      'mnist_accuracy',
      'mnist_not_worse',
      'held_out_better',
      'calibration',
      'blank_never_certain',
      'size',
      'signature',
    ]);
    expect(typeof card.gates.passed).toBe('boolean');
    const train = progress.filter((p): p is Extract<RetrainProgress, { phase: 'train' }> => p.phase === 'train');
    expect(train.at(-1)).toEqual(
      expect.objectContaining({ epoch: 1, epochs: 1, epochEnd: true, heldOutAccuracy: expect.any(Number) }),
    );
    expect(train.at(-1)!.step).toBe(train.at(-1)!.steps);
  });

  it('refuses a candidate trained to be worse, naming the MNIST gates', async () => {
    // Labels shifted by one and a large learning rate, no replay: it learns the wrong digits.
    const datasetDir = writeDataset(
      join(root, 'ds-wrong'),
      mnistEntries('train', 200, 200, (label) => (label + 1) % 10),
    );
    const result = await retrain({
      ...SMALL,
      datasetDir,
      out: join(root, 'worse'),
      replay: 0,
      labelledRepeat: 3,
      learningRate: 3e-3,
    });
    const failing = result.gates.checks.filter((c) => !c.passed).map((c) => c.name);
    expect(result.gates.passed).toBe(false);
    expect(failing).toEqual(expect.arrayContaining(['mnist_accuracy', 'mnist_not_worse']));
    expect((result.card as { gates: { passed: boolean } }).gates.passed).toBe(false);
  });

  it('refuses a candidate that is not better on the held-out frames', async () => {
    // Clean MNIST frames the parent already reads perfectly, and a learning rate too small to change anything.
    const entries = mnistEntries('train', 500, 80);
    const datasetDir = writeDataset(join(root, 'ds-same'), entries);
    const result = await retrain({ ...SMALL, datasetDir, out: join(root, 'same'), learningRate: 1e-9, finalLearningRate: 1e-9 });
    const heldOut = result.gates.checks.find((c) => c.name === 'held_out_better')!;
    expect(result.gates.passed).toBe(false);
    expect(heldOut.passed).toBe(false);
    expect(heldOut.detail).toMatch(/against the parent's/);
  });

  it('says why a dataset cannot be used, and writes nothing', async () => {
    const out = join(root, 'none');
    await expect(retrain({ ...SMALL, datasetDir: join(root, 'missing'), out })).rejects.toThrow(DatasetError);
    // One frame only: whichever split it falls in, the other is empty.
    const one = writeDataset(join(root, 'ds-one'), mnistEntries('train', 900, 1));
    await expect(retrain({ ...SMALL, datasetDir: one, out })).rejects.toThrow(RetrainError);
    await expect(retrain({ ...SMALL, datasetDir: one, out })).rejects.toThrow(/held-out split|label more frames/);
    const good = writeDataset(join(root, 'ds-version'), mnistEntries('train', 1000, 30));
    await expect(retrain({ ...SMALL, datasetDir: good, out, version: '../outside' })).rejects.toThrow(/not major\.minor\.patch/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});
