import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

type TensorInfo = tf.TensorInfo;
type KernelFunc = tf.KernelConfig['kernelFunc'];
/** The part of the wasm backend a kernel needs: tfjs types it as `{}`. */
interface Backend {
  disposeData(dataId: tf.DataId): boolean;
}

interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function kernel(name: string): KernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (config === undefined) throw new Error(`wasm backend has no ${name} kernel`);
  return config.kernelFunc;
}

/**
 * Runs one stock wasm kernel and remembers its output so that the caller can free every
 * intermediate in one place (the wasm backend counts references per data id, and a
 * Reshape output shares its input's data, so each output is released exactly once).
 */
class KernelScope {
  private readonly owned: TensorInfo[] = [];
  constructor(private readonly backend: Backend) {}

  run(name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: Record<string, unknown> = {}): TensorInfo {
    // Concat takes its inputs as an array, every other kernel as a named map.
    const out = kernel(name)({
      inputs: inputs as tf.NamedTensorInfoMap,
      backend: this.backend as object,
      attrs: attrs as tf.NamedAttrMap,
    });
    if (Array.isArray(out)) throw new Error(`${name} returned several outputs`);
    this.owned.push(out);
    return out;
  }

  /** Frees every intermediate except `keep`, which becomes the caller's result. */
  release(keep: TensorInfo): TensorInfo {
    for (const info of this.owned) {
      if (info !== keep) this.backend.disposeData(info.dataId);
    }
    return keep;
  }
}

function convInfoOf(xShape: number[], filterShape: number[], attrs: ConvGradAttrs): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat !== 'NHWC') throw new Error('only NHWC convolutions are supported');
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

/**
 * dL/dW of a 2-D convolution. Stride 1 (every layer we train) runs as one forward
 * convolution on transposed tensors; other strides use im2col of the padded input and a
 * single plain MatMul.
 * The stock wasm backend has no such kernel, so `fit`/`minimize` of any conv net fails
 * without it. The im2col matrix is multiplied from the left by dy^T instead of being
 * transposed itself, because explicit transposes of the small operand are far cheaper
 * than the wasm MatMul's transpose flags (measured ~8x).
 */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
  const info = convInfoOf(x.shape, a.filterShape, a);
  const { batchSize, filterHeight, filterWidth, inChannels, outChannels, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { top, bottom, left, right } = info.padInfo;
  const scope = new KernelScope(backend as Backend);

  const padded =
    top + bottom + left + right > 0
      ? scope.run(
          'PadV2',
          { x },
          {
            paddings: [
              [0, 0],
              [top, bottom],
              [left, right],
              [0, 0],
            ],
            constantValue: 0,
          },
        )
      : x;
  if (strideHeight === 1 && strideWidth === 1) {
    // Fast path: dW is itself a valid convolution once the batch axis plays the role of
    // the channels: x as [Cin, Hp, Wp, N] convolved with dy as [Ho, Wo, N, Cout] gives
    // [Cin, fh, fw, Cout]. Measured 2-5x faster than im2col with slices on this backend.
    const xT = scope.run('Transpose', { x: padded }, { perm: [3, 1, 2, 0] });
    const dyT = scope.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const conv = scope.run(
      'Conv2D',
      { x: xT, filter: dyT },
      { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined },
    );
    if (conv.shape[1] !== filterHeight || conv.shape[2] !== filterWidth) {
      throw new Error(`Conv2DBackpropFilter: got ${conv.shape.join('x')} for a ${filterHeight}x${filterWidth} kernel`);
    }
    return scope.release(scope.run('Transpose', { x: conv }, { perm: [1, 2, 0, 3] }));
  }
  const columns: TensorInfo[] = [];
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      columns.push(
        scope.run(
          'StridedSlice',
          { x: padded },
          {
            begin: [0, kh, kw, 0],
            end: [batchSize, kh + (outHeight - 1) * strideHeight + 1, kw + (outWidth - 1) * strideWidth + 1, inChannels],
            strides: [1, strideHeight, strideWidth, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          },
        ),
      );
    }
  }
  const rows = batchSize * outHeight * outWidth;
  const k = filterHeight * filterWidth * inChannels;
  const im2col = columns.length === 1 ? columns[0]! : scope.run('Concat', columns, { axis: 3 });
  const cols = scope.run('Reshape', { x: im2col }, { shape: [1, rows, k] });
  const dy3 = scope.run('Reshape', { x: dy }, { shape: [1, rows, outChannels] });
  const dyT = scope.run('Transpose', { x: dy3 }, { perm: [0, 2, 1] });
  const product = scope.run('BatchMatMul', { a: dyT, b: cols }, { transposeA: false, transposeB: false });
  const productT = scope.run('Transpose', { x: product }, { perm: [0, 2, 1] });
  const result = scope.run('Reshape', { x: productT }, { shape: [filterHeight, filterWidth, inChannels, outChannels] });
  return scope.release(result);
};

/**
 * dL/dx of a stride-1 2-D convolution as a forward convolution of the padded dy with the
 * kernel rotated by 180 degrees and its channel axes swapped. The stock wasm kernel is a
 * naive loop that dominated the training step; this one reuses the optimised forward
 * Conv2D. Strided convolutions fall back to the stock kernel.
 */
function makeConv2DBackpropInput(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    const a = attrs as unknown as ConvGradAttrs & { inputShape: [number, number, number, number] };
    const info = convInfoOf(a.inputShape, filter.shape, a);
    if (info.strideHeight !== 1 || info.strideWidth !== 1) return stock(args);
    const { filterHeight, filterWidth, inHeight, inWidth, outHeight, outWidth } = info;
    const { top, left } = info.padInfo;
    const padTop = filterHeight - 1 - top;
    const padLeft = filterWidth - 1 - left;
    const padBottom = inHeight + filterHeight - 1 - outHeight - padTop;
    const padRight = inWidth + filterWidth - 1 - outWidth - padLeft;
    if (padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0) return stock(args);
    const scope = new KernelScope(backend as Backend);
    const dyPadded = scope.run(
      'PadV2',
      { x: dy },
      {
        paddings: [
          [0, 0],
          [padTop, padBottom],
          [padLeft, padRight],
          [0, 0],
        ],
        constantValue: 0,
      },
    );
    const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const swapped = scope.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
    const dx = scope.run(
      'Conv2D',
      { x: dyPadded, filter: swapped },
      { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined },
    );
    return scope.release(dx);
  };
}

/**
 * MatMul with a transpose flag, as an explicit Transpose of that operand and a plain MatMul:
 * the wasm kernel's transposed paths were ~8x slower, and dense-layer gradients use both.
 */
function makeBatchMatMul(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return stock(args);
    const scope = new KernelScope(backend as Backend);
    const swapLast = (x: TensorInfo) => {
      const perm = x.shape.map((_, k) => k);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      return scope.run('Transpose', { x }, { perm });
    };
    const product = scope.run(
      'BatchMatMul',
      { a: transposeA ? swapLast(a) : a, b: transposeB ? swapLast(b) : b },
      { transposeA: false, transposeB: false },
    );
    return scope.release(product);
  };
}

function pair(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * Gradient of a 2x2, stride-2 max pool as whole-tensor operations: dy upsampled to the
 * input's size, kept where the input equals its window's maximum, divided by how many
 * positions tie for it. The stock wasm kernel (a scalar loop) took a quarter of a training
 * step. Ties are common in a ReLU net (flat background regions give equal activations):
 * splitting dy evenly among them is a valid subgradient of max with the same total as the
 * stock kernel's choice of one position. Other pool shapes use the stock kernel.
 */
function makeMaxPoolGrad(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const { dy, input, output } = inputs as { dy: TensorInfo; input: TensorInfo; output?: TensorInfo };
    const a = attrs as unknown as {
      filterSize: number | [number, number];
      strides: number | [number, number];
      pad: unknown;
      dimRoundingMode?: string;
    };
    const [fh, fw] = pair(a.filterSize);
    const [sh, sw] = pair(a.strides);
    const [, h, w] = input.shape as [number, number, number, number];
    const simple =
      fh === 2 && fw === 2 && sh === 2 && sw === 2 && (a.pad === 'valid' || a.pad === 0) && h % 2 === 0 && w % 2 === 0;
    if (!simple || input.shape.length !== 4) return stock(args);
    const scope = new KernelScope(backend as Backend);
    const up = (images: TensorInfo) =>
      scope.run('ResizeNearestNeighbor', { images }, { alignCorners: false, halfPixelCenters: false, size: [h, w] });
    const pooled =
      output ??
      scope.run(
        'MaxPool',
        { x: input },
        { filterSize: [2, 2], strides: [2, 2], pad: 'valid', dimRoundingMode: a.dimRoundingMode },
      );
    const isMax = scope.run('Cast', { x: scope.run('Equal', { a: input, b: up(pooled) }) }, { dtype: 'float32' });
    // ties per window: the window mean of the mask times 4, so dy / ties = dy / (4 * mean)
    const meanTies = scope.run(
      'AvgPool',
      { x: isMax },
      { filterSize: [2, 2], strides: [2, 2], pad: 'valid', dimRoundingMode: a.dimRoundingMode },
    );
    const share = scope.run('RealDiv', {
      a: dy,
      b: scope.run('Multiply', { a: meanTies, b: scope.run('Fill', {}, { shape: [], value: 4, dtype: 'float32' }) }),
    });
    return scope.release(scope.run('Multiply', { a: isMax, b: up(share) }));
  };
}

let registered = false;

/**
 * Makes the wasm backend able to train convolutional networks: registers the missing
 * Conv2DBackpropFilter kernel and replaces the slow Conv2DBackpropInput, MaxPoolGrad and
 * transposed BatchMatMul with compositions of fast stock kernels. Idempotent.
 * Call before `tf.setBackend('wasm')` or after; the kernels are looked up at run time.
 */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  const stockInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (stockInput === undefined) throw new Error('wasm backend has no Conv2DBackpropInput kernel');
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm') === undefined) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter });
  }
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    kernelFunc: makeConv2DBackpropInput(stockInput.kernelFunc),
    setupFunc: stockInput.setupFunc,
  });
  for (const [name, make] of [
    ['BatchMatMul', makeBatchMatMul],
    ['MaxPoolGrad', makeMaxPoolGrad],
  ] as const) {
    const stock = tf.getKernel(name, 'wasm');
    if (stock === undefined) throw new Error(`wasm backend has no ${name} kernel`);
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: make(stock.kernelFunc), setupFunc: stock.setupFunc });
  }
  registered = true;
}

/**
 * Selects the wasm backend (single-threaded: the threaded build does not start under Node)
 * with the training kernels registered.
 */
export async function useWasmBackend(): Promise<void> {
  registerWasmTrainingKernels();
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('could not initialise the tfjs wasm backend');
  await tf.ready();
}
