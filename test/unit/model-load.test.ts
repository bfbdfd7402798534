import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelLoadError } from '../../functions/lib/errors';
import { defaultModelDir, loadDigitModel, readOnnxMetadata } from '../../functions/lib/model';
import { writeModelFiles } from '../../training/model-files';
import { initialWeights, type NetworkSpec } from '../../training/network';
import { exportOnnx } from '../../training/onnx-export';
import { Rng } from '../../training/rng';

const SMALL: NetworkSpec = {
  inputSize: 28,
  layers: [
    { kind: 'conv', filters: 2, kernel: 3, padding: 'same' },
    { kind: 'maxpool', size: 4 },
    { kind: 'flatten' },
    { kind: 'dense', units: 10, relu: false },
  ],
};

/** The same network for 14x14 inputs: its graph takes [batch, 196], not [batch, 784]. */
const WRONG_INPUT: NetworkSpec = { ...SMALL, inputSize: 14 };

let root: string;
let goodDir: string;

/** A fresh copy of the good model folder, to damage one way per test. */
function copyOfGood(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const f of ['digits.onnx', 'model-card.json']) copyFileSync(join(goodDir, f), join(dir, f));
  return dir;
}

async function loadError(dir: string): Promise<ModelLoadError> {
  try {
    await loadDigitModel(dir);
  } catch (error: unknown) {
    if (error instanceof ModelLoadError) return error;
    throw error;
  }
  throw new Error(`loading ${dir} succeeded`);
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'model-load-'));
  goodDir = join(root, 'good');
  writeModelFiles(goodDir, exportOnnx(SMALL, initialWeights(SMALL, new Rng(1)), { temperature: 1, version: '3.1.4' }), '3.1.4');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('loadDigitModel', () => {
  it('loads a good model, reports its version and path, and scores a batch in input order', async () => {
    const model = await loadDigitModel(goodDir);
    expect(model.version).toBe('3.1.4');
    expect(model.path).toBe(join(goodDir, 'digits.onnx'));
    const ink = new Uint8Array(784).fill(255);
    const scores = await model.scoreBatch([new Uint8Array(784), ink, new Uint8Array(784)]);
    expect(scores).toHaveLength(3);
    for (const row of scores) {
      expect(row).toHaveLength(10);
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    }
    expect(Array.from(scores[0]!)).toEqual(Array.from(scores[2]!));
    expect(Array.from(scores[0]!)).not.toEqual(Array.from(scores[1]!));
    expect(await model.scoreBatch([])).toEqual([]);
  });

  it('refuses an image that is not 784 bytes', async () => {
    const model = await loadDigitModel(goodDir);
    await expect(model.scoreBatch([new Uint8Array(783)])).rejects.toThrow(/image 0 has 783 bytes, expected 784/);
  });

  it('names the missing model file', async () => {
    const dir = copyOfGood('missing');
    unlinkSync(join(dir, 'digits.onnx'));
    const error = await loadError(dir);
    expect(error.modelPath).toBe(join(dir, 'digits.onnx'));
    expect(error.message).toMatch(/digits\.onnx: model file missing/);
  });

  it('names the missing model card', async () => {
    const dir = copyOfGood('no-card');
    unlinkSync(join(dir, 'model-card.json'));
    const error = await loadError(dir);
    expect(error.message).toMatch(/model-card\.json: model card missing/);
  });

  it('reports a malformed card field by field', async () => {
    const dir = copyOfGood('bad-card');
    const card = JSON.parse(readFileSync(join(dir, 'model-card.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'model-card.json'), JSON.stringify({ ...card, sha256: 'abc' }));
    expect((await loadError(dir)).message).toMatch(/model card unreadable: sha256: 64 lower-case hex digits/);
  });

  it('calls a file with flipped bytes corrupt, with both checksums', async () => {
    const dir = copyOfGood('corrupt');
    const bytes = readFileSync(join(dir, 'digits.onnx'));
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    writeFileSync(join(dir, 'digits.onnx'), bytes);
    const error = await loadError(dir);
    expect(error.modelPath).toBe(join(dir, 'digits.onnx'));
    expect(error.message).toMatch(
      /corrupt or altered: \d+ bytes with sha256 [0-9a-f]{64}, but the card says \d+ bytes with sha256 [0-9a-f]{64}/,
    );
  });

  it('calls a truncated file corrupt', async () => {
    const dir = copyOfGood('truncated');
    const bytes = readFileSync(join(dir, 'digits.onnx'));
    writeFileSync(join(dir, 'digits.onnx'), bytes.subarray(0, 1000));
    expect((await loadError(dir)).message).toMatch(/corrupt or altered: 1000 bytes/);
  });

  it('calls a file that matches its card but is no ONNX model corrupt', async () => {
    const dir = join(root, 'garbage');
    writeModelFiles(dir, new TextEncoder().encode('this is not a model, just text'), '1.0.0');
    expect((await loadError(dir)).message).toMatch(/digits\.onnx: corrupt/);
  });

  it('reports a wrong input shape', async () => {
    const dir = join(root, 'wrong-shape');
    writeModelFiles(
      dir,
      exportOnnx(WRONG_INPUT, initialWeights(WRONG_INPUT, new Rng(2)), { temperature: 1, version: '1.0.0' }),
      '1.0.0',
    );
    const error = await loadError(dir);
    expect(error.modelPath).toBe(join(dir, 'digits.onnx'));
    expect(error.message).toMatch(/wrong shape: input "pixels" is \[[^,]+,196\], expected \[batch,784\]/);
  });

  it('reports a version that differs between file and card', async () => {
    const dir = copyOfGood('version');
    const card = JSON.parse(readFileSync(join(dir, 'model-card.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'model-card.json'), JSON.stringify({ ...card, version: '9.9.9' }));
    expect((await loadError(dir)).message).toMatch(/version mismatch: the file says 3\.1\.4, the card says 9\.9\.9/);
  });
});

describe('readOnnxMetadata', () => {
  it("reads the exporter's metadata", () => {
    const props = readOnnxMetadata(readFileSync(join(goodDir, 'digits.onnx')));
    expect(props.get('version')).toBe('3.1.4');
    expect(props.get('temperature')).toBe('1');
  });
});

describe('defaultModelDir', () => {
  const saved = process.env.MODEL_DIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.MODEL_DIR;
    else process.env.MODEL_DIR = saved;
  });

  it('follows MODEL_DIR when set', () => {
    process.env.MODEL_DIR = '/somewhere/models';
    expect(defaultModelDir()).toBe('/somewhere/models');
  });

  it('falls back to the repository models/ folder', () => {
    delete process.env.MODEL_DIR;
    expect(defaultModelDir()).toMatch(/models$/);
  });
});
