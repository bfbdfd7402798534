/**
 * Models folders for registry tests: a shipped model and candidates built in the test (small
 * centroid models, each with its own version and, for candidates, gate results), and ways to
 * damage a candidate.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCentroidModel } from './centroid-model';

/** Gate results as `npm run retrain` writes them. */
export function gates(passed: boolean): Record<string, unknown> {
  return {
    gates: {
      passed,
      checks: [
        { name: 'mnist_accuracy', passed: true, value: 0.81, limit: 0.8, detail: 'test model' },
        {
          name: 'held_out_better',
          passed,
          value: passed ? 0.9 : 0.7,
          limit: 0.8,
          detail: passed ? 'better than parent' : '0.700 <= parent 0.800',
        },
      ],
    },
  };
}

/** A models root whose shipped model is `shippedVersion` (a centroid model). */
export function modelsRoot(shippedVersion = '1.0.0', samples = 2000): string {
  const root = mkdtempSync(join(tmpdir(), 'models-root-'));
  writeCentroidModel(samples, root, { version: shippedVersion });
  return root;
}

/**
 * Writes candidate `version` under root/candidates. `bias` makes it answer differently from
 * the shipped model (a large bias on one class makes it say that class far more often).
 */
export function addCandidate(
  root: string,
  version: string,
  options: { passed?: boolean; bias?: Partial<Record<number, number>>; samples?: number } = {},
): string {
  const dir = join(root, 'candidates', version);
  writeCentroidModel(options.samples ?? 2000, dir, {
    version,
    details: { parent: { version: '1.0.0' }, ...gates(options.passed ?? true) },
    ...(options.bias ? { bias: options.bias } : {}),
  });
  return dir;
}

/**
 * The registry the promote tests start from: shipped 1.0.0; candidates 1.1.0 (answers
 * differently), 1.2.0, and 1.3.0 whose gates failed.
 */
export function registryWithCandidates(): string {
  const root = modelsRoot('1.0.0');
  addCandidate(root, '1.1.0', { bias: { 3: 4 } });
  addCandidate(root, '1.2.0');
  addCandidate(root, '1.3.0', { passed: false });
  return root;
}

/** Flips a byte in the middle of a candidate's ONNX file (its card no longer matches). */
export function corrupt(dir: string): void {
  const path = join(dir, 'digits.onnx');
  const bytes = readFileSync(path);
  const middle = bytes.length >> 1;
  bytes[middle] = (bytes[middle] as number) ^ 0xff;
  writeFileSync(path, bytes);
}

/** A folder named `version` holding another version's files (card and file agree with each other). */
export function mismatched(root: string, version: string, from: string): string {
  const dir = join(root, 'candidates', version);
  mkdirSync(dir, { recursive: true });
  for (const f of ['digits.onnx', 'model-card.json']) copyFileSync(join(root, 'candidates', from, f), join(dir, f));
  return dir;
}
