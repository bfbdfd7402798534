import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { modelCardSchema, readOnnxMetadata } from '../../functions/lib/model';

// The committed model and its card, as the model layer ships them.
const MODELS = join(__dirname, '..', '..', 'models');
const card = modelCardSchema.parse(JSON.parse(readFileSync(join(MODELS, 'model-card.json'), 'utf8')));
const modelPath = join(MODELS, card.file);

describe('the committed model card', () => {
  it('matches the committed file byte for byte (size and sha256)', () => {
    const bytes = readFileSync(modelPath);
    expect(bytes.length).toBe(card.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(card.sha256);
  });

  it('carries the version written inside the file', () => {
    expect(readOnnxMetadata(readFileSync(modelPath)).get('version')).toBe(card.version);
  });

  it('states the signature onnxruntime reads from the file', async () => {
    const session = await ort.InferenceSession.create(modelPath);
    const describe = (m: ort.InferenceSession.ValueMetadata) => ({
      name: m.name,
      shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : 'batch')) : [],
    });
    expect(session.inputMetadata.map(describe)).toEqual([{ name: card.input.name, shape: card.input.shape }]);
    expect(session.outputMetadata.map(describe)).toEqual(card.outputs.map((o) => ({ name: o.name, shape: o.shape })));
  });

  it('keeps the file within the 1 MB budget', () => {
    expect(statSync(modelPath).size).toBeLessThanOrEqual(1_000_000);
  });
});
