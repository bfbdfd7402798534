import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadDigitModel } from '../../functions/lib/model';
import { convKernelToOnnx, exportOnnx } from '../../training/onnx-export';
import { initialWeights, TrainableNetwork, toInputTensor, type NetworkSpec, type Weight } from '../../training/network';
import { Rng } from '../../training/rng';
import { writeModelFiles } from '../../training/model-files';

// Small but with every layer kind, odd and even kernels, 'same' and 'valid' padding and a
// non-square feature map count, so a wrong kernel transpose or flatten order shows up.
const TINY: NetworkSpec = {
  inputSize: 28,
  layers: [
    { kind: 'conv', filters: 4, kernel: 3, padding: 'same' },
    { kind: 'maxpool', size: 2 },
    { kind: 'conv', filters: 6, kernel: 4, padding: 'same' },
    { kind: 'maxpool', size: 2 },
    { kind: 'conv', filters: 5, kernel: 3, padding: 'valid' },
    { kind: 'flatten' },
    { kind: 'dropout', rate: 0.5 },
    { kind: 'dense', units: 12, relu: true },
    { kind: 'dense', units: 10, relu: false },
  ],
};

/** Random weights with non-zero biases, so every parameter takes part in the comparison. */
function randomWeights(seed: number): Map<string, Weight> {
  const rng = new Rng(seed);
  const weights = initialWeights(TINY, rng);
  for (const [name, w] of weights) {
    if (name.endsWith('.bias'))
      weights.set(name, { shape: w.shape, values: Float32Array.from(w.values, () => rng.uniform(-0.3, 0.3)) });
  }
  return weights;
}

/** Images with ink-like structure: random strokes over zeros, plus one blank image. */
function randomImages(count: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const images = new Uint8Array(count * 784);
  for (let n = 1; n < count; n++) {
    for (let s = 0; s < 30; s++) {
      const y = rng.int(28);
      const x = rng.int(28);
      images[n * 784 + y * 28 + x] = 128 + rng.int(128);
    }
  }
  return images;
}

describe('ONNX export', () => {
  let dir: string;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = mkdtempSync(join(tmpdir(), 'onnx-export-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('moves conv kernels from [h,w,in,out] to [out,in,h,w]', () => {
    // Prepare: value = 1000h + 100w + 10i + o, so each position names its own indices.
    const shape = [2, 3, 2, 4];
    const values = new Float32Array(48);
    for (let h = 0; h < 2; h++)
      for (let w = 0; w < 3; w++)
        for (let i = 0; i < 2; i++)
          for (let o = 0; o < 4; o++) values[((h * 3 + w) * 2 + i) * 4 + o] = 1000 * h + 100 * w + 10 * i + o;
    // Act
    const out = convKernelToOnnx(shape, values);
    // Assess: ONNX index (o, i, h, w)
    expect(out[((3 * 2 + 1) * 2 + 1) * 3 + 2]).toBe(1000 + 200 + 10 + 3);
    expect(out[((2 * 2 + 0) * 2 + 0) * 3 + 1]).toBe(100 + 2);
  });

  it.each([1, 0.7, 2.5])(
    'gives the same logits and probabilities in onnxruntime as in the trainer (temperature %p)',
    async (temperature) => {
      // Prepare
      const weights = randomWeights(7);
      const net = new TrainableNetwork(TINY, weights);
      const count = 33;
      const images = randomImages(count, 11);
      const logits = tf.tidy(() => tf.div(net.forward(toInputTensor(images, count), false), temperature));
      const expectedLogits = (await logits.data()) as Float32Array;
      const expectedProbs = (await tf.softmax(logits).data()) as Float32Array;
      net.dispose();
      // Act
      const bytes = exportOnnx(TINY, weights, { temperature, version: 'test-1' });
      const session = await ort.InferenceSession.create(bytes);
      const result = await session.run({ pixels: new ort.Tensor('float32', Float32Array.from(images), [count, 784]) });
      // Assess
      expect(result.probabilities!.dims).toEqual([count, 10]);
      expect(result.logits!.dims).toEqual([count, 10]);
      const gotLogits = result.logits!.data as Float32Array;
      const gotProbs = result.probabilities!.data as Float32Array;
      let maxLogitDiff = 0;
      let maxProbDiff = 0;
      for (let k = 0; k < count * 10; k++) {
        maxLogitDiff = Math.max(maxLogitDiff, Math.abs(gotLogits[k]! - expectedLogits[k]!));
        maxProbDiff = Math.max(maxProbDiff, Math.abs(gotProbs[k]! - expectedProbs[k]!));
      }
      expect(maxLogitDiff).toBeLessThan(1e-4);
      expect(maxProbDiff).toBeLessThan(1e-5);
      // The logits must actually differ between images, or the comparison proves nothing.
      expect(Math.abs(expectedLogits[10]! - expectedLogits[20]!)).toBeGreaterThan(1e-3);
    },
  );

  it('accepts any batch size, including one', async () => {
    const bytes = exportOnnx(TINY, randomWeights(3), { temperature: 1, version: 'test-1' });
    const session = await ort.InferenceSession.create(bytes);
    for (const count of [1, 2, 257]) {
      const result = await session.run({
        pixels: new ort.Tensor('float32', Float32Array.from(randomImages(count, count)), [count, 784]),
      });
      expect(result.probabilities!.dims).toEqual([count, 10]);
    }
  });

  it('loads through loadDigitModel and scores a batch as the trainer does', async () => {
    // Prepare
    const weights = randomWeights(5);
    const modelDir = join(dir, 'tiny');
    writeModelFiles(modelDir, exportOnnx(TINY, weights, { temperature: 1.5, version: 'tiny-2' }), 'tiny-2');
    const count = 9;
    const images = randomImages(count, 5);
    const net = new TrainableNetwork(TINY, weights);
    const expected = (await tf
      .tidy(() => tf.softmax(tf.div(net.forward(toInputTensor(images, count), false), 1.5)))
      .data()) as Float32Array;
    net.dispose();
    // Act
    const model = await loadDigitModel(modelDir);
    const scores = await model.scoreBatch(Array.from({ length: count }, (_, n) => images.subarray(n * 784, (n + 1) * 784)));
    // Assess
    expect(model.version).toBe('tiny-2');
    expect(scores).toHaveLength(count);
    scores.forEach((row, n) => {
      row.forEach((p, c) => {
        expect(Math.abs(p - expected[n * 10 + c]!)).toBeLessThan(1e-5);
      });
    });
  });

  it('refuses a weight of the wrong shape', () => {
    const weights = randomWeights(1);
    weights.set('0.kernel', { shape: [3, 3, 1, 5], values: new Float32Array(45) });
    expect(() => exportOnnx(TINY, weights, { temperature: 1, version: 'x' })).toThrow(
      /weight 0\.kernel has shape 3x3x1x5, expected 3x3x1x4/,
    );
  });
});
