import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { createHomeApp } from '../../home/server';
import { HomeStore } from '../../home/store';
import { metricsDocument, rejectRecord, uncertainRecord } from '../helpers/home-fixtures';
import { within } from '../helpers/wait';

const TOKEN = 'test-token-0123456789abcdef';

/** A JSON answer, read loosely: the assertions say what each field must be. */
// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field below
type Body = Record<string, any>;

describe('home API', () => {
  let dir: string;
  let web: string;
  let store: HomeStore;
  let app: Hono;
  const json = (body: unknown): RequestInit => ({
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/json' },
  });
  const get = async (path: string, init?: RequestInit) => {
    const response = await app.request(path, init);
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      body: (await response.json()) as Body,
    };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-api-'));
    web = join(dir, 'web');
    mkdirSync(web);
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>home</title>');
    writeFileSync(join(dir, 'secret.txt'), 'not for the web');
    store = new HomeStore(join(dir, 'data'));
    store.addFrames(Array.from({ length: 30 }, (_, i) => uncertainRecord(i)));
    app = createHomeApp(store, { webRoot: web, source: { endpoint: 'http://127.0.0.1:4567', prefix: '' } });
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('GET /api/frames', () => {
    it('lists unlabelled frames newest first with paging that neither repeats nor skips', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await get(`/api/frames?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.status).toBe(200);
        expect(page.body.total).toBe(30);
        seen.push(...page.body.frames.map((f: { frame_id: string }) => f.frame_id));
        cursor = page.body.next;
      } while (cursor);
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => uncertainRecord(29 - i).frame_id));
    });

    it('returns every field of a frame, with image URLs that serve PNGs', async () => {
      const { body } = await get('/api/frames?limit=1&sort=oldest');
      const frame = body.frames[0];
      const record = uncertainRecord(0);
      expect(frame).toMatchObject({
        frame_id: record.frame_id,
        camera: record.camera,
        timestamp: record.timestamp,
        received_at: record.received_at,
        result_class: 0,
        result_probability: record.result_probability,
        probabilities: record.predictions,
        reason: record.reason,
        model_version: record.model_version,
        image_url: `/api/frames/${record.frame_id}/image.png`,
        prepared_url: `/api/frames/${record.frame_id}/prepared.png`,
      });
      expect(frame.margin).toBeCloseTo(record.result_probability - (1 - record.result_probability) / 9, 9);
      expect(frame.entropy).toBeGreaterThan(0);
      const image = await app.request(frame.image_url);
      expect(image.status).toBe(200);
      expect(image.headers.get('content-type')).toBe('image/png');
      expect(Buffer.from(await image.arrayBuffer())).toEqual(Buffer.from(record.image, 'base64'));
      const prepared = await app.request(frame.prepared_url);
      expect(prepared.headers.get('content-type')).toBe('image/png');
      expect(
        Buffer.from(await prepared.arrayBuffer())
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
      expect((await get(`/api/frames/${record.frame_id}`)).body).toEqual(frame);
    });

    it('sorts by confidence, margin and entropy and filters by camera, class, reason, model and label', async () => {
      const byConfidence = (await get('/api/frames?sort=confidence&limit=500')).body.frames.map(
        (f: Body) => f.result_probability,
      );
      expect(byConfidence).toEqual([...byConfidence].sort((a, b) => a - b));
      const byMargin = (await get('/api/frames?sort=margin&limit=500')).body.frames.map((f: Body) => f.margin);
      expect(byMargin).toEqual([...byMargin].sort((a, b) => a - b));
      const byEntropy = (await get('/api/frames?sort=entropy&limit=500')).body.frames.map((f: Body) => f.entropy);
      expect(byEntropy).toEqual([...byEntropy].sort((a, b) => b - a));
      expect((await get('/api/frames?predicted=3')).body.frames.map((f: Body) => f.result_class)).toEqual([3, 3, 3]);
      expect((await get('/api/frames?camera=Nobody')).body.total).toBe(0);
      expect((await get('/api/frames?model_version=digits-2.0.0')).body.total).toBe(10);
      const lowConfidence = (await get('/api/frames?reason=low_confidence&limit=500')).body;
      expect(lowConfidence.frames.every((f: Body) => f.reason === 'low_confidence')).toBe(true);
      store.label([uncertainRecord(3).frame_id], 8);
      expect((await get('/api/frames')).body.total).toBe(29);
      const labelled = (await get('/api/frames?status=labelled&label=8&predicted=3')).body;
      expect(labelled.frames.map((f: Body) => [f.frame_id, f.label])).toEqual([[uncertainRecord(3).frame_id, 8]]);
      expect(labelled.frames[0].labelled_at).toMatch(/^\d{4}-/);
      expect((await get('/api/frames?status=all')).body.total).toBe(30);
      expect((await get('/api/frames?status=all&camera=&predicted=&sort=')).body.total).toBe(30);
    });

    it.each([
      ['status=done', 'status'],
      ['sort=random', 'sort'],
      ['limit=0', 'limit'],
      ['limit=501', 'limit'],
      ['limit=ten', 'limit'],
      ['predicted=12', 'predicted'],
      ['label=maybe', 'label'],
    ])('refuses ?%s with a sentence naming %s', async (query, name) => {
      const { status, body } = await get(`/api/frames?${query}`);
      expect(status).toBe(400);
      expect(body.error).toContain(`query parameter ${name}`);
    });

    it.each(['garbage', Buffer.from('[1,"x"]').toString('base64url'), Buffer.from('{}').toString('base64url'), '%E0%A4%A'])(
      'refuses the cursor %s',
      async (cursor) => {
        const { status, body } = await get(`/api/frames?cursor=${cursor}`);
        expect(status).toBe(400);
        expect(body.error).toMatch(/cursor is not one this server gave out|query parameter/);
      },
    );

    it('answers 404 for an unknown frame and for ids trying to reach outside the store', async () => {
      for (const path of [
        '/api/frames/no-such-frame',
        '/api/frames/no-such-frame/image.png',
        '/api/frames/..%2F..%2Fsecret.txt/image.png',
        '/api/frames/..%2Fdata%2Flabels.jsonl/prepared.png',
        '/api/frames/%2Fetc%2Fpasswd/image.png',
        '/api/frames/images.bin/image.png',
      ]) {
        const response = await app.request(path);
        expect([400, 404]).toContain(response.status);
        expect(response.headers.get('content-type')).toContain('application/json');
        expect(await response.text()).not.toContain('not for the web');
      }
    });

    it('answers 404 for the original of a frame that arrived without one, and serves its prepared image', async () => {
      store.addFrames([uncertainRecord(99, { image: '', image_omitted: true })]);
      const { body } = await get(`/api/frames/${uncertainRecord(99).frame_id}`);
      expect(body).toMatchObject({ image_url: null, image_omitted: true });
      expect((await app.request(`/api/frames/${uncertainRecord(99).frame_id}/image.png`)).status).toBe(404);
      expect((await app.request(body.prepared_url)).status).toBe(200);
    });
  });

  describe('labels', () => {
    it('stores a label and answers 201 with the entry', async () => {
      const { status, body } = await get('/api/labels', json({ frame_id: uncertainRecord(4).frame_id, label: 7 }));
      expect(status).toBe(201);
      expect(body).toMatchObject({
        seq: 0,
        frame_id: uncertainRecord(4).frame_id,
        label: 7,
        previous: null,
        predicted: 4,
        model_version: 'digits-1.0.0',
        camera: 'Test-edge1',
        action: 'label',
      });
      expect(readFileSync(join(store.dir, 'labels.jsonl'), 'utf8')).toContain('"label":7');
      expect(
        (await get('/api/labels', json({ frame_id: uncertainRecord(4).frame_id, label: 'not_a_digit' }))).body,
      ).toMatchObject({ label: 'not_a_digit', previous: 7 });
      expect((await get('/api/labels', json({ frame_id: uncertainRecord(5).frame_id, label: 'accept' }))).body).toMatchObject({
        label: 5,
        action: 'accept',
      });
    });

    it.each([
      [{ frame_id: 'no-such-frame', label: 3 }, 'there is no frame "no-such-frame"'],
      [{ frame_id: 'FRAME', label: 10 }, 'label must be a digit 0-9'],
      [{ frame_id: 'FRAME', label: '3' }, 'label must be a digit 0-9'],
      [{ frame_id: 'FRAME', label: 2.5 }, 'label must be a digit 0-9'],
      [{ frame_id: 'FRAME' }, 'label must be a digit 0-9'],
      [{ label: 3 }, 'frame_id must be'],
      [[1, 2], 'must be a JSON object'],
    ])('refuses %j with 400: %s', async (body, message) => {
      const real = JSON.parse(JSON.stringify(body).replace('FRAME', uncertainRecord(1).frame_id)) as unknown;
      const response = await get('/api/labels', json(real));
      expect(response.status).toBe(400);
      expect(response.body.error).toContain(message);
    });

    it('refuses a malformed JSON body with 400 and writes nothing', async () => {
      const response = await get('/api/labels', {
        method: 'POST',
        body: '{"frame_id": "x", "label": ',
        headers: { 'Content-Type': 'application/json' },
      });
      expect(response.status).toBe(400);
      expect(response.body.error).toContain('not valid JSON');
      expect(store.labels.entries).toHaveLength(0);
    });

    it('labels many frames at once, accepting the model or setting one label, all or nothing', async () => {
      const ids = [1, 2, 3].map((i) => uncertainRecord(i).frame_id);
      const accepted = await get('/api/labels/bulk', json({ frame_ids: ids, label: 'accept' }));
      expect(accepted.status).toBe(201);
      expect(accepted.body.entries.map((e: Body) => e.label)).toEqual([1, 2, 3]);
      const set = await get('/api/labels/bulk', json({ frame_ids: ids, label: 0 }));
      expect(set.body.entries.map((e: Body) => [e.label, e.previous])).toEqual([
        [0, 1],
        [0, 2],
        [0, 3],
      ]);
      const partly = await get('/api/labels/bulk', json({ frame_ids: [...ids, 'missing'], label: 4 }));
      expect(partly.status).toBe(400);
      expect(partly.body.error).toContain('"missing"');
      expect(store.labels.entries).toHaveLength(6);
      for (const bad of [
        { frame_ids: [], label: 1 },
        { frame_ids: 'x', label: 1 },
        { frame_ids: Array(1001).fill(ids[0]), label: 1 },
        { frame_ids: ids, label: 'yes' },
      ]) {
        expect((await get('/api/labels/bulk', json(bad))).status).toBe(400);
      }
    });

    it("undoes the latest label, or a frame's, and answers 409 when there is nothing to undo", async () => {
      expect((await get('/api/labels/undo', json({}))).status).toBe(409);
      await get('/api/labels', json({ frame_id: uncertainRecord(1).frame_id, label: 3 }));
      await get('/api/labels', json({ frame_id: uncertainRecord(2).frame_id, label: 4 }));
      const undone = await get('/api/labels/undo', { method: 'POST' });
      expect(undone.status).toBe(201);
      expect(undone.body).toMatchObject({
        frame_id: uncertainRecord(2).frame_id,
        label: null,
        previous: 4,
        action: 'undo',
        undoes: 1,
      });
      expect((await get('/api/labels/undo', json({ frame_id: uncertainRecord(1).frame_id }))).body).toMatchObject({
        label: null,
        previous: 3,
      });
      expect((await get('/api/labels/undo', json({ frame_id: 'nope' }))).status).toBe(400);
      expect((await get('/api/labels/undo', json({ frame_id: 5 }))).status).toBe(400);
      expect((await get('/api/dataset')).body.labelled).toBe(0);
    });
  });

  it('GET /api/dataset, POST /api/dataset/export and GET /api/confusion follow the labels', async () => {
    await get('/api/labels/bulk', json({ frame_ids: [0, 1, 2, 11].map((i) => uncertainRecord(i).frame_id), label: 'accept' }));
    await get('/api/labels', json({ frame_id: uncertainRecord(3).frame_id, label: 'not_a_digit' }));
    const dataset = (await get('/api/dataset')).body;
    expect(dataset).toMatchObject({ labelled: 5, not_a_digit: 1, unlabelled: 25, frames: 30 });
    expect(dataset.per_class).toEqual({ '0': 1, '1': 2, '2': 1, '3': 0, '4': 0, '5': 0, '6': 0, '7': 0, '8': 0, '9': 0 });
    const exported = await get('/api/dataset/export', json({}));
    expect(exported.status).toBe(201);
    expect(exported.body).toMatchObject({ version: dataset.version, counts: { total: 5, not_a_digit: 1 } });
    expect(exported.body.dir).toBe(join(store.dir, 'exports', dataset.version.replace(':', '-')));
    expect(readFileSync(join(exported.body.dir, 'metadata.jsonl'), 'utf8').trim().split('\n')).toHaveLength(4);
    const named = await get('/api/dataset/export', json({ dir: 'mine' }));
    expect(named.body.dir).toBe(join(store.dir, 'exports', 'mine'));
    for (const dir of ['../../escape', '/tmp/x', '', '.hidden']) {
      expect((await get('/api/dataset/export', json({ dir }))).status).toBe(400);
    }
    const confusion = (await get('/api/confusion')).body;
    expect(confusion.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'not_a_digit']);
    expect(confusion.matrix[1][1]).toBe(2);
    expect(confusion.matrix[10][3]).toBe(1);
  });

  it('GET /api/metrics serves merged windows, by camera and since a time', async () => {
    const start = new Date('2026-12-06T04:00:00.000Z');
    store.addMetrics([
      metricsDocument(start, 'shardId-000000000000', 30),
      metricsDocument(start, 'shardId-000000000001', 20, 'Camera-b'),
    ]);
    store.addMetrics([metricsDocument(new Date(start.getTime() + 10_000), 'shardId-000000000000', 5)]);
    const all = (await get('/api/metrics')).body.windows;
    expect(all.map((w: Body) => w.count)).toEqual([50, 5]);
    expect(all[0]).not.toHaveProperty('histograms');
    const b = (await get('/api/metrics?camera=Camera-b')).body.windows;
    expect(b).toHaveLength(1);
    expect(Object.keys(b[0].camera_metrics)).toEqual(['Camera-b']);
    expect((await get('/api/metrics?since=2026-12-06T04:00:10Z')).body.windows.map((w: Body) => w.count)).toEqual([5]);
    const bad = await get('/api/metrics?since=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain('since must be an ISO-8601 time');
  });

  it('GET /api/rejected and GET /api/status', async () => {
    store.addRejects([rejectRecord(1), rejectRecord(2, { reason: 'not_png', error: 'a JPEG arrived' })]);
    const rejected = (await get('/api/rejected')).body;
    expect(rejected.reasons.map((r: Body) => r.reason).sort()).toEqual(['image_not_base64', 'not_png']);
    expect(rejected.reasons.find((r: Body) => r.reason === 'not_png').hint).toContain('re-encode the frame as PNG');
    expect(rejected.series).toHaveLength(1);
    const status = (await get('/api/status')).body;
    expect(status).toMatchObject({
      source: { endpoint: 'http://127.0.0.1:4567', prefix: '' },
      frames: 30,
      labelled: 0,
      windows: 0,
      rejected: 2,
    });
    expect(status.models.sort()).toEqual(['digits-1.0.0', 'digits-2.0.0']);
  });

  it('GET /api/events streams windows, frames, labels, rejects and dataset changes', async () => {
    const response = await app.request('/api/events');
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const waitFor = async (needle: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!text.includes(needle)) {
        if (Date.now() > deadline) throw new Error(`no "${needle}" in the event stream; got ${text.slice(0, 500)}`);
        const { value, done } = await within(reader.read(), `"${needle}" in the event stream`, deadline - Date.now(), () =>
          text.slice(0, 500),
        );
        if (done) throw new Error(`the event stream ended before "${needle}"`);
        text += decoder.decode(value);
      }
    };
    await waitFor('event: hello');
    store.addFrames([uncertainRecord(50)]);
    await waitFor('event: frames');
    store.label([uncertainRecord(50).frame_id], 2);
    await waitFor('event: label');
    await waitFor('event: dataset');
    store.addRejects([rejectRecord(9)]);
    await waitFor('event: rejected');
    store.addMetrics([metricsDocument(new Date('2026-12-06T04:00:00Z'), 'shardId-000000000000', 3)]);
    await waitFor('event: window');
    expect(text).toContain('data: {"added":1,"total":31}');
    await reader.cancel();
  });

  it('answers unknown routes with 404 JSON', async () => {
    for (const [method, path] of [
      ['GET', '/api/nothing'],
      ['POST', '/api/frames'],
      ['DELETE', '/api/labels'],
      ['GET', '/no-such-page.html'],
    ] as const) {
      const response = await get(path, { method });
      expect(response.status).toBe(404);
      expect(response.body.error).toMatch(/^there is no /);
    }
  });

  it('serves the page and only the dist files of preact, htm and uplot', async () => {
    const page = await app.request('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<title>home</title>');
    for (const path of [
      '/vendor/preact/dist/preact.mjs',
      '/vendor/preact/hooks/dist/hooks.mjs',
      '/vendor/htm/dist/htm.mjs',
      '/vendor/uplot/dist/uPlot.esm.js',
      '/vendor/uplot/dist/uPlot.min.css',
    ]) {
      const response = await app.request(path);
      expect(response.status).toBe(200);
    }
    expect((await app.request('/vendor/uplot/dist/uPlot.min.css')).headers.get('content-type')).toContain('text/css');
    for (const path of [
      '/vendor/preact/package.json',
      '/vendor/preact/src/index.js',
      '/vendor/zod/package.json',
      '/vendor/preact/dist/..%2F..%2Fzod%2Fpackage.json',
      '/vendor/preact/dist/%2E%2E/package.json',
      '/..%2Fsecret.txt',
      '/%2E%2E/secret.txt',
    ]) {
      const response = await app.request(path);
      expect(response.status).toBe(404);
      expect(await response.text()).not.toContain('not for the web');
    }
  });

  it('returns a camera id holding markup as JSON data, never as markup', async () => {
    const markup = '<img src=x onerror=alert(1)>';
    store.addFrames([uncertainRecord(70, { camera: markup })]);
    const response = await app.request(`/api/frames/${uncertainRecord(70).frame_id}`);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(((await response.json()) as { camera: string }).camera).toBe(markup);
  });

  it("refuses requests to a non-loopback host name (DNS rebinding) and changes from another site's page", async () => {
    const rebound = await get('http://evil.example:8080/api/status');
    expect(rebound.status).toBe(403);
    expect(rebound.body.error).toContain('only requests to a loopback address');
    const frame_id = uncertainRecord(1).frame_id;
    const crossSite = await get('/api/labels', {
      method: 'POST',
      body: JSON.stringify({ frame_id, label: 1 }),
      headers: { 'Content-Type': 'text/plain', Origin: 'http://evil.example' },
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.body.error).toContain("another site's page");
    expect(store.labels.entries).toHaveLength(0);
    const sameSite = await get('http://127.0.0.1:8080/api/labels', {
      method: 'POST',
      body: JSON.stringify({ frame_id, label: 1 }),
      headers: { Origin: 'http://127.0.0.1:8080' },
    });
    expect(sameSite.status).toBe(201);
    expect((await get('http://[::1]:8080/api/status')).status).toBe(200);
  });

  describe('with a token', () => {
    beforeEach(() => {
      app = createHomeApp(store, { webRoot: web, token: TOKEN });
    });

    it('answers 401 JSON without it, and with a wrong one', async () => {
      const attempts: Array<RequestInit | undefined> = [
        undefined,
        { headers: { Authorization: 'Bearer wrong' } },
        { headers: { Cookie: 'home_token=wrong' } },
      ];
      for (const init of attempts) {
        const response = await get('/api/status', init);
        expect(response.status).toBe(401);
        expect(response.body.error).toContain('needs its token');
      }
      expect((await app.request('/')).status).toBe(401);
      expect((await app.request('/?token=wrong')).status).toBe(401);
    });

    it('answers on any host name once the token is given', async () => {
      const response = await app.request('http://192.168.1.5:8080/api/status', { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(response.status).toBe(200);
    });

    it('answers with the Bearer header, or with the cookie that ?token= sets once', async () => {
      expect((await app.request('/api/status', { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
      const page = await app.request(`/?token=${TOKEN}`);
      expect(page.status).toBe(200);
      const cookie = page.headers.get('set-cookie') ?? '';
      expect(cookie).toContain(`home_token=${TOKEN}`);
      expect(cookie).toContain('HttpOnly');
      expect(cookie).toContain('SameSite=Strict');
      const withCookie = await app.request('/api/status', { headers: { Cookie: cookie.split(';')[0] as string } });
      expect(withCookie.status).toBe(200);
    });
  });
});
