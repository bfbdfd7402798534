/**
 * A small, real digit model for pipeline tests that must not depend on the trained model:
 * a nearest-class-mean classifier fitted on MNIST training images, exported through the
 * project's own ONNX exporter as one dense layer (logit_c = x . m_c - |m_c|^2 / 2, which ranks
 * classes by distance to their mean). About 80% accurate: enough to exercise every route.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMnist } from '../../functions/lib/mnist';
import type { NetworkSpec, Weight } from '../../training/network';
import { exportOnnx } from '../../training/onnx-export';
import { writeModelFiles } from '../../training/model-files';

const SPEC: NetworkSpec = { inputSize: 28, layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, relu: false }] };

/** How a centroid model is written besides its data: version, card additions, class biases. */
export interface CentroidOptions {
  version?: string;
  /** Extra card sections (a candidate's `gates`, `parent`...). */
  details?: Record<string, unknown>;
  /** Added to a class's logit: a model that answers differently from the plain one. */
  bias?: Partial<Record<number, number>>;
}

/** Fits the model on the first `samples` training images and writes it to a temporary folder. */
export function writeCentroidModel(
  samples = 10_000,
  dir = mkdtempSync(join(tmpdir(), 'centroid-model-')),
  options: CentroidOptions = {},
): string {
  const train = loadMnist('train');
  const n = Math.min(samples, train.count);
  const sums = new Float64Array(10 * 784);
  const counts = new Float64Array(10);
  for (let i = 0; i < n; i++) {
    const label = train.labels[i] as number;
    counts[label] = (counts[label] ?? 0) + 1;
    for (let p = 0; p < 784; p++)
      sums[label * 784 + p] = (sums[label * 784 + p] ?? 0) + (train.images[i * 784 + p] as number) / 255;
  }
  const kernel = new Float32Array(784 * 10);
  const bias = new Float32Array(10);
  for (let c = 0; c < 10; c++) {
    let norm = 0;
    for (let p = 0; p < 784; p++) {
      const mean = (sums[c * 784 + p] as number) / Math.max(1, counts[c] as number);
      kernel[p * 10 + c] = mean;
      norm += mean * mean;
    }
    bias[c] = -norm / 2 + (options.bias?.[c] ?? 0);
  }
  const weights = new Map<string, Weight>([
    ['1.kernel', { shape: [784, 10], values: kernel }],
    ['1.bias', { shape: [10], values: bias }],
  ]);
  const version = options.version ?? 'test-centroid-1';
  const bytes = exportOnnx(SPEC, weights, { temperature: 1, version });
  writeModelFiles(dir, bytes, version, options.details);
  return dir;
}
