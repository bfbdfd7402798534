import { onnx } from 'onnx-proto';
import { parameterShapes, type NetworkSpec, type Weight } from './network';

/** What a fine-tune starts from: the trained parameters, the calibration and the version of an exported model. */
export interface ImportedModel {
  weights: Map<string, Weight>;
  /** The softmax temperature folded into the graph (logits are divided by it). */
  temperature: number;
  version: string;
}

/** ONNX conv kernel [out, in, h, w] -> tfjs [h, w, in, out]: the inverse of convKernelToOnnx. */
export function convKernelFromOnnx(onnxShape: readonly number[], values: Float32Array): Float32Array {
  const [cout, cin, h, w] = onnxShape as [number, number, number, number];
  const out = new Float32Array(values.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((y * w + x) * cin + i) * cout + o] = values[((o * cin + i) * h + y) * w + x]!;
  return out;
}

function floatsOf(tensor: onnx.ITensorProto, name: string): Float32Array {
  if (tensor.dataType !== onnx.TensorProto.DataType.FLOAT) throw new Error(`initializer ${name} is not float32`);
  if (tensor.rawData !== undefined && tensor.rawData !== null && tensor.rawData.length > 0) {
    const raw = tensor.rawData;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out = new Float32Array(raw.byteLength / 4);
    for (let k = 0; k < out.length; k++) out[k] = view.getFloat32(k * 4, true);
    return out;
  }
  return Float32Array.from(tensor.floatData ?? []);
}

/**
 * Reads the weights of a model written by exportOnnx back into the trainer's layout, so
 * a fine-tune starts exactly where the exported (and shipped) model is. Throws when the
 * file is not such a model: an initializer missing, or of another shape than `spec` needs.
 */
export function importOnnx(bytes: Uint8Array, spec: NetworkSpec): ImportedModel {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error: unknown) {
    throw new Error(`not an ONNX model: ${error instanceof Error ? error.message : String(error)}`);
  }
  const initializers = new Map<string, onnx.ITensorProto>();
  for (const tensor of model.graph?.initializer ?? []) if (tensor.name) initializers.set(tensor.name, tensor);
  const take = (name: string, expectedDims: readonly number[]): Float32Array => {
    const tensor = initializers.get(name);
    if (tensor === undefined) throw new Error(`the model has no initializer ${name}: not exported from this network`);
    const dims = (tensor.dims ?? []).map(Number);
    if (dims.join(',') !== expectedDims.join(','))
      throw new Error(`initializer ${name} is [${dims.join(',')}], expected [${expectedDims.join(',')}]`);
    const values = floatsOf(tensor, name);
    const size = expectedDims.reduce((a, b) => a * b, 1);
    if (values.length !== size) throw new Error(`initializer ${name} holds ${values.length} values, expected ${size}`);
    return values;
  };

  const weights = new Map<string, Weight>();
  for (const [name, shape] of parameterShapes(spec)) {
    const [index, part] = name.split('.') as [string, 'kernel' | 'bias'];
    const layer = spec.layers[Number(index)]!;
    const onnxName = `l${index}_${part === 'kernel' ? 'W' : 'B'}`;
    if (layer.kind === 'conv' && part === 'kernel') {
      const [h, w, cin, cout] = shape as [number, number, number, number];
      weights.set(name, { shape, values: convKernelFromOnnx([cout, cin, h, w], take(onnxName, [cout, cin, h, w])) });
    } else {
      weights.set(name, { shape, values: take(onnxName, shape) });
    }
  }
  // The metadata keeps the fitted temperature at full precision; the initializer holds it as float32.
  const stored = take('temperature', [])[0]!;
  const written = Number(model.metadataProps?.find((p) => p.key === 'temperature')?.value);
  const temperature = Number.isFinite(written) && Math.fround(written) === stored ? written : stored;
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new Error(`bad temperature ${temperature} in the model`);
  const version = model.metadataProps?.find((p) => p.key === 'version')?.value ?? '';
  return { weights, temperature, version };
}
