/**
 * Fine-tunes the current model on labelled camera frames and writes a candidate model
 * folder with its gates: `npm run retrain` (retrain-cli.ts) and `npm run loop` call
 * {@link retrain}; it never exits the process and reports progress through a callback, so
 * a server (a retrain button) can call it too.
 *
 * The parent's weights are read out of its ONNX file into the trainer's network, trained
 * for a few epochs on the labelled frames (prepared by the production preparePng, lightly
 * jittered) mixed with MNIST training-set replay (so the parent's skills are not
 * forgotten), temperature-calibrated on the MNIST slice training held out, exported, and
 * measured as the edge loads it. A held-out split of the labelled frames, fixed by
 * frame_id hash, is never trained on: it decides whether the candidate is better.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadMnist } from '../functions/lib/mnist';
import { preparePng } from '../functions/lib/prepare';
import { loadDigitModel, MODEL_CARD_FILE, modelCardSchema, type DigitModel, type ModelCard } from '../functions/lib/model';
import { cameraAugment, fromMnist, warp } from './augment';
import { cameraFrameAt } from './camera-frames';
import { buildPreparedSet, splitIndices, targetsOf, type PreparedSet } from './data';
import { prepareTestSet, scorePrepared } from './evaluate-model';
import { checkGates, GATE_LIMITS, type GateResult, type Signature } from './gates';
import { DEFAULT_HELD_OUT_SHARE, readLabelledDataset, splitByFrameId, type DatasetFrame } from './labelled-dataset';
import { argmax, evaluate, fitTemperature, softmaxRows } from './metrics';
import { writeModelFiles } from './model-files';
import { DIGIT_NETWORK, PIXELS, TrainableNetwork } from './network';
import { exportOnnx } from './onnx-export';
import { type ImportedModel, importOnnx } from './onnx-import';
import { Rng } from './rng';
import { DEFAULT_CONFIG as TRAIN_CONFIG } from './train';
import { currentModelDir, DEFAULT_MODELS_ROOT } from './model-registry';
import { useWasmBackend } from './wasm-kernels';

export class RetrainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetrainError';
  }
}

/** What a progress callback receives: a line of text, or a training step. */
export type RetrainProgress =
  | { phase: 'prepare' | 'evaluate' | 'done'; message: string }
  | {
      phase: 'train';
      epoch: number;
      epochs: number;
      step: number;
      steps: number;
      loss: number;
      heldOutAccuracy: number | null;
      mnistAccuracy: number | null;
      epochEnd: boolean;
    };

export interface RetrainOptions {
  /** A dataset folder in the export layout (ImageFolder + metadata.jsonl). */
  datasetDir: string;
  /** The models folder whose registry names the current model (default MODEL_ROOT, else models/). */
  root?: string;
  /** The model to fine-tune (default: the registry's current version, see training/model-registry.ts). */
  parentDir?: string;
  /** Where candidate folders go (default <root>/candidates). */
  out?: string;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Cosine decay from learningRate down to this at the last step. */
  finalLearningRate?: number;
  /** MNIST training-set frames replayed every epoch (the same frames, shuffled anew). */
  replay?: number;
  /** Share of the replay made camera-like by training's augmentation, as training did. */
  replayAugmentShare?: number;
  /**
   * Weight of the parent's own answers on the replay frames (distillation at temperature
   * {@link RetrainOptions.distillTemperature}; 0 = plain labels only). It holds the
   * candidate to what the parent did on MNIST while the labelled frames teach it the new camera.
   */
  distillWeight?: number;
  distillTemperature?: number;
  /** Each labelled training frame appears this many times per epoch, freshly jittered. */
  labelledRepeat?: number;
  heldOutShare?: number;
  seed?: number;
  /** The confidence threshold: blank paper must never score above it. */
  threshold?: number;
  /** Score only the first N MNIST test images (default all 10,000; tests use fewer). */
  mnistTestLimit?: number;
  /** Blank-paper frames (camera-frame generator, evaluation seed) for the blank gate. */
  blankFrames?: number;
  /** The candidate's version (default: the next free minor of the parent). */
  version?: string;
  onProgress?: (progress: RetrainProgress) => void;
}

type Optional = 'version' | 'onProgress' | 'root' | 'parentDir' | 'out';
type Settings = Required<Omit<RetrainOptions, Optional>> & Pick<RetrainOptions, Optional>;

export const RETRAIN_DEFAULTS: Omit<Settings, 'datasetDir' | Optional> = {
  epochs: 4,
  batchSize: 128,
  learningRate: 2e-4,
  finalLearningRate: 1e-5,
  replay: 6000,
  replayAugmentShare: 0.5,
  distillWeight: 1.5,
  distillTemperature: 2,
  labelledRepeat: 4,
  heldOutShare: DEFAULT_HELD_OUT_SHARE,
  seed: 20261206,
  threshold: GATE_LIMITS.blankMaxProbability,
  mnistTestLimit: 10_000,
  blankFrames: 200,
};

export interface RetrainResult {
  version: string;
  dir: string;
  card: Record<string, unknown>;
  gates: GateResult;
}

/** "1.0.0" -> "1.1.0", or the next minor whose folder does not exist yet in `out`. */
export function nextCandidateVersion(parentVersion: string, out: string): string {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(parentVersion);
  if (match === null)
    throw new RetrainError(`the parent's version ${parentVersion} is not major.minor.patch, so no next version can be named`);
  const major = Number(match[1]);
  for (let minor = Number(match[2]) + 1; ; minor++) {
    const version = `${major}.${minor}.0`;
    if (!existsSync(join(out, version))) return version;
  }
}

function round(v: number, digits = 5): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function scaled(images: Uint8Array, rows: readonly number[]): tf.Tensor4D {
  const data = new Float32Array(rows.length * PIXELS);
  rows.forEach((row, k) => {
    for (let p = 0; p < PIXELS; p++) data[k * PIXELS + p] = images[row * PIXELS + p]! / 255;
  });
  return tf.tensor4d(data, [rows.length, 28, 28, 1]);
}

/** Raw logits of every image of a set, in chunks. */
function logitsOf(net: TrainableNetwork, set: PreparedSet): Float32Array {
  const out = new Float32Array(set.count * 10);
  for (let from = 0; from < set.count; from += 500) {
    const rows = Array.from({ length: Math.min(set.count, from + 500) - from }, (_, k) => from + k);
    const x = scaled(set.images, rows);
    const logits = tf.tidy(() => net.forward(x, false));
    out.set(logits.dataSync() as Float32Array, from * 10);
    tf.dispose([x, logits]);
  }
  return out;
}

function accuracyOfLogits(logits: Float32Array, labels: ArrayLike<number>): number {
  let right = 0;
  for (let r = 0; r < labels.length; r++) if (argmax(logits.subarray(r * 10, r * 10 + 10)).index === labels[r]) right += 1;
  return labels.length === 0 ? 0 : right / labels.length;
}

function setOf(frames: readonly DatasetFrame[]): PreparedSet {
  const images = new Uint8Array(frames.length * PIXELS);
  const labels = new Int16Array(frames.length);
  frames.forEach((f, k) => {
    images.set(f.pixels, k * PIXELS);
    labels[k] = f.label;
  });
  return { images, labels, count: frames.length };
}

/**
 * A labelled frame as the edge might see it again: small rotation, scale and shift of the
 * prepared image (ink stays ink; what comes in at the edges is empty).
 */
function jitter(pixels: Uint8Array, rng: Rng): Uint8Array {
  return warp(
    { data: pixels, width: 28, height: 28 },
    { angle: rng.uniform(-8, 8), scale: rng.uniform(0.9, 1.08), dx: rng.uniform(-1.5, 1.5), dy: rng.uniform(-1.5, 1.5) },
    undefined,
    0,
  ).data;
}

/** Adam whose learning rate can follow a schedule (tfjs keeps it protected). */
class ScheduledAdam extends tf.AdamOptimizer {
  setLearningRate(rate: number): void {
    this.learningRate = rate;
  }
}

function signatureOf(card: ModelCard): Signature {
  return {
    input: { name: card.input.name, shape: card.input.shape },
    outputs: card.outputs.map((o) => ({ name: o.name, shape: o.shape })),
  };
}

function readCard(dir: string): ModelCard & Record<string, unknown> {
  const path = join(dir, MODEL_CARD_FILE);
  if (!existsSync(path)) throw new RetrainError(`the parent model folder ${dir} has no ${MODEL_CARD_FILE}`);
  const parsed = modelCardSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success)
    throw new RetrainError(`${path} is not a model card: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  return parsed.data as ModelCard & Record<string, unknown>;
}

/**
 * Fine-tunes the parent model on the dataset in `options.datasetDir`, evaluates the
 * exported candidate, checks the gates and writes `<out>/<version>/` (digits.onnx and a
 * model card with the parent, dataset, training settings, every figure and the gates).
 * The folder is written under a temporary name and renamed, so it is complete or absent.
 * A candidate that fails a gate is still written (with `gates.passed: false`) so it can be
 * inspected; promotion refuses it. Never exits the process; progress goes to `onProgress`.
 *
 * @throws DatasetError for an unusable dataset folder, RetrainError when the labelled
 *   frames cannot be split (no training or no held-out frames) or the parent is unusable,
 *   ModelLoadError when the exported candidate does not load; RetrainError when another
 *   retrain is running in this process.
 */
export async function retrain(options: RetrainOptions): Promise<RetrainResult> {
  // One at a time per process: tfjs holds one backend, and two runs would name the same version.
  if (running) throw new RetrainError('a retrain is already running in this process: wait for it to finish');
  running = true;
  try {
    return await retrainOnce(options);
  } finally {
    running = false;
  }
}

let running = false;

async function retrainOnce(options: RetrainOptions): Promise<RetrainResult> {
  const o = {
    ...RETRAIN_DEFAULTS,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Settings;
  const started = Date.now();
  const load = loadavg();
  const say = (phase: 'prepare' | 'evaluate' | 'done', message: string) => o.onProgress?.({ phase, message });
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RetrainError(`epochs must be a whole number >= 1, got ${o.epochs}`);
  if (!Number.isInteger(o.replay) || o.replay < 0) throw new RetrainError(`replay must be a whole number >= 0, got ${o.replay}`);

  // --- the labelled frames ---
  say('prepare', `reading ${resolve(o.datasetDir)}`);
  const dataset = await readLabelledDataset(o.datasetDir);
  const split = splitByFrameId(dataset.frames, o.heldOutShare);
  if (split.heldOut.length === 0) {
    throw new RetrainError(
      `none of the ${dataset.frames.length} labelled frames falls in the held-out split (${Math.round(o.heldOutShare * 100)}% by frame_id hash): label more frames, or nothing could show the candidate is better`,
    );
  }
  if (split.train.length === 0)
    throw new RetrainError(`all ${dataset.frames.length} labelled frames fall in the held-out split: label more frames`);
  say(
    'prepare',
    `dataset ${dataset.version}: ${dataset.frames.length} labelled frames (${split.train.length} to train on, ${split.heldOut.length} held out)${dataset.preparedBlank.length > 0 ? `, ${dataset.preparedBlank.length} found blank by the preparation and left out` : ''}`,
  );

  // --- the parent ---
  const root = resolve(o.root ?? process.env.MODEL_ROOT ?? DEFAULT_MODELS_ROOT);
  let parentDir: string;
  try {
    parentDir = resolve(o.parentDir ?? currentModelDir(root));
  } catch (error: unknown) {
    throw new RetrainError(`cannot tell the current model of ${root}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parentCard = readCard(parentDir);
  const parentModel = await loadDigitModel(parentDir);
  let parent: ImportedModel;
  try {
    parent = importOnnx(readFileSync(parentModel.path), DIGIT_NETWORK);
  } catch (error: unknown) {
    throw new RetrainError(`cannot fine-tune ${parentModel.path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const out = resolve(o.out ?? join(root, 'candidates'));
  const version = o.version ?? nextCandidateVersion(parentCard.version, out);
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new RetrainError(`version ${JSON.stringify(version)} is not major.minor.patch`);
  if (existsSync(join(out, version)))
    throw new RetrainError(`${join(out, version)} exists already: candidates are never overwritten`);

  // --- MNIST replay and the calibration slice (the one training held out) ---
  const mnist = loadMnist('train');
  const mnistSplit = splitIndices(mnist.count, TRAIN_CONFIG.heldOut, TRAIN_CONFIG.seed);
  const rng = new Rng(o.seed);
  const replayIndices = rng
    .shuffle([...mnistSplit.train])
    .slice(0, o.replay)
    .sort((a, b) => a - b);
  say('prepare', `preparing ${replayIndices.length} MNIST replay frames and ${mnistSplit.heldOut.length} calibration frames`);
  const replay = buildPreparedSet({
    images: mnist.images,
    labels: mnist.labels,
    indices: replayIndices,
    augmentShare: o.replayAugmentShare,
    augment: (raw, r) => cameraAugment(fromMnist(raw), r),
    blankShare: 0.02,
    rng: new Rng(o.seed + 1),
  });
  const calibration = buildPreparedSet({
    images: mnist.images,
    labels: mnist.labels,
    indices: mnistSplit.heldOut,
    augmentShare: 0,
    blankShare: 0,
    rng: new Rng(1),
  });
  const heldOutSet = setOf(split.heldOut);
  const trainSet = setOf(split.train);

  // --- fine-tune ---
  await useWasmBackend();
  const net = new TrainableNetwork(DIGIT_NETWORK, parent.weights, o.seed);
  const optimizer = new ScheduledAdam(o.learningRate, 0.9, 0.999, 1e-7);
  const variables = [...net.variables.values()];
  const parentHeldOut = accuracyOfLogits(logitsOf(net, heldOutSet), heldOutSet.labels);
  const parentCalibration = accuracyOfLogits(logitsOf(net, calibration), calibration.labels);
  // The parent's answers on the replay frames, softened: the distillation targets.
  const teacher = softmaxRows(logitsOf(net, replay), 10, o.distillTemperature);
  say(
    'prepare',
    `parent ${parentCard.version}: ${(parentHeldOut * 100).toFixed(2)}% on the held-out labelled frames, ${(parentCalibration * 100).toFixed(2)}% on the MNIST slice training held out`,
  );

  const perEpoch = replay.count + trainSet.count * o.labelledRepeat;
  const stepsPerEpoch = Math.ceil(perEpoch / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const history: Array<Record<string, number>> = [];
  const trainStarted = Date.now();
  let step = 0;
  let heldOutAccuracy: number | null = null;
  let mnistAccuracy: number | null = null;
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const epochStarted = Date.now();
      // This epoch's images: the replay as prepared, then each labelled frame labelledRepeat times, jittered.
      const epochRng = new Rng(o.seed * 31 + epoch);
      const images = new Uint8Array(perEpoch * PIXELS);
      const labels = new Int16Array(perEpoch);
      images.set(replay.images);
      labels.set(replay.labels);
      for (let r = 0; r < o.labelledRepeat; r++) {
        for (let k = 0; k < trainSet.count; k++) {
          const row = replay.count + r * trainSet.count + k;
          const pixels = trainSet.images.subarray(k * PIXELS, (k + 1) * PIXELS);
          images.set(r === 0 ? pixels : jitter(pixels, epochRng), row * PIXELS);
          labels[row] = trainSet.labels[k]!;
        }
      }
      const order = epochRng.shuffle(Array.from({ length: perEpoch }, (_, k) => k));
      let lossSum = 0;
      let lossCount = 0;
      for (let from = 0; from < perEpoch; from += o.batchSize) {
        const rows = order.slice(from, from + o.batchSize);
        const progress = Math.min(1, step / Math.max(1, totalSteps - 1));
        optimizer.setLearningRate(
          o.finalLearningRate + 0.5 * (o.learningRate - o.finalLearningRate) * (1 + Math.cos(Math.PI * progress)),
        );
        const x = scaled(images, rows);
        const batchLabels = Int16Array.from(rows, (row) => labels[row]!);
        const y = tf.tensor2d(targetsOf(batchLabels, 0, rows.length), [rows.length, 10]);
        // Rows from the replay (index < replay.count) also learn the parent's softened answers.
        const soft = new Float32Array(rows.length * 10);
        const mask = new Float32Array(rows.length);
        rows.forEach((row, k) => {
          if (row >= replay.count) return;
          soft.set(teacher[row]!, k * 10);
          mask[k] = 1;
        });
        const distilled = mask.reduce((a, b) => a + b, 0);
        const t = tf.tensor2d(soft, [rows.length, 10]);
        const m = tf.tensor1d(mask);
        const tau = o.distillTemperature;
        const cost = optimizer.minimize(
          () => {
            const logits = net.forward(x, true);
            const hard = tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
            if (o.distillWeight === 0 || distilled === 0) return hard;
            const perRow = tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(tf.div(logits, tau))), 1));
            const kd = tf.div(tf.sum(tf.mul(perRow, m)), distilled);
            return tf.add(hard, tf.mul(kd, o.distillWeight * tau * tau)) as tf.Scalar;
          },
          true,
          variables,
        );
        tf.dispose([t, m]);
        lossSum += cost === null ? 0 : cost.dataSync()[0]!;
        lossCount += 1;
        tf.dispose([x, y, cost ?? []]);
        step += 1;
        o.onProgress?.({
          phase: 'train',
          epoch: epoch + 1,
          epochs: o.epochs,
          step,
          steps: totalSteps,
          loss: lossSum / lossCount,
          heldOutAccuracy,
          mnistAccuracy,
          epochEnd: false,
        });
      }
      heldOutAccuracy = accuracyOfLogits(logitsOf(net, heldOutSet), heldOutSet.labels);
      mnistAccuracy = accuracyOfLogits(logitsOf(net, calibration), calibration.labels);
      history.push({
        epoch: epoch + 1,
        loss: round(lossSum / lossCount),
        held_out_accuracy: round(heldOutAccuracy),
        mnist_held_out_accuracy: round(mnistAccuracy),
        seconds: round((Date.now() - epochStarted) / 1000, 1),
      });
      o.onProgress?.({
        phase: 'train',
        epoch: epoch + 1,
        epochs: o.epochs,
        step,
        steps: totalSteps,
        loss: lossSum / lossCount,
        heldOutAccuracy,
        mnistAccuracy,
        epochEnd: true,
      });
    }
  } finally {
    optimizer.dispose();
  }
  const trainSeconds = (Date.now() - trainStarted) / 1000;

  // --- calibrate as training does: temperature on the clean MNIST slice training held out ---
  const weights = net.snapshot();
  const calibrationLogits = logitsOf(net, calibration);
  net.dispose();
  const temperature = fitTemperature(calibrationLogits, Array.from(calibration.labels));
  const calibrated = evaluate(softmaxRows(calibrationLogits, 10, temperature), Array.from(calibration.labels), o.threshold);
  say(
    'evaluate',
    `temperature ${temperature.toFixed(4)} (parent ${parent.temperature.toFixed(4)}), ECE on the calibration slice ${(calibrated.ece * 100).toFixed(2)}%`,
  );

  // --- export under a temporary name, then measure the file as the edge loads it ---
  const bytes = exportOnnx(DIGIT_NETWORK, weights, { temperature, version });
  const partial = join(out, `.${version}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  try {
    const details = {
      created: new Date().toISOString(),
      architecture: parentCard.architecture,
      input_scaling: parentCard.input_scaling,
      parent: { version: parentCard.version, sha256: parentCard.sha256, dir: parentDir },
      dataset: {
        version: dataset.version,
        dir: dataset.dir,
        labelled: dataset.frames.length + dataset.preparedBlank.length,
        per_class: dataset.perClass,
        train: split.train.length,
        held_out: split.heldOut.length,
        prepared_blank: dataset.preparedBlank.length,
        held_out_rule: `sha256("held-out:" + frame_id), first 32 bits < ${o.heldOutShare} of 2^32`,
      },
      training: {
        method: `fine-tune of ${parentCard.version} (weights read from its ONNX file): the labelled training frames (prepared by preparePng; each ${o.labelledRepeat} times per epoch, all but the first jittered by +-8 deg, scale 0.9-1.08, +-1.5 px) mixed with MNIST training-set replay, whose frames also learn the parent's answers softened at temperature ${o.distillTemperature} (weight ${o.distillWeight}); Adam, cosine decay; temperature scaling on the ${calibration.count} MNIST training images training held out`,
        epochs: o.epochs,
        batch_size: o.batchSize,
        learning_rate: o.learningRate,
        final_learning_rate: o.finalLearningRate,
        labelled_repeat: o.labelledRepeat,
        replay: { source: 'mnist-train', count: replayIndices.length, augment_share: o.replayAugmentShare },
        distillation: { weight: o.distillWeight, temperature: o.distillTemperature },
        steps: totalSteps,
        seconds: round(trainSeconds, 1),
        seed: o.seed,
        history,
        backend: 'tfjs 4.22 wasm (single thread, SIMD)',
        load_average_at_start: load.map((v) => round(v, 2)),
      },
      calibration: {
        method: 'temperature scaling',
        temperature: round(temperature),
        parent_temperature: round(parent.temperature),
        frames: calibration.count,
        ece: round(calibrated.ece),
      },
    };
    writeModelFiles(partial, bytes, version, details);
    const candidate = await loadDigitModel(partial);
    say(
      'evaluate',
      `scoring the MNIST test set (${Math.min(o.mnistTestLimit, 10_000)} frames through preparePng) with the candidate and the parent`,
    );
    const figures = await measure(candidate, parentModel, heldOutSet, o);
    const candidateCard = readCard(partial);
    const gates = checkGates({
      mnist: {
        accuracy: figures.mnist.accuracy,
        ece: figures.mnist.ece,
        parentAccuracy: figures.parentMnist.accuracy,
        frames: figures.mnist.frames,
      },
      heldOut: { accuracy: figures.heldOutAccuracy, parentAccuracy: figures.parentHeldOutAccuracy, count: heldOutSet.count },
      blankMaxProbability: figures.blankMax,
      bytes: bytes.length,
      signature: signatureOf(candidateCard),
      parentSignature: signatureOf(parentCard),
    });
    const card = writeModelFiles(partial, bytes, version, {
      ...details,
      evaluation: {
        mnist: {
          accuracy: round(figures.mnist.accuracy),
          ece: round(figures.mnist.ece),
          parent_accuracy: round(figures.parentMnist.accuracy),
          parent_ece: round(figures.parentMnist.ece),
          frames: figures.mnist.frames,
          description:
            'MNIST test set, each image rendered as the original camera frame and sent through preparePng, scored by the exported file with onnxruntime-node',
        },
        held_out: {
          accuracy: round(figures.heldOutAccuracy),
          parent_accuracy: round(figures.parentHeldOutAccuracy),
          count: heldOutSet.count,
        },
        blank: { max_probability: round(figures.blankMax), frames: figures.blankCount },
        bytes: bytes.length,
      },
      gates,
      wall_seconds: round((Date.now() - started) / 1000, 1),
    }) as unknown as Record<string, unknown>;
    renameSync(partial, join(out, version));
    say('done', `${version} written to ${join(out, version)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return { version, dir: join(out, version), card, gates };
  } catch (error: unknown) {
    rmSync(partial, { recursive: true, force: true });
    throw error;
  }
}

/** Every figure the gates need, for the candidate and its parent, on the same frames. */
async function measure(candidate: DigitModel, parent: DigitModel, heldOut: PreparedSet, o: Settings) {
  const test = await prepareTestSet(o.mnistTestLimit);
  const mnist = evaluate(await scorePrepared(candidate, test.pixels), test.labels, o.threshold);
  const parentMnist = evaluate(await scorePrepared(parent, test.pixels), test.labels, o.threshold);
  const heldOutPixels = Array.from({ length: heldOut.count }, (_, k) => heldOut.images.subarray(k * PIXELS, (k + 1) * PIXELS));
  const accuracyOn = async (model: DigitModel) => {
    const scores = await scorePrepared(model, heldOutPixels);
    return scores.filter((row, k) => argmax(row).index === heldOut.labels[k]).length / Math.max(1, heldOut.count);
  };
  // Blank paper: an all-zero input, and frames of the camera-frame generator's evaluation blank seed.
  const blanks: Uint8Array[] = [new Uint8Array(PIXELS)];
  for (let i = 0; i < o.blankFrames; i++)
    blanks.push((await preparePng(cameraFrameAt(i, { seed: 2, blankShare: 1 }).png)).pixels);
  const blankMax = Math.max(...(await scorePrepared(candidate, blanks)).map((row) => argmax(row).value));
  return {
    mnist,
    parentMnist,
    heldOutAccuracy: await accuracyOn(candidate),
    parentHeldOutAccuracy: await accuracyOn(parent),
    blankMax,
    blankCount: blanks.length,
  };
}
