import * as tf from '@tensorflow/tfjs';
import { useWasmBackend } from '../../training/wasm-kernels';
import { Rng } from '../../training/rng';

interface Case {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  stride: number;
  pad: 'same' | 'valid';
}

// Stride 1 takes the fast paths; stride 2 the im2col / stock fallbacks. Even kernels make
// 'same' pad unevenly, which is where an off-by-one would hide.
const CASES: Case[] = [
  { name: '3x3 same', x: [2, 7, 7, 3], filter: [3, 3, 3, 4], stride: 1, pad: 'same' },
  { name: '5x5 valid, non-square input', x: [2, 9, 6, 2], filter: [5, 5, 2, 3], stride: 1, pad: 'valid' },
  { name: '2x2 same (uneven padding)', x: [3, 6, 6, 1], filter: [2, 2, 1, 5], stride: 1, pad: 'same' },
  { name: '4x4 same', x: [2, 8, 8, 2], filter: [4, 4, 2, 3], stride: 1, pad: 'same' },
  { name: '3x3 same, stride 2', x: [1, 9, 9, 2], filter: [3, 3, 2, 2], stride: 2, pad: 'same' },
  { name: '3x3 valid, stride 2', x: [2, 10, 9, 3], filter: [3, 3, 3, 2], stride: 2, pad: 'valid' },
];

function random(size: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: size }, () => rng.uniform(-1, 1));
}

/** dL/dx and dL/dW of L = sum(conv2d(x, w) * r) on the current backend. */
async function convGradients(c: Case, x: Float32Array, w: Float32Array, r: Float32Array): Promise<[Float32Array, Float32Array]> {
  const xt = tf.tensor4d(x, c.x);
  const wt = tf.tensor4d(w, c.filter);
  const loss = (a: tf.Tensor, b: tf.Tensor) => {
    const y = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
    return tf.sum(tf.mul(y, tf.tensor(r.subarray(0, y.size), y.shape)));
  };
  const [dx, dw] = tf.grads(loss)([xt, wt]);
  const out: [Float32Array, Float32Array] = [(await dx!.data()) as Float32Array, (await dw!.data()) as Float32Array];
  tf.dispose([xt, wt, dx, dw]);
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let k = 0; k < a.length; k++) d = Math.max(d, Math.abs(a[k]! - b[k]!));
  return d;
}

describe('wasm training kernels', () => {
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  describe.each(CASES)('$name', (c) => {
    it("match the cpu backend's Conv2DBackpropInput and Conv2DBackpropFilter", async () => {
      // Prepare
      const rng = new Rng(c.x.reduce((a, b) => a * 31 + b, 17));
      const x = random(
        c.x.reduce((a, b) => a * b),
        rng,
      );
      const w = random(
        c.filter.reduce((a, b) => a * b),
        rng,
      );
      const r = random(4096, rng);
      await tf.setBackend('cpu');
      const [cpuDx, cpuDw] = await convGradients(c, x, w, r);
      // Act
      await useWasmBackend();
      expect(tf.getBackend()).toBe('wasm');
      const [wasmDx, wasmDw] = await convGradients(c, x, w, r);
      // Assess
      expect(maxAbsDiff(wasmDx, cpuDx)).toBeLessThan(1e-4);
      expect(maxAbsDiff(wasmDw, cpuDw)).toBeLessThan(1e-4);
      expect(cpuDw.some((v) => Math.abs(v) > 0.1)).toBe(true);
    });
  });

  it("give the cpu backend's max-pool gradient (2x2 stride 2 and a fallback shape)", async () => {
    for (const [shape, size, stride] of [
      [[2, 8, 6, 3], 2, 2],
      [[1, 7, 7, 2], 3, 2],
    ] as const) {
      // Prepare
      const rng = new Rng(shape[1] * 7 + size);
      const x = random(
        shape.reduce<number>((a, b) => a * b, 1),
        rng,
      );
      const r = random(1024, rng);
      const grad = async () => {
        const xt = tf.tensor4d(x, [...shape]);
        const dx = tf.grad((a: tf.Tensor) => {
          const y = tf.maxPool(a as tf.Tensor4D, size, stride, 'valid');
          return tf.sum(tf.mul(y, tf.tensor(r.subarray(0, y.size), y.shape)));
        })(xt);
        const out = (await dx.data()) as Float32Array;
        tf.dispose([xt, dx]);
        return out;
      };
      await tf.setBackend('cpu');
      const expected = await grad();
      // Act
      await useWasmBackend();
      const got = await grad();
      // Assess
      expect(maxAbsDiff(got, expected)).toBeLessThan(1e-6);
    }
  });

  it('split a max-pool gradient evenly among tied maxima, keeping its total', async () => {
    // Prepare: one 2x2 window of four equal values (a flat ReLU region), one with a clear max.
    await useWasmBackend();
    const x = tf.tensor4d([0.5, 0.5, 1, 2, 0.5, 0.5, 3, 1], [1, 2, 4, 1]);
    // Act
    const dx = tf.grad((a: tf.Tensor) =>
      tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), tf.tensor4d([8, 6], [1, 1, 2, 1]))),
    )(x);
    // Assess
    expect(Array.from(await dx.data())).toEqual([2, 2, 0, 0, 2, 2, 6, 0]);
  });

  it("give the cpu backend's matMul with either operand transposed", async () => {
    const rng = new Rng(3);
    const a = random(7 * 5, rng);
    const b = random(5 * 4, rng);
    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      const run = async () => {
        const at = ta ? tf.tensor2d(a, [7, 5]).transpose() : tf.tensor2d(a, [7, 5]);
        const bt = tb ? tf.tensor2d(b, [5, 4]).transpose() : tf.tensor2d(b, [5, 4]);
        const product = tf.matMul(at as tf.Tensor2D, bt as tf.Tensor2D, ta, tb);
        const out = (await product.data()) as Float32Array;
        tf.dispose([at, bt, product]);
        return out;
      };
      await tf.setBackend('cpu');
      const expected = await run();
      await useWasmBackend();
      expect(maxAbsDiff(await run(), expected)).toBeLessThan(1e-5);
    }
  });

  it('agree with a finite-difference gradient of the loss', async () => {
    // Prepare: a central difference on one weight and one input pixel, in float64 terms.
    await useWasmBackend();
    const c = CASES[0]!;
    const rng = new Rng(99);
    const x = random(
      c.x.reduce((a, b) => a * b),
      rng,
    );
    const w = random(
      c.filter.reduce((a, b) => a * b),
      rng,
    );
    const r = random(4096, rng);
    const lossAt = async (xv: Float32Array, wv: Float32Array): Promise<number> => {
      const y = tf.conv2d(tf.tensor4d(xv, c.x), tf.tensor4d(wv, c.filter), c.stride, c.pad);
      const yv = (await y.data()) as Float32Array;
      y.dispose();
      let s = 0;
      for (let k = 0; k < yv.length; k++) s += yv[k]! * r[k]!;
      return s;
    };
    // Act
    const [dx, dw] = await convGradients(c, x, w, r);
    const eps = 1e-2;
    const bump = (v: Float32Array, k: number, by: number) => {
      const copy = Float32Array.from(v);
      copy[k] = copy[k]! + by;
      return copy;
    };
    // Assess
    for (const k of [0, 17, 40, 100]) {
      const numeric = ((await lossAt(x, bump(w, k, eps))) - (await lossAt(x, bump(w, k, -eps)))) / (2 * eps);
      expect(Math.abs(numeric - dw[k]!)).toBeLessThan(2e-2);
    }
    for (const k of [0, 50, 200, 293]) {
      const numeric = ((await lossAt(bump(x, k, eps), w)) - (await lossAt(bump(x, k, -eps), w))) / (2 * eps);
      expect(Math.abs(numeric - dx[k]!)).toBeLessThan(2e-2);
    }
  });

  it('train a small conv net (loss falls) on the wasm backend', async () => {
    // Prepare: two classes told apart by a vertical vs a horizontal bar.
    await useWasmBackend();
    const rng = new Rng(5);
    const n = 32;
    const xs = new Float32Array(n * 8 * 8);
    const ys = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      const cls = i % 2;
      const at = 1 + rng.int(6);
      for (let t = 0; t < 8; t++) xs[i * 64 + (cls === 0 ? t * 8 + at : at * 8 + t)] = 1;
      ys[i * 2 + cls] = 1;
    }
    const x = tf.tensor4d(xs, [n, 8, 8, 1]);
    const y = tf.tensor2d(ys, [n, 2]);
    const w1 = tf.variable(tf.tensor4d(random(3 * 3 * 4, rng), [3, 3, 1, 4]));
    const w2 = tf.variable(
      tf.tensor2d(
        random(4 * 4 * 4 * 2, rng).map((v) => v * 0.2),
        [64, 2],
      ),
    );
    const optimizer = tf.train.adam(0.05);
    const loss = () =>
      tf.losses.softmaxCrossEntropy(
        y,
        tf.matMul(tf.reshape(tf.maxPool(tf.relu(tf.conv2d(x, w1, 1, 'same')), 2, 2, 'valid'), [n, 64]), w2),
      ) as tf.Scalar;
    // Act
    const first = (await loss().data())[0]!;
    for (let step = 0; step < 40; step++) optimizer.minimize(loss);
    const last = (await loss().data())[0]!;
    // Assess
    expect(last).toBeLessThan(first * 0.3);
    tf.dispose([x, y, w1, w2]);
    optimizer.dispose();
  });
});
