/**
 * The home's HTTP side: a hono app over a {@link HomeStore}. JSON API under /api (errors are
 * `{ error: "<sentence>" }` with a 4xx status), server-sent events at /api/events, the page
 * from home/web and the few browser libraries it imports from node_modules under /vendor.
 * With a token every request must carry it (Bearer header, or the cookie a `?token=` URL sets).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { getCookie, setCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { digitSchema } from '../functions/lib/contracts';
import { CursorError, frameView, framesQuerySchema, queryFrames } from './frames-query';
import { refuseRequest } from './access';
import { exportDataset, ExportTargetError } from './dataset';
import { ModelControls, type ModelsEvent, registryErrorStatus, retrainBodySchema } from './models';
import { ModelRegistryError } from '../training/model-registry';
import { HomeRequestError, type HomeEvent, type HomeStore, NOT_A_DIGIT } from './store';
import { STORE_KEY_PATTERN } from './store/frames';
import type { UplinkStatus } from '../local/uplink/status';
import { UPLINK_CHECK_MS, type UplinkEventMark, uplinkEventDue } from './uplink-events';

export const TOKEN_COOKIE = 'home_token';
/** Frames one bulk request may label. */
export const MAX_BULK = 1000;
/** Largest request body accepted (a bulk request of 1,000 ids is about 60 kB). */
export const MAX_BODY_BYTES = 256 * 1024;
/** SSE messages allowed to wait for a slow client before its stream is closed. */
const MAX_PENDING_EVENTS = 1000;
/** A comment line this often keeps proxies from closing an idle event stream. */
const KEEP_ALIVE_MS = 15_000;

const REPO_ROOT = resolve(__dirname, '..');
/** The page's own files. */
export const WEB_ROOT = join(__dirname, 'web');
/** The only files of node_modules served: these packages' dist folders, under /vendor/<package>/. */
export const VENDOR_FOLDERS: Readonly<Record<string, readonly string[]>> = {
  preact: ['dist', 'hooks/dist'],
  htm: ['dist'],
  uplot: ['dist'],
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

export interface HomeAppOptions {
  /** Every request must carry this token (required when the server listens beyond loopback). */
  token?: string;
  /** Where the streams come from, for /api/status. */
  source?: { endpoint: string; prefix: string };
  /** The page's folder (default home/web). */
  webRoot?: string;
  /**
   * The model versions, registry actions and retrain job behind /api/models (default: over
   * MODEL_ROOT or the repository's models/). Whoever passes one closes it.
   */
  models?: ModelControls;
  /**
   * The status of the edge's uplink to the home endpoint, when this process runs one (for
   * GET /api/uplink and the `uplink` event); without it the home says it has no uplink.
   */
  uplinkStatus?: () => UplinkStatus;
}

const labelValue = z.union([digitSchema, z.literal(NOT_A_DIGIT)]);
const labelBodySchema = z.object({ frame_id: z.string(), label: z.union([labelValue, z.literal('accept')]) });
const bulkBodySchema = z.object({
  frame_ids: z.array(z.string()).min(1).max(MAX_BULK),
  label: z.union([labelValue, z.literal('accept')]),
});
const undoBodySchema = z.object({ frame_id: z.string().optional() });
const exportBodySchema = z.object({ dir: z.string().optional() });

class BadRequest extends Error {}

const LABEL_RULE = 'label must be a digit 0-9 (a number), "not_a_digit" or "accept"';

function fail(c: Context, status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 500, error: string): Response {
  return c.json({ error }, status);
}

/** Reads a JSON body; a malformed or missing one is a {@link BadRequest} with a sentence. */
async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BadRequest('the request body is not valid JSON: send a JSON object, e.g. {"frame_id":"...","label":3}');
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseLabelBody(body: unknown): z.infer<typeof labelBodySchema> {
  if (!isObject(body)) throw new BadRequest('the request body must be a JSON object {"frame_id":"...","label":3}');
  if (typeof body.frame_id !== 'string' || body.frame_id === '')
    throw new BadRequest('frame_id must be the frame_id string of a frame from GET /api/frames');
  const parsed = labelBodySchema.safeParse(body);
  if (!parsed.success) throw new BadRequest(`${LABEL_RULE}; got ${JSON.stringify(body.label ?? null)}`);
  return parsed.data;
}

function parseBulkBody(body: unknown): z.infer<typeof bulkBodySchema> {
  if (!isObject(body)) throw new BadRequest('the request body must be a JSON object {"frame_ids":["..."],"label":"accept"}');
  const ids = body.frame_ids;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_BULK || !ids.every((id) => typeof id === 'string')) {
    throw new BadRequest(`frame_ids must be an array of 1 to ${MAX_BULK} frame_id strings`);
  }
  const parsed = bulkBodySchema.safeParse(body);
  if (!parsed.success) throw new BadRequest(`${LABEL_RULE}; got ${JSON.stringify(body.label ?? null)}`);
  return parsed.data;
}

function sameSecret(given: string, token: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/**
 * Serves `rel` from under `base` when it is a regular file inside it (after resolving
 * links); undefined otherwise. `..`, absolute paths and NUL never get this far.
 */
function fileUnder(base: string, rel: string): { body: Buffer; type: string } | undefined {
  if (rel.includes('\0') || rel.split('/').some((part) => part === '..' || part === '.')) return undefined;
  try {
    const root = realpathSync(base);
    const full = realpathSync(resolve(root, rel));
    if (!full.startsWith(root + sep) || !statSync(full).isFile()) return undefined;
    return { body: readFileSync(full), type: CONTENT_TYPES[extname(full)] ?? 'application/octet-stream' };
  } catch {
    return undefined;
  }
}

function decodePath(path: string): string | undefined {
  try {
    return decodeURIComponent(path);
  } catch {
    return undefined;
  }
}

/**
 * Checks the uplink's status every {@link UPLINK_CHECK_MS} and sends it as an `uplink` event
 * when {@link uplinkEventDue} says so; returns the function that stops the checks.
 */
function watchUplink(
  uplinkStatus: (() => UplinkStatus) | undefined,
  send: (event: { type: 'uplink'; data: unknown }) => void,
): () => void {
  if (!uplinkStatus) return () => undefined;
  let mark: UplinkEventMark | undefined;
  const timer = setInterval(() => {
    let status: UplinkStatus;
    try {
      status = uplinkStatus();
    } catch (error: unknown) {
      // A status that cannot be read now is read again at the next check; the stream goes on.
      console.error(`home: the uplink status could not be read: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    const now = Date.now();
    const due = uplinkEventDue(mark, status, now);
    if (!due) return;
    mark = { link: status.link, records: status.backlog.records, at: now };
    send({ type: 'uplink', data: { configured: true, ...status } });
  }, UPLINK_CHECK_MS);
  return () => clearInterval(timer);
}

/** The hono app of the home. */
export function createHomeApp(store: HomeStore, options: HomeAppOptions = {}): Hono {
  const app = new Hono();
  const webRoot = options.webRoot ?? WEB_ROOT;
  // Without a watch timer: nobody would stop it (serve.ts passes one it closes).
  const models = options.models ?? new ModelControls(store, { watchMs: 0 });

  app.onError((error, c) => {
    if (error instanceof BadRequest || error instanceof CursorError || error instanceof ExportTargetError)
      return fail(c, 400, error.message);
    if (error instanceof HomeRequestError) return fail(c, error.status, error.message);
    if (error instanceof ModelRegistryError) return fail(c, registryErrorStatus(error), error.message);
    console.error(
      `home: ${c.req.method} ${c.req.path}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    return fail(c, 500, 'the home could not answer this request; its log says why');
  });
  app.notFound((c) => fail(c, 404, `there is no ${c.req.method} ${c.req.path}: see the Home API in the README`));

  app.use('*', async (c, next) => {
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    const refused = refuseRequest(
      { url: c.req.url, method: c.req.method, origin: c.req.header('origin') },
      options.token !== undefined,
    );
    if (refused) return fail(c, 403, refused);
    if (options.token === undefined) return next();
    const token = options.token;
    const header = c.req.header('authorization');
    const bearer = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const query = c.req.query('token');
    if (query !== undefined && sameSecret(query, token)) {
      // Once from the page URL; the cookie carries it from then on (also for EventSource).
      setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
      return next();
    }
    const cookie = getCookie(c, TOKEN_COOKIE);
    if ((bearer !== undefined && sameSecret(bearer, token)) || (cookie !== undefined && sameSecret(cookie, token))) return next();
    return fail(
      c,
      401,
      'this home needs its token: send "Authorization: Bearer <token>", or open the page once with ?token=<token>',
    );
  });
  app.use(
    '/api/*',
    bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => fail(c, 413, `the request body is over ${MAX_BODY_BYTES} bytes`) }),
  );

  app.get('/api/frames', (c) => {
    // An empty parameter (camera=) means "any", as a form would send it.
    const given = Object.fromEntries(Object.entries(c.req.query()).filter(([, value]) => value !== ''));
    const parsed = framesQuerySchema.safeParse(given);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new BadRequest(`query parameter ${String(issue?.path[0] ?? '?')}: ${issue?.message ?? 'not understood'}`);
    }
    return c.json(queryFrames(store, parsed.data));
  });

  const frameParam = (c: Context) => {
    const key = c.req.param('id') ?? '';
    const frame = STORE_KEY_PATTERN.test(key) ? store.frames.get(key) : undefined;
    if (frame) return frame;
    const prunedAt = STORE_KEY_PATTERN.test(key) ? store.frames.prunedWhen(key) : undefined;
    if (prunedAt) {
      throw new HomeRequestError(
        410,
        `frame ${JSON.stringify(key)} was pruned at ${prunedAt}: nobody had labelled it, and the data folder keeps unlabelled frames only within its bound (GET /api/retention)`,
      );
    }
    throw new HomeRequestError(404, `there is no frame ${JSON.stringify(key.slice(0, 200))}`);
  };
  const png = (c: Context, body: Buffer) =>
    c.body(new Uint8Array(body), 200, { 'Content-Type': 'image/png', 'Cache-Control': 'private, max-age=86400, immutable' });

  app.get('/api/frames/:id', (c) => {
    const frame = frameParam(c);
    return c.json(frameView(frame, store.labels.current(frame.key)));
  });
  app.get('/api/frames/:id/image.png', (c) => {
    const frame = frameParam(c);
    const original = store.frames.original(frame);
    if (!original)
      throw new HomeRequestError(404, `frame ${frame.key} arrived without its original image (image_omitted): use prepared_url`);
    return png(c, original);
  });
  app.get('/api/frames/:id/prepared.png', (c) => png(c, store.frames.prepared(frameParam(c))));

  app.post('/api/labels', async (c) => {
    const { frame_id, label } = parseLabelBody(await jsonBody(c));
    const [entry] = store.label([frame_id], label);
    return c.json(entry, 201);
  });
  app.post('/api/labels/bulk', async (c) => {
    const { frame_ids, label } = parseBulkBody(await jsonBody(c));
    return c.json({ entries: store.label(frame_ids, label) }, 201);
  });
  app.post('/api/labels/undo', async (c) => {
    const parsed = undoBodySchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new BadRequest('the body must be {} or {"frame_id":"..."}');
    return c.json(store.undo(parsed.data.frame_id), 201);
  });

  app.get('/api/dataset', (c) => c.json(store.dataset()));
  app.post('/api/dataset/export', async (c) => {
    const parsed = exportBodySchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new BadRequest('the body must be {} or {"dir":"<name>"}');
    const { dir } = parsed.data;
    // A request may only name a folder under <data>/exports: it never picks a path on the machine.
    if (dir !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(dir)) {
      throw new BadRequest(
        'dir must be a folder name of letters, digits, ".", "_" and "-" (it is created under the data folder\'s exports/)',
      );
    }
    const name = dir ?? store.dataset().version.replace(':', '-');
    const result = exportDataset(store, join(store.dir, 'exports', name));
    return c.json(result, 201);
  });

  app.get('/api/metrics', (c) => {
    const camera = c.req.query('camera');
    const sinceText = c.req.query('since');
    const since = sinceText === undefined ? undefined : Date.parse(sinceText);
    if (since !== undefined && !Number.isFinite(since)) {
      throw new BadRequest(`since must be an ISO-8601 time such as 2026-12-06T04:00:00Z; got ${JSON.stringify(sinceText)}`);
    }
    return c.json({
      windows: store.metrics.list({
        ...(camera !== undefined && camera !== '' ? { camera } : {}),
        ...(since !== undefined ? { since } : {}),
      }),
    });
  });
  app.get('/api/retention', (c) => c.json(store.retentionView()));
  app.get('/api/confusion', (c) => c.json(store.confusion()));
  app.get('/api/rejected', (c) => c.json(store.rejects.view()));
  app.get('/api/status', (c) =>
    c.json({
      source: options.source ?? null,
      frames: store.frames.size,
      labelled: store.dataset().labelled,
      windows: store.metrics.size,
      rejected: store.rejects.total,
      models: [...store.frames.models],
      unreadable: store.unreadable,
      duplicates: store.duplicates,
      started_at: store.startedAt,
    }),
  );

  app.get('/api/uplink', (c) => {
    const status = options.uplinkStatus?.();
    return c.json(status === undefined ? { configured: false } : { configured: true, ...status });
  });

  app.get('/api/models', (c) => c.json(models.overview()));
  app.get('/api/models/shadow', (c) => c.json({ comparisons: models.shadowComparisons() }));
  app.get('/api/models/retrain', (c) => c.json({ job: models.retrainStatus() }));
  app.post('/api/models/retrain', async (c) => {
    const parsed = retrainBodySchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new BadRequest('the body must be {} or {"epochs": 1..20}');
    return c.json({ job: models.startRetrain(parsed.data) }, 202);
  });
  app.post('/api/models/rollback', async (c) => c.json(await models.rollback()));
  app.delete('/api/models/shadow', async (c) => c.json(await models.unshadow()));
  app.post('/api/models/:version/promote', async (c) => c.json(await models.promote(c.req.param('version'))));
  app.post('/api/models/:version/shadow', async (c) => c.json(await models.shadow(c.req.param('version'))));

  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      let pending = 0;
      let chain = Promise.resolve();
      let closed = false;
      let unsubscribe: () => void = () => undefined;
      const done = new Promise<void>((resolveDone) => {
        const close = (): void => {
          if (closed) return;
          closed = true;
          unsubscribe();
          resolveDone();
        };
        stream.onAbort(close);
        const send = (event: HomeEvent | ModelsEvent | { type: 'uplink'; data: unknown }) => {
          if (closed) return;
          if (pending >= MAX_PENDING_EVENTS) {
            // A client this far behind reconnects and reloads; it must not hold memory.
            close();
            return;
          }
          pending += 1;
          chain = chain
            .then(() => stream.writeSSE({ event: event.type, data: JSON.stringify(event.data) }))
            .catch(() => close())
            .finally(() => {
              pending -= 1;
            });
        };
        const fromStore = store.subscribe(send);
        const fromModels = models.subscribe(send);
        const fromUplink = watchUplink(options.uplinkStatus, send);
        unsubscribe = () => {
          fromStore();
          fromModels();
          fromUplink();
        };
      });
      const keepAlive = setInterval(() => {
        chain = chain
          .then(() => stream.write(': keep-alive\n\n'))
          .then(
            () => undefined,
            () => stream.abort(),
          );
      }, KEEP_ALIVE_MS);
      void done.then(() => clearInterval(keepAlive));
      await stream.writeSSE({ event: 'hello', data: JSON.stringify({ frames: store.frames.size, windows: store.metrics.size }) });
      await done;
    }),
  );

  // The page and its libraries.
  app.get('/vendor/:pkg/*', (c) => {
    const pkg = c.req.param('pkg');
    const folders = VENDOR_FOLDERS[pkg];
    const rel = decodePath(c.req.path.slice(`/vendor/${pkg}/`.length));
    const folder = folders && rel !== undefined ? folders.find((f) => rel.startsWith(`${f}/`)) : undefined;
    const file =
      folder && rel ? fileUnder(join(REPO_ROOT, 'node_modules', pkg, folder), rel.slice(folder.length + 1)) : undefined;
    if (!file)
      return fail(c, 404, `there is no ${c.req.path}: /vendor serves only ${Object.keys(VENDOR_FOLDERS).join(', ')} dist files`);
    return c.body(new Uint8Array(file.body), 200, { 'Content-Type': file.type, 'Cache-Control': 'public, max-age=3600' });
  });
  app.get('*', (c) => {
    const rel = decodePath(c.req.path === '/' ? 'index.html' : c.req.path.slice(1));
    const file = rel === undefined || rel.startsWith('api/') ? undefined : fileUnder(webRoot, rel);
    if (!file) return fail(c, 404, `there is no ${c.req.path}`);
    return c.body(new Uint8Array(file.body), 200, { 'Content-Type': file.type, 'Cache-Control': 'no-cache' });
  });
  return app;
}
