/**
 * The home's model API in process, against a temporary models folder: the versions with their
 * states and gate figures, promote / shadow / rollback and each refusal with the registry's
 * sentence, and the shadow comparison built from the metrics windows the home holds.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { buildMetricsDocument } from '../../functions/lib/metrics/document';
import { WindowAccumulator } from '../../functions/lib/metrics/reducer';
import { ModelControls } from '../../home/models';
import { createHomeApp } from '../../home/server';
import { HomeStore } from '../../home/store';
import { uncertainRecord } from '../helpers/home-fixtures';
import { makePrediction, TEST_CONFIG } from '../helpers/metrics-fixtures';
import { promote } from '../../training/model-registry';
import { addCandidate, corrupt, modelsRoot } from '../helpers/model-registry-fixtures';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field below
type Body = Record<string, any>;

describe('home model API', () => {
  let root: string;
  let dir: string;
  let store: HomeStore;
  let models: ModelControls;
  let app: Hono;

  const call = async (method: string, path: string, body?: unknown) => {
    const response = await app.request(path, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
    });
    return { status: response.status, body: (await response.json()) as Body };
  };
  const registry = () => JSON.parse(readFileSync(join(root, 'registry.json'), 'utf8')) as Body;
  const states = async () =>
    Object.fromEntries(((await call('GET', '/api/models')).body.models as Body[]).map((m) => [m.version, m.state]));

  beforeAll(() => {
    root = modelsRoot('1.0.0');
    // A retrain writing its candidate: not a version until it is renamed into place.
    mkdirSync(join(root, 'candidates', '.1.4.0.partial-123'), { recursive: true });
    addCandidate(root, '1.1.0', { bias: { 3: 4 } });
    addCandidate(root, '1.2.0', { passed: false });
    addCandidate(root, '1.3.0');
    corrupt(join(root, 'candidates', '1.3.0'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeEach(() => {
    rmSync(join(root, 'registry.json'), { force: true });
    dir = mkdtempSync(join(tmpdir(), 'home-models-'));
    store = new HomeStore(join(dir, 'data'));
    models = new ModelControls(store, { root, watchMs: 0 });
    app = createHomeApp(store, { models });
  });
  afterEach(async () => {
    await models.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the versions newest first with their state, card figures and gate checks', async () => {
    const { status, body } = await call('GET', '/api/models');
    expect(status).toBe(200);
    expect(body).toMatchObject({ root, current: '1.0.0', shadow: null, rollback_to: null, history: [], retrain: null });
    expect(body.models.map((m: Body) => [m.version, m.state])).toEqual([
      ['1.3.0', 'candidate'],
      ['1.2.0', 'candidate'],
      ['1.1.0', 'candidate'],
      ['1.0.0', 'current'],
    ]);
    const failed = body.models.find((m: Body) => m.version === '1.2.0');
    expect(failed).toMatchObject({
      parent: { version: '1.0.0' },
      dir: join(root, 'candidates', '1.2.0'),
      problem: null,
      promoted_at: null,
      gates: {
        passed: false,
        checks: [
          { name: 'mnist_accuracy', passed: true, value: 0.81, limit: 0.8, detail: 'test model' },
          { name: 'held_out_better', passed: false, value: 0.7, limit: 0.8, detail: '0.700 <= parent 0.800' },
        ],
      },
    });
    expect(failed.bytes).toBeGreaterThan(0);
    expect(failed.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(body.models.find((m: Body) => m.version === '1.0.0').gates).toBeNull();
  });

  it('promotes a candidate that passed its gates and rolls back to the parent', async () => {
    const promoted = await call('POST', '/api/models/1.1.0/promote');
    expect(promoted.status).toBe(200);
    expect(promoted.body).toMatchObject({ action: 'promote', version: '1.1.0', from: '1.0.0', registry: { current: '1.1.0' } });
    // The running edge reads this file per batch: the change is the file.
    expect(registry()).toMatchObject({ current: '1.1.0', shadow: null });
    const listed = (await call('GET', '/api/models')).body;
    expect(listed).toMatchObject({ current: '1.1.0', rollback_to: '1.0.0', history: [{ action: 'promote', version: '1.1.0' }] });
    expect(listed.models.find((m: Body) => m.version === '1.1.0').promoted_at).toBe(listed.history[0].at);
    expect(await states()).toMatchObject({ '1.1.0': 'current', '1.0.0': 'previous' });

    const back = await call('POST', '/api/models/rollback');
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ action: 'rollback', version: '1.0.0', from: '1.1.0' });
    expect(registry().current).toBe('1.0.0');
    expect((await call('GET', '/api/models')).body.rollback_to).toBeNull();
  });

  it('refuses with the registry sentence: unknown version 404, failed gates, corrupt files, already current, nothing to roll back 409', async () => {
    const unknown = await call('POST', '/api/models/9.9.9/promote');
    expect(unknown).toEqual({
      status: 404,
      body: { error: `no model version "9.9.9" in ${root} (known: 1.0.0, 1.1.0, 1.2.0, 1.3.0)` },
    });
    expect((await call('POST', '/api/models/9.9.9/shadow')).status).toBe(404);

    const gates = await call('POST', '/api/models/1.2.0/promote');
    expect(gates).toEqual({
      status: 409,
      body: { error: 'model 1.2.0 refused: gates not passed: held_out_better (0.700 <= parent 0.800)' },
    });
    const damaged = await call('POST', '/api/models/1.3.0/promote');
    expect(damaged.status).toBe(409);
    expect(damaged.body.error).toMatch(/^model 1\.3\.0 refused: .*sha256/);
    expect(await call('POST', '/api/models/1.0.0/promote')).toEqual({
      status: 409,
      body: { error: 'model 1.0.0 is already current: nothing to promote' },
    });
    expect(await call('POST', '/api/models/rollback')).toEqual({
      status: 409,
      body: { error: 'nothing to roll back to: 1.0.0 is the first version that served' },
    });
    const badName = await call('POST', '/api/models/..%2F..%2Fetc/promote');
    expect(badName.status).toBe(400);
    expect(badName.body.error).toMatch(/is not a model version/);
    // Nothing above changed the registry.
    expect(existsSync(join(root, 'registry.json'))).toBe(false);
  });

  it('puts a candidate in shadow and stops it; a second stop is refused', async () => {
    const started = await call('POST', '/api/models/1.1.0/shadow');
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ action: 'shadow', version: '1.1.0', registry: { current: '1.0.0', shadow: '1.1.0' } });
    expect(await states()).toMatchObject({ '1.1.0': 'shadow', '1.0.0': 'current' });
    expect((await call('GET', '/api/models')).body.models.find((m: Body) => m.version === '1.1.0').shadowed_at).toEqual(
      expect.any(String),
    );
    // Shadow needs no gates (it is how a candidate is judged) but its files must load.
    expect((await call('POST', '/api/models/1.2.0/shadow')).status).toBe(200);
    expect((await call('POST', '/api/models/1.3.0/shadow')).status).toBe(409);
    expect(await call('POST', '/api/models/1.0.0/shadow')).toEqual({
      status: 409,
      body: { error: 'model 1.0.0 is current: shadow a candidate against it instead' },
    });
    const stopped = await call('DELETE', '/api/models/shadow');
    expect(stopped.status).toBe(200);
    expect(stopped.body).toMatchObject({ action: 'unshadow', version: '1.2.0', registry: { shadow: null } });
    expect(await call('DELETE', '/api/models/shadow')).toEqual({
      status: 409,
      body: { error: 'no model runs in shadow: nothing to stop' },
    });
  });

  it('tells event stream listeners when the registry changes', async () => {
    const heard: string[] = [];
    const stop = models.subscribe((event) => {
      if (event.type === 'models') heard.push(event.data.reason);
    });
    await call('POST', '/api/models/1.1.0/shadow');
    await call('POST', '/api/models/1.1.0/promote');
    await call('POST', '/api/models/1.2.0/promote'); // refused: no event
    await call('POST', '/api/models/rollback');
    stop();
    expect(heard).toEqual(['shadow 1.1.0', 'promote 1.1.0', 'rollback 1.0.0']);
  });

  it('tells listeners of a change made outside the home (npm run promote), within its watch period', async () => {
    const watching = new ModelControls(store, { root, watchMs: 50 });
    try {
      const heard = new Promise<string>((resolveHeard, reject) => {
        const timer = setTimeout(() => reject(new Error('no models event within 10 s of a promote made outside')), 10_000);
        watching.subscribe((event) => {
          if (event.type !== 'models') return;
          clearTimeout(timer);
          resolveHeard(event.data.reason);
        });
      });
      await promote('1.1.0', root);
      expect(await heard).toBe('changed on disk');
    } finally {
      await watching.close();
    }
  });

  it('adds up the shadow blocks of the metrics windows, with the disagreeing frames the home holds', async () => {
    // Frames 0-9 came home; the candidate says 3 where the current model said otherwise on every 4th frame.
    const frames = Array.from({ length: 10 }, (_, i) => uncertainRecord(i));
    store.addFrames(frames);
    store.label([frames[0]!.frame_id], 0);
    const windowDoc = (startMs: number, from: number, shard: string) => {
      const acc = new WindowAccumulator(TEST_CONFIG.confidence);
      acc.noteSequence('1');
      for (let i = from; i < from + 10; i++) {
        const frameId = frames[i - from]?.frame_id ?? `elsewhere-${i}`;
        const result = i % 10;
        const candidate = i % 4 === 0 ? 3 : result;
        acc.add(
          makePrediction({
            frame_id: frameId,
            result_class: result,
            model_version: '1.0.0',
            timestamp: new Date(startMs + i).toISOString(),
          }),
        );
        acc.addShadow({
          frame_id: frameId,
          camera: 'Test-edge1',
          scored_at: new Date(startMs + i).toISOString(),
          model_version: '1.0.0',
          result_class: result as 0,
          result_probability: 0.9,
          shadow_version: '1.1.0',
          shadow_class: candidate as 0,
          shadow_probability: 0.8,
          ...(i < 4 ? { label: result as 0 } : {}),
        });
      }
      return buildMetricsDocument(acc, {
        window: { start: new Date(startMs).toISOString(), end: new Date(startMs + 10_000).toISOString() },
        shard,
        terminatedEarly: false,
        config: TEST_CONFIG,
        timestamp: new Date(startMs + 10_500).toISOString(),
      });
    };
    const t0 = Date.UTC(2026, 11, 6, 4, 0, 0);
    store.addMetrics([windowDoc(t0, 0, 'shardId-000000000000'), windowDoc(t0 + 10_000, 10, 'shardId-000000000000')]);
    await call('POST', '/api/models/1.1.0/shadow');

    const { status, body } = await call('GET', '/api/models/shadow');
    expect(status).toBe(200);
    expect(body.comparisons).toHaveLength(1);
    const pair = body.comparisons[0];
    // i % 4 === 0 and i % 10 !== 3: frames 0, 4, 8 of the first window, 12, 16 of the second disagree.
    expect(pair).toMatchObject({ current: '1.0.0', candidate: '1.1.0', windows: 2, count: 20, agree: 15, agreement: 0.75 });
    expect(pair.labelled).toBe(4);
    expect(pair.current_correct).toBe(4);
    expect(pair.candidate_correct).toBe(3);
    expect(pair.confusion[0][3]).toBe(1);
    expect(pair.confusion[4][3]).toBe(1);
    expect(pair.confusion[2][2]).toBe(1);
    expect(pair.confusion[2][3]).toBe(1);
    expect(pair.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(20);
    expect(pair.series).toEqual([
      { start: new Date(t0).toISOString(), count: 10, agree: 7 },
      { start: new Date(t0 + 10_000).toISOString(), count: 10, agree: 8 },
    ]);
    // Newest window first; frames of the second window (i - 10) are the same stored frames 2 and 6.
    expect(pair.disagreements.map((d: Body) => [d.frame_id, d.current_class, d.candidate_class])).toEqual([
      [frames[6]!.frame_id, 6, 3],
      [frames[2]!.frame_id, 2, 3],
      [frames[8]!.frame_id, 8, 3],
      [frames[4]!.frame_id, 4, 3],
      [frames[0]!.frame_id, 0, 3],
    ]);
    const first = pair.disagreements.find((d: Body) => d.frame_id === frames[0]!.frame_id);
    expect(first.frame).toMatchObject({
      frame_id: frames[0]!.frame_id,
      label: 0,
      prepared_url: expect.stringContaining('/prepared.png'),
    });
  });
});
