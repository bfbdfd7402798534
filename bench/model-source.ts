/**
 * Cold start and per-batch cost of following the model registry, against a fixed MODEL_DIR:
 * the time to a ready model (median of N alternating runs, in this process, after a warm-up)
 * and the cost of the per-batch registry check (acquire + done with nothing changed).
 *
 *   npx tsx bench/model-source.ts [runs]
 */
import { join } from 'node:path';
import { fixedModelSource, RegistryModelSource } from '../functions/lib/model-source';

const MODELS = join(__dirname, '..', 'models');

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(runs: number): Promise<void> {
  const fixed: number[] = [];
  const registry: number[] = [];
  await fixedModelSource(MODELS).ready; // warm-up: onnxruntime's own first-load cost
  // Alternating which goes first, so neither pays for the other's garbage.
  for (let i = 0; i < runs; i++) {
    for (const kind of i % 2 === 0 ? ['fixed', 'registry'] : ['registry', 'fixed']) {
      const start = performance.now();
      const source = kind === 'fixed' ? fixedModelSource(MODELS) : new RegistryModelSource(MODELS);
      await source.ready;
      (kind === 'fixed' ? fixed : registry).push(performance.now() - start);
      await (await source.acquire()).model.release?.();
    }
  }
  const source = new RegistryModelSource(MODELS);
  await source.ready;
  const checks = 20_000;
  const start = performance.now();
  for (let i = 0; i < checks; i++) (await source.acquire()).done();
  const perCheck = (performance.now() - start) / checks;
  console.log(
    `cold start, median of ${runs}: fixed MODEL_DIR ${median(fixed).toFixed(1)} ms, registry ${median(registry).toFixed(1)} ms`,
  );
  console.log(`registry check per batch (nothing changed): ${(perCheck * 1000).toFixed(1)} µs`);
}

main(Number(process.argv[2] ?? 15)).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
