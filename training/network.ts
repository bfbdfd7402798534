import * as tf from '@tensorflow/tfjs';
import type { Rng } from './rng';

/** One layer of the digit network. Convolutions and hidden dense layers use ReLU. */
export type LayerSpec =
  | { kind: 'conv'; filters: number; kernel: number; padding: 'same' | 'valid' }
  | { kind: 'maxpool'; size: number }
  | { kind: 'flatten' }
  | { kind: 'dense'; units: number; relu: boolean }
  | { kind: 'dropout'; rate: number };

export interface NetworkSpec {
  /** Input side in pixels (the prepared image is square, one channel). */
  readonly inputSize: number;
  readonly layers: readonly LayerSpec[];
}

/** A trained parameter in the trainer's (tfjs, NHWC) layout. */
export interface Weight {
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

/** Parameters by name: `<index>.kernel` and `<index>.bias` for conv and dense layers. */
export type Weights = ReadonlyMap<string, Weight>;

export const PIXELS = 784;
export const CLASSES = 10;

/**
 * The production network: three 3x3 conv layers (16, 32, 64 filters; the third at 7x7
 * resolution, where it is cheap) with max pooling and a narrow dense head: ~126k parameters,
 * ~0.5 MB as float32 ONNX. Measured on the single-threaded wasm backend, a training step
 * costs less than half that of a conv32-conv64 net (~190 vs ~420 ms per batch of 128), so
 * the same wall time buys twice the epochs; a 128-unit head over a 7x7x64 map alone would
 * also pass the 1 MB budget.
 */
export const DIGIT_NETWORK: NetworkSpec = {
  inputSize: 28,
  layers: [
    { kind: 'conv', filters: 16, kernel: 3, padding: 'same' },
    { kind: 'maxpool', size: 2 },
    { kind: 'conv', filters: 32, kernel: 3, padding: 'same' },
    { kind: 'maxpool', size: 2 },
    { kind: 'conv', filters: 64, kernel: 3, padding: 'valid' },
    { kind: 'flatten' },
    { kind: 'dropout', rate: 0.25 },
    { kind: 'dense', units: 64, relu: true },
    { kind: 'dense', units: CLASSES, relu: false },
  ],
};

interface Shape3 {
  h: number;
  w: number;
  c: number;
}

/** Shapes of every parameter of `spec`, in layer order; throws on an inconsistent spec. */
export function parameterShapes(spec: NetworkSpec): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  let shape: Shape3 | number = { h: spec.inputSize, w: spec.inputSize, c: 1 };
  for (const [i, layer] of spec.layers.entries()) {
    switch (layer.kind) {
      case 'conv': {
        if (typeof shape === 'number') throw new Error(`layer ${i}: conv after flatten`);
        shapes.set(`${i}.kernel`, [layer.kernel, layer.kernel, shape.c, layer.filters]);
        shapes.set(`${i}.bias`, [layer.filters]);
        const shrink = layer.padding === 'valid' ? layer.kernel - 1 : 0;
        shape = { h: shape.h - shrink, w: shape.w - shrink, c: layer.filters };
        break;
      }
      case 'maxpool':
        if (typeof shape === 'number') throw new Error(`layer ${i}: pooling after flatten`);
        shape = { h: Math.floor(shape.h / layer.size), w: Math.floor(shape.w / layer.size), c: shape.c };
        break;
      case 'flatten':
        if (typeof shape === 'number') throw new Error(`layer ${i}: flatten twice`);
        shape = shape.h * shape.w * shape.c;
        break;
      case 'dense':
        if (typeof shape !== 'number') throw new Error(`layer ${i}: dense before flatten`);
        shapes.set(`${i}.kernel`, [shape, layer.units]);
        shapes.set(`${i}.bias`, [layer.units]);
        shape = layer.units;
        break;
      case 'dropout':
        break;
    }
  }
  if (shape !== CLASSES) throw new Error(`the network must end in ${CLASSES} units`);
  return shapes;
}

/** Total number of trainable parameters. */
export function parameterCount(spec: NetworkSpec): number {
  let total = 0;
  for (const shape of parameterShapes(spec).values()) total += shape.reduce((a, b) => a * b, 1);
  return total;
}

/** He-normal kernels (fan-in), zero biases, all drawn from `rng`. */
export function initialWeights(spec: NetworkSpec, rng: Rng): Map<string, Weight> {
  const weights = new Map<string, Weight>();
  for (const [name, shape] of parameterShapes(spec)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (name.endsWith('.kernel')) {
      const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const std = Math.sqrt(2 / fanIn);
      for (let k = 0; k < size; k++) values[k] = rng.normal() * std;
    }
    weights.set(name, { shape, values });
  }
  return weights;
}

/**
 * The network as tfjs variables, trained with any tfjs optimizer. `forward` takes
 * [N, 28, 28, 1] pixels scaled to 0..1 and returns [N, 10] logits.
 */
export class TrainableNetwork {
  readonly variables: Map<string, tf.Variable>;
  private dropoutCalls = 0;

  constructor(
    readonly spec: NetworkSpec,
    weights: Weights,
    private readonly dropoutSeed = 1,
  ) {
    this.variables = new Map();
    for (const [name, shape] of parameterShapes(spec)) {
      const w = weights.get(name);
      if (w === undefined) throw new Error(`missing weight ${name}`);
      if (w.shape.join(',') !== shape.join(','))
        throw new Error(`weight ${name} has shape ${w.shape.join('x')}, expected ${shape.join('x')}`);
      this.variables.set(name, tf.variable(tf.tensor(w.values, shape), true, `w${name}`));
    }
  }

  private v(name: string): tf.Variable {
    const variable = this.variables.get(name);
    if (variable === undefined) throw new Error(`missing variable ${name}`);
    return variable;
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    let h: tf.Tensor = x;
    this.spec.layers.forEach((layer, i) => {
      switch (layer.kind) {
        case 'conv':
          h = tf.relu(
            tf.add(tf.conv2d(h as tf.Tensor4D, this.v(`${i}.kernel`) as tf.Tensor4D, 1, layer.padding), this.v(`${i}.bias`)),
          );
          break;
        case 'maxpool':
          h = tf.maxPool(h as tf.Tensor4D, layer.size, layer.size, 'valid');
          break;
        case 'flatten':
          // NHWC order: the exporter transposes ONNX's NCHW map to match before flattening.
          h = tf.reshape(h, [h.shape[0]!, -1]);
          break;
        case 'dense': {
          const y = tf.add(tf.matMul(h as tf.Tensor2D, this.v(`${i}.kernel`) as tf.Tensor2D), this.v(`${i}.bias`));
          h = layer.relu ? tf.relu(y) : y;
          break;
        }
        case 'dropout':
          if (training && layer.rate > 0) {
            this.dropoutCalls += 1;
            h = tf.dropout(h, layer.rate, undefined, this.dropoutSeed * 1_000_003 + this.dropoutCalls);
          }
          break;
      }
    });
    return h as tf.Tensor2D;
  }

  /** A copy of the current parameters, e.g. for export or to keep the best epoch. */
  snapshot(): Map<string, Weight> {
    const out = new Map<string, Weight>();
    for (const [name, variable] of this.variables) {
      out.set(name, { shape: variable.shape, values: Float32Array.from(variable.dataSync() as Float32Array) });
    }
    return out;
  }

  dispose(): void {
    for (const variable of this.variables.values()) variable.dispose();
  }
}

/** Converts prepared 784-byte images (ink 255) into the network's [N, 28, 28, 1] input. */
export function toInputTensor(images: Uint8Array, count: number): tf.Tensor4D {
  const scaled = new Float32Array(count * PIXELS);
  for (let k = 0; k < scaled.length; k++) scaled[k] = images[k]! / 255;
  return tf.tensor4d(scaled, [count, 28, 28, 1]);
}
