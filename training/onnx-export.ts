import { onnx } from 'onnx-proto';
import { CLASSES, PIXELS, parameterShapes, type NetworkSpec, type Weights } from './network';

/** Names and shapes of the exported graph's signature; model.ts checks the same. */
export const ONNX_SIGNATURE = {
  input: {
    name: 'pixels',
    shape: ['batch', PIXELS] as const,
    description: 'prepared 28x28 images, row-major, 0-255 (ink 255), as float32',
  },
  outputs: [
    {
      name: 'probabilities',
      shape: ['batch', CLASSES] as const,
      description: 'calibrated class probabilities (softmax inside the graph)',
    },
    {
      name: 'logits',
      shape: ['batch', CLASSES] as const,
      description: 'temperature-scaled logits: softmax(logits) = probabilities',
    },
  ],
} as const;

export const ONNX_OPSET = 13;

export interface ExportOptions {
  /** Softmax temperature found by calibration (1 = none). */
  readonly temperature: number;
  /** Written into the model's metadata as `version`; the model card carries the same. */
  readonly version: string;
  readonly docString?: string;
}

const { AttributeType } = onnx.AttributeProto;
const { DataType } = onnx.TensorProto;

function floatTensor(name: string, dims: readonly number[], values: Float32Array): onnx.ITensorProto {
  // Raw little-endian bytes: compact, and exactly the float32 values the trainer holds.
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, k) => {
    view.setFloat32(k * 4, v, true);
  });
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: bytes };
}

function int64Tensor(name: string, values: readonly number[]): onnx.ITensorProto {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((v, k) => {
    view.setBigInt64(k * 8, BigInt(v), true);
  });
  return { name, dims: [values.length], dataType: DataType.INT64, rawData: bytes };
}

// onnx-proto leaves `type` unset unless told, and onnxruntime rejects untyped attributes.
const ints = (name: string, values: number[]): onnx.IAttributeProto => ({ name, type: AttributeType.INTS, ints: values });
const int = (name: string, value: number): onnx.IAttributeProto => ({ name, type: AttributeType.INT, i: value });

function valueInfo(name: string, shape: readonly (number | string)[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** tfjs conv kernel [h, w, in, out] -> ONNX [out, in, h, w]. */
export function convKernelToOnnx(shape: readonly number[], values: Float32Array): Float32Array {
  const [h, w, cin, cout] = shape as [number, number, number, number];
  const out = new Float32Array(values.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * h + y) * w + x] = values[((y * w + x) * cin + i) * cout + o]!;
  return out;
}

/**
 * Builds an ONNX model (IR 8, opset 13) of a trained network: input `pixels` [batch, 784]
 * with 0-255 values (the scaling to 0..1 is the graph's first node, so anything holding a
 * prepared image can score it), outputs `probabilities` and `logits`, both [batch, 10],
 * with the calibration temperature folded in. The batch dimension is symbolic.
 *
 * Layout conversions: conv kernels are transposed to [out, in, h, w], and the feature map
 * is transposed back to NHWC before Flatten so the dense rows keep the trainer's order.
 * Throws when a weight is missing or has the wrong shape.
 */
export function exportOnnx(spec: NetworkSpec, weights: Weights, options: ExportOptions): Uint8Array {
  if (!(options.temperature > 0) || !Number.isFinite(options.temperature))
    throw new Error(`bad temperature ${options.temperature}`);
  const shapes = parameterShapes(spec);
  const initializer: onnx.ITensorProto[] = [];
  const nodes: onnx.INodeProto[] = [];
  const weight = (name: string) => {
    const w = weights.get(name);
    const expected = shapes.get(name);
    if (w === undefined || expected === undefined) throw new Error(`missing weight ${name}`);
    if (w.shape.join(',') !== expected.join(','))
      throw new Error(`weight ${name} has shape ${w.shape.join('x')}, expected ${expected.join('x')}`);
    return w;
  };

  const side = spec.inputSize;
  initializer.push(floatTensor('input_scale', [], Float32Array.of(1 / 255)));
  initializer.push(int64Tensor('input_shape', [-1, 1, side, side]));
  nodes.push({ opType: 'Mul', input: [ONNX_SIGNATURE.input.name, 'input_scale'], output: ['scaled'], name: 'scale' });
  nodes.push({ opType: 'Reshape', input: ['scaled', 'input_shape'], output: ['image'], name: 'to_image' });

  let current = 'image';
  spec.layers.forEach((layer, i) => {
    const out = `l${i}_${layer.kind}`;
    switch (layer.kind) {
      case 'conv': {
        const k = weight(`${i}.kernel`);
        const b = weight(`${i}.bias`);
        const [kh, kw, cin, cout] = k.shape as [number, number, number, number];
        initializer.push(floatTensor(`l${i}_W`, [cout, cin, kh, kw], convKernelToOnnx(k.shape, k.values)));
        initializer.push(floatTensor(`l${i}_B`, [cout], b.values));
        // tfjs 'same' with stride 1 pads floor((k-1)/2) before and the rest after.
        const before = layer.padding === 'same' ? Math.floor((kh - 1) / 2) : 0;
        const after = layer.padding === 'same' ? kh - 1 - before : 0;
        const beforeW = layer.padding === 'same' ? Math.floor((kw - 1) / 2) : 0;
        const afterW = layer.padding === 'same' ? kw - 1 - beforeW : 0;
        nodes.push({
          opType: 'Conv',
          input: [current, `l${i}_W`, `l${i}_B`],
          output: [`${out}_pre`],
          name: `l${i}_conv`,
          attribute: [
            ints('kernel_shape', [kh, kw]),
            ints('strides', [1, 1]),
            ints('pads', [before, beforeW, after, afterW]),
            ints('dilations', [1, 1]),
          ],
        });
        nodes.push({ opType: 'Relu', input: [`${out}_pre`], output: [out], name: `l${i}_relu` });
        current = out;
        break;
      }
      case 'maxpool':
        nodes.push({
          opType: 'MaxPool',
          input: [current],
          output: [out],
          name: `l${i}_pool`,
          attribute: [ints('kernel_shape', [layer.size, layer.size]), ints('strides', [layer.size, layer.size])],
        });
        current = out;
        break;
      case 'flatten':
        nodes.push({
          opType: 'Transpose',
          input: [current],
          output: [`${out}_nhwc`],
          name: `l${i}_to_nhwc`,
          attribute: [ints('perm', [0, 2, 3, 1])],
        });
        nodes.push({
          opType: 'Flatten',
          input: [`${out}_nhwc`],
          output: [out],
          name: `l${i}_flatten`,
          attribute: [int('axis', 1)],
        });
        current = out;
        break;
      case 'dense': {
        const k = weight(`${i}.kernel`);
        const b = weight(`${i}.bias`);
        initializer.push(floatTensor(`l${i}_W`, k.shape, k.values));
        initializer.push(floatTensor(`l${i}_B`, b.shape, b.values));
        const pre = layer.relu ? `${out}_pre` : out;
        nodes.push({ opType: 'Gemm', input: [current, `l${i}_W`, `l${i}_B`], output: [pre], name: `l${i}_gemm` });
        if (layer.relu) nodes.push({ opType: 'Relu', input: [pre], output: [out], name: `l${i}_relu` });
        current = out;
        break;
      }
      case 'dropout':
        break; // identity at inference
    }
  });

  const [probs, logits] = ONNX_SIGNATURE.outputs;
  initializer.push(floatTensor('temperature', [], Float32Array.of(options.temperature)));
  nodes.push({ opType: 'Div', input: [current, 'temperature'], output: [logits.name], name: 'calibrate' });
  nodes.push({ opType: 'Softmax', input: [logits.name], output: [probs.name], name: 'softmax', attribute: [int('axis', 1)] });

  const model: onnx.IModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'edge-camera-classifier/training',
    producerVersion: options.version,
    modelVersion: 1,
    docString: options.docString ?? 'Handwritten digit classifier for prepared 28x28 camera frames.',
    metadataProps: [
      { key: 'version', value: options.version },
      { key: 'temperature', value: String(options.temperature) },
    ],
    graph: {
      name: 'digits',
      node: nodes,
      initializer,
      input: [valueInfo(ONNX_SIGNATURE.input.name, ['batch', side * side])],
      output: ONNX_SIGNATURE.outputs.map((o) => valueInfo(o.name, o.shape)),
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
