/**
 * The digit model: loaded and verified once per container, then scores whole batches.
 *
 * Everything that can be wrong with the model file is found at cold start, so a bad layer
 * fails the deployment's first invocation loudly instead of failing frames one by one.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { ModelLoadError } from './errors';

/** Bytes in one prepared image: 28x28, row-major, 0 = paper, 255 = ink. */
export const PREPARED_PIXELS = 784;
export const CLASS_COUNT = 10;
export const MODEL_FILE = 'digits.onnx';
export const MODEL_CARD_FILE = 'model-card.json';
/** The graph's signature; the exporter in training/ writes exactly this. */
export const INPUT_NAME = 'pixels';
export const PROBABILITIES_NAME = 'probabilities';
export const LOGITS_NAME = 'logits';

const dimension = z.union([z.number().int().positive(), z.string().min(1)]);
const tensorSpec = z.looseObject({ name: z.string().min(1), shape: z.array(dimension).min(1) });

/** The part of the model card the loader relies on; the card holds more (metrics, training). */
export const modelCardSchema = z.looseObject({
  version: z.string().regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, 'a version like 1.2.0'),
  file: z.string().regex(/^[^/\\]+\.onnx$/, 'a file name in the model folder'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  bytes: z.number().int().positive(),
  input: tensorSpec,
  outputs: z.array(tensorSpec).min(1),
});
export type ModelCard = z.infer<typeof modelCardSchema>;

/** A loaded, verified model. */
export interface DigitModel {
  /** The model card's version; travels on every prediction as `model_version`. */
  readonly version: string;
  /** Absolute path of the ONNX file. */
  readonly path: string;
  /**
   * Scores prepared images (784 bytes each) in one batched onnxruntime call and returns 10
   * calibrated probabilities per image, in input order. Throws a RangeError when an image is
   * not 784 bytes (a programming error: preparation always yields 784).
   */
  scoreBatch(images: readonly Uint8Array[]): Promise<Float32Array[]>;
  /** Frees the onnxruntime session; the model must not score afterwards. */
  release?(): Promise<void>;
}

/**
 * Where the model lives: `MODEL_DIR` when set, else `/opt/models` when a Lambda layer
 * provides it, else the repository's `models/` folder.
 */
export function defaultModelDir(): string {
  const configured = process.env.MODEL_DIR;
  if (configured !== undefined && configured !== '') return resolve(configured);
  if (existsSync(join('/opt/models', MODEL_CARD_FILE))) return '/opt/models';
  return resolve(__dirname, '..', '..', 'models');
}

function describe(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads the `metadata_props` of an ONNX ModelProto (field 14: key = 1, value = 2) with a
 * minimal protobuf scan, so the runtime needs no protobuf library just to read a version.
 */
export function readOnnxMetadata(bytes: Uint8Array): Map<string, string> {
  const props = new Map<string, string>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const varint = (buf: Uint8Array, at: { pos: number }): number => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (at.pos >= buf.length) throw new Error('truncated varint');
      const b = buf[at.pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
      if (scale > 2 ** 63) throw new Error('varint too long');
    }
  };
  const fields = (buf: Uint8Array, visit: (field: number, payload: Uint8Array) => void): void => {
    const at = { pos: 0 };
    while (at.pos < buf.length) {
      const key = varint(buf, at);
      const field = Math.floor(key / 8);
      const wire = key % 8;
      if (wire === 0) varint(buf, at);
      else if (wire === 1) at.pos += 8;
      else if (wire === 5) at.pos += 4;
      else if (wire === 2) {
        const length = varint(buf, at);
        if (at.pos + length > buf.length) throw new Error('truncated field');
        visit(field, buf.subarray(at.pos, at.pos + length));
        at.pos += length;
      } else throw new Error(`unsupported wire type ${wire}`);
    }
    if (at.pos !== buf.length) throw new Error('truncated message');
  };
  fields(bytes, (field, payload) => {
    if (field !== 14) return;
    let key = '';
    let value = '';
    fields(payload, (f, p) => {
      if (f === 1) key = decoder.decode(p);
      else if (f === 2) value = decoder.decode(p);
    });
    props.set(key, value);
  });
  return props;
}

function checkTensor(
  modelPath: string,
  kind: 'input' | 'output',
  metadata: readonly ort.InferenceSession.ValueMetadata[],
  expected: { name: string; shape: readonly (number | string)[] },
): void {
  const found = metadata.find((m) => m.name === expected.name);
  if (found === undefined) {
    const names = metadata.map((m) => m.name).join(', ');
    throw new ModelLoadError(modelPath, `wrong signature: no ${kind} named "${expected.name}" (the file has ${names || 'none'})`);
  }
  if (!found.isTensor || found.type !== 'float32') {
    throw new ModelLoadError(modelPath, `wrong signature: ${kind} "${expected.name}" must be a float32 tensor`);
  }
  // Symbolic dimensions (the batch) may carry any name; fixed ones must match exactly.
  const same =
    found.shape.length === expected.shape.length &&
    found.shape.every((d, k) =>
      typeof expected.shape[k] === 'string' ? typeof d === 'string' || d === -1 : d === expected.shape[k],
    );
  if (!same) {
    throw new ModelLoadError(
      modelPath,
      `wrong shape: ${kind} "${expected.name}" is ${describe(found.shape)}, expected ${describe(expected.shape)}`,
    );
  }
}

const EXPECTED_INPUT = { name: INPUT_NAME, shape: ['batch', PREPARED_PIXELS] } as const;
const EXPECTED_OUTPUT = { name: PROBABILITIES_NAME, shape: ['batch', CLASS_COUNT] } as const;

/**
 * Loads the model in `modelDir` (default {@link defaultModelDir}) and verifies it before
 * anything is scored: the card is present and well-formed, the file is present, its size
 * and sha256 match the card, the version in the file's metadata matches the card's, the
 * graph has input `pixels` [batch, 784] and output `probabilities` [batch, 10] as the card
 * says, and a trial batch of two blank images yields two rows of 10 probabilities.
 * Creates the onnxruntime session once; keep the returned model for the container's life.
 *
 * @throws ModelLoadError naming the offending path and what is wrong with it.
 */
export async function loadDigitModel(modelDir: string = defaultModelDir()): Promise<DigitModel> {
  const dir = resolve(modelDir);
  const cardPath = join(dir, MODEL_CARD_FILE);
  if (!existsSync(cardPath)) throw new ModelLoadError(cardPath, 'model card missing');
  let card: ModelCard;
  try {
    const parsed = modelCardSchema.safeParse(JSON.parse(readFileSync(cardPath, 'utf8')));
    if (!parsed.success) {
      throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
    }
    card = parsed.data;
  } catch (error: unknown) {
    throw new ModelLoadError(cardPath, `model card unreadable: ${messageOf(error)}`);
  }

  const modelPath = join(dir, card.file);
  if (!existsSync(modelPath)) throw new ModelLoadError(modelPath, `model file missing (the card ${cardPath} names it)`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(modelPath);
  } catch (error: unknown) {
    throw new ModelLoadError(modelPath, `model file unreadable: ${messageOf(error)}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (bytes.length !== card.bytes || sha256 !== card.sha256) {
    throw new ModelLoadError(
      modelPath,
      `corrupt or altered: ${bytes.length} bytes with sha256 ${sha256}, but the card says ${card.bytes} bytes with sha256 ${card.sha256}`,
    );
  }

  let fileVersion: string | undefined;
  try {
    fileVersion = readOnnxMetadata(bytes).get('version');
  } catch (error: unknown) {
    throw new ModelLoadError(modelPath, `corrupt: not an ONNX model (${messageOf(error)})`);
  }
  if (fileVersion !== card.version) {
    throw new ModelLoadError(
      modelPath,
      `version mismatch: the file says ${fileVersion ?? '(none)'}, the card says ${card.version}`,
    );
  }

  for (const [label, expected, declared] of [
    ['input', EXPECTED_INPUT, card.input],
    ['output', EXPECTED_OUTPUT, card.outputs.find((o) => o.name === PROBABILITIES_NAME)],
  ] as const) {
    if (declared === undefined || declared.name !== expected.name || describe(declared.shape) !== describe(expected.shape)) {
      throw new ModelLoadError(cardPath, `wrong shape: the card's ${label} must be ${expected.name} ${describe(expected.shape)}`);
    }
  }

  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all' });
  } catch (error: unknown) {
    throw new ModelLoadError(modelPath, `corrupt: onnxruntime cannot load it (${messageOf(error)})`);
  }
  checkTensor(modelPath, 'input', session.inputMetadata, EXPECTED_INPUT);
  checkTensor(modelPath, 'output', session.outputMetadata, EXPECTED_OUTPUT);

  const run = async (images: readonly Uint8Array[]): Promise<Float32Array[]> => {
    if (images.length === 0) return [];
    const input = new Float32Array(images.length * PREPARED_PIXELS);
    images.forEach((image, k) => {
      if (image.length !== PREPARED_PIXELS)
        throw new RangeError(`image ${k} has ${image.length} bytes, expected ${PREPARED_PIXELS}`);
      input.set(image, k * PREPARED_PIXELS); // 0-255 as float: the graph scales to 0..1 itself
    });
    const feeds = { [INPUT_NAME]: new ort.Tensor('float32', input, [images.length, PREPARED_PIXELS]) };
    const result = await session.run(feeds, [PROBABILITIES_NAME]);
    const probs = result[PROBABILITIES_NAME];
    if (probs === undefined || probs.dims.length !== 2 || probs.dims[0] !== images.length || probs.dims[1] !== CLASS_COUNT) {
      throw new Error(
        `model returned ${probs === undefined ? 'no probabilities' : describe(probs.dims)} for ${images.length} images`,
      );
    }
    const data = probs.data as Float32Array;
    return images.map((_, k) => data.slice(k * CLASS_COUNT, (k + 1) * CLASS_COUNT));
  };

  // A trial run now, so a graph that loads but computes the wrong shape fails the cold start.
  try {
    const trial = await run([new Uint8Array(PREPARED_PIXELS), new Uint8Array(PREPARED_PIXELS)]);
    const sum = trial[0]!.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > 1e-3) throw new Error(`probabilities sum to ${sum}`);
  } catch (error: unknown) {
    throw new ModelLoadError(modelPath, `wrong shape: a trial batch failed (${messageOf(error)})`);
  }

  return { version: card.version, path: modelPath, scoreBatch: run, release: () => session.release() };
}
