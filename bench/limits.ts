/**
 * The limits: what decoding and inference alone allow in this process, with the same
 * concurrency the classify stage uses (every frame of a batch prepared concurrently, then one
 * batched onnxruntime call). Everything the pipeline adds is measured against these.
 */
import type { DigitModel } from '../functions/lib/model';
import { decodePng } from '../functions/lib/decode';
import { type PreparedImage, prepareGray, preparePng } from '../functions/lib/prepare';
import type { BenchFrame } from './frames';

/** Items per second, and CPU time per item (this process, every thread: onnxruntime's and libuv's too). */
export interface Measured {
  fps: number;
  cpuMsPerFrame: number;
}

/** Runs `work` over `total` items in chunks of `batch`. */
export async function measure(
  total: number,
  batch: number,
  work: (start: number, end: number) => Promise<void>,
): Promise<Measured> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let start = 0; start < total; start += batch) await work(start, Math.min(total, start + batch));
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { fps: total / seconds, cpuMsPerFrame: (used.user + used.system) / 1000 / total };
}

/** Prepared 28x28 images of `frames` (for the inference-only figures). */
export async function preparedOf(frames: readonly BenchFrame[]): Promise<PreparedImage[]> {
  return Promise.all(frames.map((f) => preparePng(f.png)));
}

/** Inference alone: `total` images scored `batch` at a time; images per second. */
export function inferenceRate(
  model: DigitModel,
  images: readonly PreparedImage[],
  batch: number,
  total: number,
): Promise<Measured> {
  const pixels = images.map((p) => p.pixels);
  return measure(total, batch, async (start, end) => {
    const chunk: Uint8Array[] = [];
    for (let i = start; i < end; i++) chunk.push(pixels[i % pixels.length] as Uint8Array);
    await model.scoreBatch(chunk);
  });
}

/** Decoding alone (PNG to 8-bit gray through decode.ts), a batch at a time. */
export function decodeRate(frames: readonly BenchFrame[], batch: number, total: number): Promise<Measured> {
  return measure(total, batch, async (start, end) => {
    const jobs: Promise<unknown>[] = [];
    for (let i = start; i < end; i++) jobs.push(decodePng((frames[i % frames.length] as BenchFrame).png));
    await Promise.all(jobs);
  });
}

/** Normalisation alone (prepareGray on already decoded frames). */
export async function normaliseRate(frames: readonly BenchFrame[], total: number): Promise<Measured> {
  const decoded = await Promise.all(frames.map((f) => decodePng(f.png)));
  return measure(total, total, async (start, end) => {
    for (let i = start; i < end; i++) prepareGray(decoded[i % decoded.length] as (typeof decoded)[number]);
  });
}

/** Preparation alone: decode + normalisation (preparePng), a batch prepared concurrently. */
export function prepareRate(frames: readonly BenchFrame[], batch: number, total: number): Promise<Measured> {
  return measure(total, batch, async (start, end) => {
    const jobs: Promise<PreparedImage>[] = [];
    for (let i = start; i < end; i++) jobs.push(preparePng((frames[i % frames.length] as BenchFrame).png));
    await Promise.all(jobs);
  });
}

/** Preparation + prediction: the classify stage's physics, a batch at a time. */
export function prepareAndPredictRate(
  model: DigitModel,
  frames: readonly BenchFrame[],
  batch: number,
  total: number,
): Promise<Measured> {
  return measure(total, batch, async (start, end) => {
    const jobs: Promise<PreparedImage>[] = [];
    for (let i = start; i < end; i++) jobs.push(preparePng((frames[i % frames.length] as BenchFrame).png));
    const prepared = await Promise.all(jobs);
    await model.scoreBatch(prepared.map((p) => p.pixels));
  });
}
