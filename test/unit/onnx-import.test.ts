import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIGIT_NETWORK, initialWeights } from '../../training/network';
import { exportOnnx } from '../../training/onnx-export';
import { convKernelFromOnnx, importOnnx } from '../../training/onnx-import';
import { convKernelToOnnx } from '../../training/onnx-export';
import { Rng } from '../../training/rng';

describe('reading a model back out of its ONNX file', () => {
  it('returns exactly the weights, temperature and version that were exported', () => {
    // Prepare
    const weights = initialWeights(DIGIT_NETWORK, new Rng(5));
    for (const [name, w] of weights)
      if (name.endsWith('.bias')) for (let k = 0; k < w.values.length; k++) w.values[k] = k * 0.01 - 0.3;
    const bytes = exportOnnx(DIGIT_NETWORK, weights, { temperature: 1.37, version: '9.8.7' });
    // Act
    const imported = importOnnx(bytes, DIGIT_NETWORK);
    // Assess
    expect(imported.version).toBe('9.8.7');
    expect(imported.temperature).toBeCloseTo(1.37, 6);
    expect([...imported.weights.keys()]).toEqual([...weights.keys()]);
    for (const [name, w] of weights) {
      expect(imported.weights.get(name)!.shape).toEqual(w.shape);
      expect(Buffer.from(imported.weights.get(name)!.values.buffer).equals(Buffer.from(w.values.buffer))).toBe(true);
    }
  });

  it('re-exports the shipped model byte for byte', () => {
    const shipped = readFileSync(join(__dirname, '..', '..', 'models', 'digits.onnx'));
    const imported = importOnnx(shipped, DIGIT_NETWORK);
    expect(imported.version).toBe('1.0.0');
    const again = exportOnnx(DIGIT_NETWORK, imported.weights, { temperature: imported.temperature, version: imported.version });
    expect(Buffer.from(again).equals(shipped)).toBe(true);
  });

  it('inverts the conv kernel layout change', () => {
    const values = Float32Array.from({ length: 3 * 3 * 2 * 4 }, (_, k) => k);
    const onnxLayout = convKernelToOnnx([3, 3, 2, 4], values);
    expect(Array.from(convKernelFromOnnx([4, 2, 3, 3], onnxLayout))).toEqual(Array.from(values));
  });

  it('refuses bytes that are not such a model', () => {
    expect(() => importOnnx(Buffer.from('not a model at all'), DIGIT_NETWORK)).toThrow(/not an ONNX model|no initializer/);
    const other = exportOnnx(
      { inputSize: 28, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, relu: false }] },
      initialWeights({ inputSize: 28, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, relu: false }] }, new Rng(1)),
      { temperature: 1, version: '1' },
    );
    expect(() => importOnnx(other, DIGIT_NETWORK)).toThrow(/initializer l0_W/);
  });
});
