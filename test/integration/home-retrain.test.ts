/**
 * The home's retrain button end to end on small data: POST /api/models/retrain exports the
 * home's labelled frames and fine-tunes a copy of the shipped model in a child process (one
 * short epoch, a slice of MNIST: the smallest settings retrain takes), progress arrives as
 * `retrain` server-sent events, and the candidate appears in GET /api/models with its gates.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { DEFAULT_MODELS_ROOT } from '../../training/model-registry';
import { ModelControls } from '../../home/models';
import { createHomeApp } from '../../home/server';
import { HomeStore } from '../../home/store';
import { uncertainRecord } from '../helpers/home-fixtures';

// Bounds, not timings: a tiny fine-tune takes ~10-20 s of CPU, longer on a loaded machine.
jest.setTimeout(240_000);

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field below
type Body = Record<string, any>;

const SMALL = { epochs: 1, replay: 256, labelledRepeat: 1, mnistTestLimit: 600, blankFrames: 4 };

/** Reads server-sent events from `response` until `until` accepts one; bounded by `timeoutMs`. */
async function readEvents(
  response: Response,
  until: (name: string, data: Body) => boolean,
  timeoutMs: number,
): Promise<Array<{ name: string; data: Body }>> {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: Array<{ name: string; data: Body }> = [];
  let buffer = '';
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `no closing event within ${timeoutMs / 1000} s; heard: ${events.map((e) => `${e.name} ${e.data.phase ?? ''}`).join(', ')}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    for (;;) {
      const { value, done } = await Promise.race([reader.read(), late]);
      if (done) throw new Error('the event stream ended');
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data) {
          const event = { name, data: JSON.parse(data) as Body };
          events.push(event);
          if (until(event.name, event.data)) return events;
        }
        end = buffer.indexOf('\n\n');
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
}

describe('home retrain job', () => {
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

  beforeEach(() => {
    // A copy of the shipped model: retrain fine-tunes the current version and writes candidates beside it.
    root = mkdtempSync(join(tmpdir(), 'home-retrain-models-'));
    for (const file of ['digits.onnx', 'model-card.json']) copyFileSync(join(DEFAULT_MODELS_ROOT, file), join(root, file));
    dir = mkdtempSync(join(tmpdir(), 'home-retrain-'));
    store = new HomeStore(join(dir, 'data'));
    // MNIST digits as the frames a camera sent home, with their labels known.
    const mnist = loadMnist('train');
    store.addFrames(
      Array.from({ length: 60 }, (_, i) =>
        uncertainRecord(i, { image: renderOriginalFrameSync(mnistImage(mnist, i)).toString('base64') }),
      ),
    );
    models = new ModelControls(store, { root, watchMs: 0, retrain: SMALL });
    app = createHomeApp(store, { models });
  });
  afterEach(async () => {
    await models?.close();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  });

  const labelAll = (count: number) => {
    const mnist = loadMnist('train');
    const frames = store.labelledFrames().length === 0 ? [...Array(count).keys()] : [];
    for (const i of frames) store.label([uncertainRecord(i).frame_id], mnist.labels[i] as 0);
  };

  it('refuses to start without digit labels', async () => {
    expect(await call('POST', '/api/models/retrain', {})).toEqual({
      status: 409,
      body: { error: 'no frame has a digit label yet: label frames in the review queue, then retrain' },
    });
    expect((await call('POST', '/api/models/retrain', { epochs: 0 })).status).toBe(400);
    expect((await call('GET', '/api/models/retrain')).body).toEqual({ job: null });
  });

  it('runs one job at a time, reports its progress as events and lists the candidate it wrote', async () => {
    labelAll(60);
    const events = await app.request('/api/events');
    const started = await call('POST', '/api/models/retrain', {});
    expect(started.status).toBe(202);
    expect(started.body.job).toMatchObject({ id: 1, state: 'running', parent: '1.0.0', epochs: 1, dataset: { labelled: 60 } });
    expect(existsSync(join(started.body.job.dataset.dir, 'metadata.jsonl'))).toBe(true);

    const again = await call('POST', '/api/models/retrain', {});
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/^a retrain is already running \(job 1, started .*\): wait for it to finish$/);

    // A finished job sends its last `retrain` event, then `models` (the list changed).
    const heard = await readEvents(
      events,
      (name, data) => (name === 'retrain' && data.state === 'failed') || (name === 'models' && /^retrained/.test(data.reason)),
      200_000,
    );
    const retrain = heard.filter((e) => e.name === 'retrain').map((e) => e.data);
    const train = retrain.filter((d) => d.phase === 'train');
    expect(train.length).toBeGreaterThan(0);
    expect(train.at(-1)).toMatchObject({ epoch: 1, epochs: 1, loss: expect.any(Number), held_out_accuracy: expect.any(Number) });
    expect(train.at(-1)!.step).toBe(train.at(-1)!.steps);
    const last = retrain.at(-1)!;
    expect(last).toMatchObject({ state: 'succeeded', phase: 'done', error: null, result: { version: '1.1.0' } });
    expect(heard.at(-1)).toEqual({ name: 'models', data: { reason: 'retrained 1.1.0' } });

    const listed = (await call('GET', '/api/models')).body;
    const candidate = listed.models.find((m: Body) => m.version === '1.1.0');
    expect(candidate).toMatchObject({
      state: 'candidate',
      parent: { version: '1.0.0' },
      dataset: { labelled: 60, version: started.body.job.dataset.version },
      training: { epochs: 1 },
    });
    expect(candidate.gates.checks.map((c: Body) => c.name)).toEqual([
      'mnist_accuracy',
      'mnist_not_worse',
      'held_out_better',
      'calibration',
      'blank_never_certain',
      'size',
      'signature',
    ]);
    expect(candidate.gates.checks.every((c: Body) => typeof c.passed === 'boolean' && c.limit !== null)).toBe(true);
    expect(last.result.gates_passed).toBe(candidate.gates.passed);
    expect(candidate.evaluation.mnist_accuracy).toEqual(expect.any(Number));
    expect((await call('GET', '/api/models/retrain')).body.job).toMatchObject({
      id: 1,
      state: 'succeeded',
      result: { version: '1.1.0' },
    });
  });

  it('reports a retrain that fails in its process with the reason, and can start again', async () => {
    // One labelled frame: whichever split it falls in, the other is empty.
    store.label([uncertainRecord(0).frame_id], 7);
    mkdirSync(join(root, 'candidates'), { recursive: true });
    const started = await call('POST', '/api/models/retrain', {});
    expect(started.status).toBe(202);
    await models.whenRetrainDone();
    const { job } = (await call('GET', '/api/models/retrain')).body;
    expect(job).toMatchObject({ state: 'failed', phase: 'failed', result: null });
    expect(job.error).toMatch(/^RetrainError: .*label more frames/);
    expect((await call('POST', '/api/models/retrain', {})).status).toBe(202);
    await models.whenRetrainDone();
    expect((await call('GET', '/api/models/retrain')).body.job).toMatchObject({ id: 2, state: 'failed' });
  });
});
