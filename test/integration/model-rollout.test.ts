/**
 * Rolling a model out to a running local pipeline (real emulator, real handlers in worker
 * threads, the registry in a temporary models folder): shadow scoring changes no output,
 * promotion switches between batches while frames flow with every frame accounted for and
 * every prediction carrying the version that scored it, a corrupt or mismatched candidate is
 * refused (and ignored if written into the registry by hand) while the current model keeps
 * serving, and rollback restores the parent.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { framesFrom } from '../../functions/lib/camera-source/frames';
import { publishFrames } from '../../functions/lib/camera-source/publish';
import { cameraFrameSchema, type Prediction, type UncertainImage } from '../../functions/lib/contracts';
import { type MetricsDocument, metricsDocumentSchema } from '../../functions/lib/metrics/document';
import { type DigitModel, loadDigitModel } from '../../functions/lib/model';
import { preparePng } from '../../functions/lib/prepare';
import { topClass } from '../../functions/lib/route';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { LocalPipeline } from '../../local/pipeline';
import { CorruptModelError, GatesNotPassedError, promote, readRegistry, rollback, shadow } from '../../training/model-registry';
import { addCandidate, corrupt, mismatched, modelsRoot } from '../helpers/model-registry-fixtures';
import { streamReader } from '../helpers/stream-reader';

const CAMERA = 'Rollout-cam';
const CHUNK = 40;

let root: string;
let outDir: string;
let pipeline: LocalPipeline;
let writer: KinesisStreamWriter;
const models = new Map<string, DigitModel>();

/** Publishes the first `count` MNIST test frames as CAMERA. */
async function publish(count = CHUNK): Promise<void> {
  const summary = await publishFrames(framesFrom('mnist', 1), writer, { camera: CAMERA, stream: 'camera-images', count });
  expect(summary.published).toBe(count);
}

/** Waits (bounded) until `n` predictions have arrived home. */
async function untilPredicted(n: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pipeline.home.counts.predicted < n) {
    if (Date.now() > deadline)
      throw new Error(`only ${pipeline.home.counts.predicted} of ${n} predictions arrived in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Everything home has received, in arrival order (predictions file order is append order). */
function homePredictions(): Prediction[] {
  return readFileSync(pipeline.home.path('predictions'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Prediction);
}

function homeUncertain(): Map<string, UncertainImage> {
  const dir = pipeline.home.path('uncertain');
  const out = new Map<string, UncertainImage>();
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const tuple = JSON.parse(readFileSync(join(dir, name), 'utf8')) as UncertainImage;
    out.set(tuple.frame_id, tuple);
  }
  return out;
}

/** The input frame of every frame id, decoded from camera-images. */
async function inputFrames(): Promise<Map<string, { png: Buffer; order: bigint }>> {
  const records = await streamReader(pipeline.client).readAll('camera-images');
  return new Map(
    records.map((r) => {
      const frame = cameraFrameSchema.parse(JSON.parse(r.data.toString('utf8')));
      return [`${r.shardId}-${r.sequenceNumber}`, { png: Buffer.from(frame.image, 'base64'), order: BigInt(r.sequenceNumber) }];
    }),
  );
}

/** Every metrics document read home (one per window and shard). */
function metricsDocuments(): MetricsDocument[] {
  return readFileSync(pipeline.home.path('metrics'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => metricsDocumentSchema.parse(JSON.parse(l)));
}

const comparable = (p: Prediction | UncertainImage) => {
  // Ids, times and the home's file name differ between two publications of a frame; the rest may not.
  const {
    frame_id: _id,
    received_at: _r,
    scored_at: _s,
    prep_time: _p,
    predict_time: _t,
    timestamp: _ts,
    image_file: _f,
    ...rest
  } = p as Prediction & { image_file?: unknown };
  return rest;
};

beforeAll(async () => {
  root = modelsRoot('1.0.0');
  addCandidate(root, '1.1.0', { bias: { 3: 4 } });
  addCandidate(root, '1.2.0');
  corrupt(join(root, 'candidates', '1.2.0'));
  mismatched(root, '1.4.0', '1.1.0');
  addCandidate(root, '1.3.0', { passed: false });
  for (const version of ['1.0.0', '1.1.0'])
    models.set(version, await loadDigitModel(version === '1.0.0' ? root : join(root, 'candidates', version)));
  outDir = mkdtempSync(join(tmpdir(), 'rollout-out-'));
  pipeline = await LocalPipeline.start({
    port: 0,
    outDir,
    windowSeconds: 1,
    retryBaseDelayMs: 10,
    // No MODEL_DIR: the registry in MODEL_ROOT decides, as `npm start` does with models/.
    env: {
      MODEL_DIR: '',
      MODEL_ROOT: root,
      LOG_LEVEL: 'ERROR',
      AWS_REGION: 'us-east-1',
      TEST_CAMERA_PREFIX: 'Test',
      SAMPLE_CERTAIN_RATE: '0',
    },
    logger: { debug: () => undefined, warn: () => undefined },
  });
  writer = new KinesisStreamWriter(pipeline.client);
}, 180_000);

afterAll(async () => {
  await pipeline?.stop();
  for (const model of models.values()) await model.release?.();
  rmSync(outDir, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
});

it('shadows, promotes while frames flow, refuses bad candidates and rolls back, accounting for every frame', async () => {
  // 1. The shipped model serves.
  await publish();
  await untilPredicted(CHUNK);

  // 2. Shadow: the same frames again, scored by 1.1.0 too, outputs unchanged.
  await shadow('1.1.0', root);
  await publish();
  await untilPredicted(2 * CHUNK);
  await pipeline.drain(120_000);
  const afterShadow = homePredictions();
  const [plain, shadowed] = [afterShadow.slice(0, CHUNK), afterShadow.slice(CHUNK, 2 * CHUNK)];
  expect(shadowed.map(comparable)).toEqual(plain.map(comparable));
  expect(new Set(shadowed.map((p) => p.model_version))).toEqual(new Set(['1.0.0']));
  const uncertain = homeUncertain();
  const uncertainOf = (ps: Prediction[]) => ps.map((p) => uncertain.get(p.frame_id)).map((u) => (u ? comparable(u) : null));
  expect(uncertainOf(shadowed)).toEqual(uncertainOf(plain));
  // The comparison reached the metrics documents and the home: every shadowed frame, once.
  const totals = [...pipeline.home.shadowTotals.values()];
  expect(totals.map((t) => [t.current, t.candidate, t.count])).toEqual([['1.0.0', '1.1.0', CHUNK]]);
  expect(totals[0]?.agree).toBeLessThan(CHUNK);
  const shadowDocs = metricsDocuments().flatMap((w) => w.shadow ?? []);
  expect(shadowDocs.reduce((n, s) => n + s.count, 0)).toBe(CHUNK);

  // 3. Promote while frames flow: three chunks home, one in flight, two after the promote.
  const before = pipeline.home.counts.predicted;
  for (let i = 0; i < 3; i++) await publish();
  await untilPredicted(before + 3 * CHUNK);
  const inFlight = publish();
  const promoted = await promote('1.1.0', root);
  expect(promoted).toMatchObject({ version: '1.1.0', from: '1.0.0' });
  expect(readRegistry(root).shadow).toBeNull();
  await inFlight;
  await publish();
  await publish();
  await pipeline.drain(120_000);

  // 4. Bad candidates are refused and the current model keeps serving, even when a damaged
  // version is written into the registry by hand.
  await expect(promote('1.2.0', root)).rejects.toThrow(CorruptModelError);
  await expect(promote('1.2.0', root)).rejects.toThrow(/model 1\.2\.0 refused: .*corrupt or altered/);
  await expect(promote('1.4.0', root)).rejects.toThrow(/holds a card for version 1\.1\.0 \(mismatched files\)/);
  await expect(promote('1.3.0', root)).rejects.toThrow(GatesNotPassedError);
  expect(readRegistry(root).current).toBe('1.1.0');
  const afterPromote = pipeline.home.counts.predicted;
  writeFileSync(join(root, 'registry.json'), JSON.stringify({ ...readRegistry(root), current: '1.2.0' }));
  await publish();
  await pipeline.drain(120_000);
  const duringBadEdit = homePredictions().slice(afterPromote);
  expect(duringBadEdit).toHaveLength(CHUNK);
  expect(new Set(duringBadEdit.map((p) => p.model_version))).toEqual(new Set(['1.1.0']));
  writeFileSync(join(root, 'registry.json'), JSON.stringify({ ...readRegistry(root), current: '1.1.0' }));

  // 5. Rollback restores the parent.
  expect((await rollback(root)).version).toBe('1.0.0');
  const afterBad = pipeline.home.counts.predicted;
  await publish();
  await pipeline.drain(120_000);
  const afterRollback = homePredictions().slice(afterBad);
  expect(new Set(afterRollback.map((p) => p.model_version))).toEqual(new Set(['1.0.0']));

  // Every frame in exactly once; every prediction is what the version it names says of it.
  const inputs = await inputFrames();
  const predictions = homePredictions();
  expect(inputs.size).toBe(10 * CHUNK);
  expect(new Set(predictions.map((p) => p.frame_id))).toEqual(new Set(inputs.keys()));
  expect(predictions).toHaveLength(inputs.size);
  expect(pipeline.home.counts.rejected).toBe(0);
  expect(pipeline.runner.deadLetters).toEqual([]);
  for (const p of predictions) {
    const input = inputs.get(p.frame_id);
    const model = models.get(p.model_version);
    if (!input || !model) throw new Error(`${p.frame_id}: no input or no model ${p.model_version}`);
    const [scores] = await model.scoreBatch([(await preparePng(input.png)).pixels]);
    const expected = topClass(scores as Float32Array);
    expect({ id: p.frame_id, version: p.model_version, cls: p.result_class }).toEqual({
      id: p.frame_id,
      version: p.model_version,
      cls: expected.resultClass,
    });
    expect(p.result_probability).toBeCloseTo(expected.resultProbability, 5);
  }

  // The switch: in input order the promote section goes 1.0.0 ... then 1.1.0 ..., never back.
  const promoteSection = predictions
    .slice(before, before + 6 * CHUNK)
    .sort((a, b) => Number((inputs.get(a.frame_id)?.order ?? 0n) - (inputs.get(b.frame_id)?.order ?? 0n)));
  const versions = promoteSection.map((p) => p.model_version);
  const firstNew = versions.indexOf('1.1.0');
  expect(firstNew).toBeGreaterThanOrEqual(3 * CHUNK);
  expect(versions.slice(0, firstNew).every((v) => v === '1.0.0')).toBe(true);
  expect(versions.slice(firstNew).every((v) => v === '1.1.0')).toBe(true);
  // The two chunks published after the registry was written are all scored by the new version.
  expect(versions.slice(4 * CHUNK).every((v) => v === '1.1.0')).toBe(true);

  // The metrics documents split the run by version.
  const byVersion: Record<string, number> = {};
  for (const doc of metricsDocuments()) {
    for (const [v, t] of Object.entries(doc.version_metrics ?? {})) byVersion[v] = (byVersion[v] ?? 0) + t.count;
  }
  const expectedByVersion: Record<string, number> = {};
  for (const p of predictions) expectedByVersion[p.model_version] = (expectedByVersion[p.model_version] ?? 0) + 1;
  expect(byVersion).toEqual(expectedByVersion);
}, 600_000);
