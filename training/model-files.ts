import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_CARD_FILE, MODEL_FILE, type ModelCard } from '../functions/lib/model';
import { ONNX_SIGNATURE } from './onnx-export';

/**
 * Writes `digits.onnx` and its card into `dir`. The card's required part (version, file,
 * size, sha256, signature) is computed here from the bytes; `details` adds the training
 * and evaluation sections. Each file is written to a temporary name and renamed, so a
 * crash never leaves a model whose card describes another file.
 */
export function writeModelFiles(
  dir: string,
  onnxBytes: Uint8Array,
  version: string,
  details: Record<string, unknown> = {},
): ModelCard {
  mkdirSync(dir, { recursive: true });
  const card: ModelCard = {
    version,
    file: MODEL_FILE,
    bytes: onnxBytes.length,
    sha256: createHash('sha256').update(onnxBytes).digest('hex'),
    input: {
      name: ONNX_SIGNATURE.input.name,
      shape: [...ONNX_SIGNATURE.input.shape],
      description: ONNX_SIGNATURE.input.description,
    },
    outputs: ONNX_SIGNATURE.outputs.map((o) => ({ name: o.name, shape: [...o.shape], description: o.description })),
    ...details,
  };
  const modelPath = join(dir, MODEL_FILE);
  const cardPath = join(dir, MODEL_CARD_FILE);
  writeFileSync(`${modelPath}.tmp`, onnxBytes);
  writeFileSync(`${cardPath}.tmp`, `${JSON.stringify(card, null, 2)}\n`);
  renameSync(`${modelPath}.tmp`, modelPath);
  renameSync(`${cardPath}.tmp`, cardPath);
  return card;
}
