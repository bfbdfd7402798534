/**
 * classify with a candidate in shadow and with sampling, on a real emulator: the outputs of a
 * batch are byte for byte those of the same batch without shadow, and the candidate's answers
 * go to shadow-scores only.
 */
import { rmSync } from 'node:fs';
import type { KinesisStreamRecord } from 'aws-lambda';
import { type ClassifyStreams, classifyBatch } from '../../functions/lib/classify-batch';
import { SampleBudget } from '../../functions/lib/collection';
import { loadConfig } from '../../functions/lib/config';
import { shadowScoreSchema, uncertainImageSchema } from '../../functions/lib/contracts';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { type DigitModel, loadDigitModel } from '../../functions/lib/model';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { cameraRecord, frameIdOf } from '../helpers/frames';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { addCandidate, modelsRoot } from '../helpers/model-registry-fixtures';

const mnist = loadMnist('t10k');
const frame = (index: number, camera: string) =>
  JSON.stringify({
    image: renderOriginalFrameSync(mnistImage(mnist, index)).toString('base64'),
    camera,
    timestamp: '2026-12-06T04:00:00.000Z',
    label: mnist.labels[index],
  });

let kinesis: TestKinesis;
let root: string;
let current: DigitModel;
let candidate: DigitModel;
let records: KinesisStreamRecord[];
let prefixes = 0;

async function newStreams(): Promise<Required<ClassifyStreams>> {
  const prefix = `s${++prefixes}-`;
  const streams = {
    predictions: `${prefix}predictions`,
    uncertainImages: `${prefix}uncertain-images`,
    rejectedImages: `${prefix}rejected-images`,
    shadowScores: `${prefix}shadow-scores`,
  };
  await kinesis.createStreams(Object.values(streams));
  return streams;
}

/** One run of the batch with a fixed clock, so two runs can be compared byte for byte. */
async function run(shadow: DigitModel | undefined, logger?: { info(): void; warn(m: string): void; error(): void }) {
  const streams = await newStreams();
  let tick = 0;
  const config = loadConfig({
    DEVICE_ID: 'edge-shadow',
    SAMPLE_CERTAIN_RATE: '0.3',
    CAMERA_RULES: JSON.stringify({ 'Strict-*': { confidence: 1 } }),
  });
  const result = await classifyBatch(records, {
    model: current,
    ...(shadow ? { shadow } : {}),
    sink: new KinesisStreamWriter(createKinesisClient({ endpoint: kinesis.endpoint })),
    streams,
    config,
    now: () => Date.parse('2026-12-06T04:00:01.000Z'),
    elapsed: () => (tick += 0.25),
    sampleBudget: new SampleBudget(),
    ...(logger ? { logger } : {}),
  });
  const bytes = async (stream: string) =>
    (await kinesis.readAll(stream)).map((r) => `${r.partitionKey} ${r.data.toString('base64')}`);
  return {
    result,
    predictions: await bytes(streams.predictions),
    uncertain: await bytes(streams.uncertainImages),
    rejected: await bytes(streams.rejectedImages),
    shadow: (await kinesis.readJson(streams.shadowScores)).map((r) => shadowScoreSchema.parse(r)),
    uncertainRecords: (await kinesis.readJson(streams.uncertainImages)).map((r) => uncertainImageSchema.parse(r)),
  };
}

beforeAll(async () => {
  kinesis = await startKinesalite();
  root = modelsRoot('1.0.0');
  current = await loadDigitModel(root);
  candidate = await loadDigitModel(addCandidate(root, '1.1.0', { bias: { 3: 4 } }));
  records = [
    ...Array.from({ length: 60 }, (_, i) => cameraRecord(frame(i, 'Camera-1'), 'Camera-1')),
    ...Array.from({ length: 10 }, (_, i) => cameraRecord(frame(100 + i, 'Test-1'), 'Test-1')),
    ...Array.from({ length: 10 }, (_, i) => cameraRecord(frame(200 + i, 'Strict-1'), 'Strict-1')),
    cameraRecord('{"image": "abc", "camera": ', 'bad'),
  ];
});
afterAll(async () => {
  await kinesis.close();
  rmSync(root, { recursive: true, force: true });
});

describe('shadow scoring in classify', () => {
  it('leaves predictions, uncertain-images and rejected-images byte for byte unchanged', async () => {
    const without = await run(undefined);
    const withShadow = await run(candidate);

    expect(withShadow.predictions).toEqual(without.predictions);
    expect(withShadow.uncertain).toEqual(without.uncertain);
    expect(withShadow.rejected).toEqual(without.rejected);
    expect(without.predictions).toHaveLength(80);
    expect(without.rejected).toHaveLength(1);
    expect(without.shadow).toEqual([]);

    // The candidate's answers, one per scored frame, beside the current model's.
    const scored = records.slice(0, 80).map(frameIdOf);
    expect(withShadow.shadow.map((s) => s.frame_id)).toEqual(scored);
    expect(withShadow.result.counts).toMatchObject({ shadowScored: 80, shadowWritten: 80 });
    expect(new Set(withShadow.shadow.map((s) => `${s.model_version}>${s.shadow_version}`))).toEqual(new Set(['1.0.0>1.1.0']));
    const disagreements = withShadow.shadow.filter((s) => s.result_class !== s.shadow_class);
    expect(disagreements.length).toBeGreaterThan(0);
    expect(disagreements.every((s) => s.shadow_class === 3)).toBe(true);
  });

  it('a failing candidate costs the comparison only', async () => {
    const without = await run(undefined);
    const warnings: string[] = [];
    const broken: DigitModel = {
      ...candidate,
      version: '6.6.6',
      scoreBatch: async () => Promise.reject(new Error('session gone')),
    };
    const withBroken = await run(broken, { info: () => undefined, warn: (m) => warnings.push(m), error: () => undefined });
    expect(withBroken.predictions).toEqual(without.predictions);
    expect(withBroken.uncertain).toEqual(without.uncertain);
    expect(withBroken.shadow).toEqual([]);
    expect(withBroken.result.counts).toMatchObject({ failed: 0, shadowScored: 0 });
    expect(warnings).toContain('shadow model failed, batch not compared');
  });
});

describe('collection in classify', () => {
  it('sends a deterministic share of certain frames home as sampled, and applies camera rules', async () => {
    const first = await run(undefined);
    const second = await run(undefined);
    const reasons = (r: typeof first) => new Map(r.uncertainRecords.map((u) => [u.frame_id, u.reason]));
    expect(reasons(second)).toEqual(reasons(first));
    const byReason = (reason: string) => first.uncertainRecords.filter((u) => u.reason === reason);
    const sampled = byReason('sampled');
    expect(sampled.length).toBeGreaterThan(0);
    expect(sampled.every((u) => u.result_probability > 0.7 && u.camera === 'Camera-1')).toBe(true);
    expect(first.result.counts.sampled).toBe(sampled.length);
    // Every Test frame goes home; on Strict-1 (threshold 1) every frame is low-confidence.
    expect(byReason('test_camera').length).toBeGreaterThan(0);
    expect(byReason('test_camera').every((u) => u.camera === 'Test-1')).toBe(true);
    expect(first.uncertainRecords.filter((u) => u.camera === 'Test-1')).toHaveLength(10);
    expect(first.uncertainRecords.filter((u) => u.camera === 'Strict-1').map((u) => u.reason)).toEqual(
      new Array(10).fill('low_confidence'),
    );
  });
});
