/**
 * Every sample event in events/ through `npm run invoke -- <function> <event>`, i.e. the real
 * `sls invoke local` on the serverless-esbuild bundle with the environment serverless.yml
 * declares (local stage). Outputs go to a real emulator (kinesalite on a free loopback port)
 * and are read back; one run prints them instead. The wrapper's own choices are checked too.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import {
  STREAMS,
  cameraFrameSchema,
  predictionSchema,
  rejectedImageSchema,
  uncertainImageSchema,
} from '../../functions/lib/contracts';
import { chooseEndpoint, InvokeUsageError, kinesisAnswers, parseInvokeArgs } from '../../scripts/invoke';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const FUNCTION_KEYS = ['classify', 'aggregate-metrics', 'camera-source'] as const;

let kinesis: TestKinesis;

interface Invocation {
  response: unknown;
  stdout: string;
  stderr: string;
}

/**
 * `sls invoke local` prints the handler's response last, pretty-printed from a line holding
 * only `{` (logs and printed records are one line each).
 */
function responseOf(stdout: string): unknown {
  const lines = stdout.split('\n');
  const start = lines.map((line) => line.trimEnd()).lastIndexOf('{');
  if (start < 0) throw new Error(`no response in the output:\n${stdout}`);
  return JSON.parse(lines.slice(start).join('\n'));
}

/** Runs `npm run invoke -- <args>` with no AWS credentials, so nothing can reach AWS. */
async function invoke(args: string[], env: NodeJS.ProcessEnv): Promise<Invocation> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AWS_') && name !== 'KINESIS_ENDPOINT' && name !== 'KINESIS_PORT') clean[name] = value;
  }
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'invoke', '--', ...args], {
      cwd: ROOT,
      env: { ...clean, AWS_EC2_METADATA_DISABLED: 'true', ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { response: responseOf(stdout), stdout, stderr };
  } catch (error: unknown) {
    const output = error instanceof Error && 'stdout' in error ? String(error.stdout).slice(-4000) : '';
    throw new Error(`npm run invoke -- ${args.join(' ')} failed: ${String(error)}\n${output}`);
  }
}

/** Runs `act` and returns what it added to each stream, parsed as JSON. */
async function added<T>(act: () => Promise<T>): Promise<{ result: T; records: Record<string, unknown[]> }> {
  const before: Record<string, number> = {};
  for (const stream of Object.values(STREAMS)) before[stream] = (await kinesis.readAll(stream)).length;
  const result = await act();
  const records: Record<string, unknown[]> = {};
  for (const stream of Object.values(STREAMS)) records[stream] = (await kinesis.readJson(stream)).slice(before[stream]);
  return { result, records };
}

const withEmulator = (): NodeJS.ProcessEnv => ({ KINESIS_ENDPOINT: kinesis.endpoint });

beforeAll(async () => {
  kinesis = await startKinesalite();
  // The local stage's names: exactly the base names, as the embedded pipeline creates them.
  await kinesis.createStreams(Object.values(STREAMS));
});

afterAll(async () => {
  await kinesis.close();
});

describe('sample events', () => {
  it('every event in events/ belongs to a function', () => {
    for (const file of readdirSync(join(ROOT, 'events')).filter((f) => f.endsWith('.json'))) {
      expect(FUNCTION_KEYS.some((key) => file === `${key}.json` || file.startsWith(`${key}-`))).toBe(true);
    }
  });
});

describe('npm run invoke -- classify classify', () => {
  it('answers with no batch item failures and routes every frame to the emulator', async () => {
    // Act
    const { result, records } = await added(() => invoke(['classify', 'classify'], withEmulator()));

    // Assess: five readable frames predicted, the truncated PNG and the bad JSON rejected,
    // the Test camera's frame sent home; nothing failed, so Lambda would checkpoint the batch.
    expect(result.response).toEqual({ batchItemFailures: [] });
    const predictions = (records[STREAMS.predictions] ?? []).map((r) => predictionSchema.parse(r));
    const rejected = (records[STREAMS.rejectedImages] ?? []).map((r) => rejectedImageSchema.parse(r));
    const uncertain = (records[STREAMS.uncertainImages] ?? []).map((r) => uncertainImageSchema.parse(r));
    expect(predictions).toHaveLength(5);
    expect(rejected.map((r) => r.reason)).toEqual(['corrupt_png', 'invalid_json']);
    const predicted = new Set(predictions.map((p) => p.frame_id));
    for (const u of uncertain) expect(predicted.has(u.frame_id)).toBe(true);
    expect(uncertain.filter((u) => u.camera.startsWith('Test')).map((u) => u.reason)).toEqual(['test_camera']);
    expect(new Set(predictions.map((p) => p.camera))).toEqual(new Set(['Camera-edge1', 'Camera-edge2', 'Test-edge1']));
    expect(result.stderr).toContain(`outputs -> ${kinesis.endpoint}`);
  }, 180_000);

  it('prints the outputs instead when asked to (--print), writing nothing', async () => {
    // Act
    const { result, records } = await added(() => invoke(['classify', 'classify.json', '--print'], withEmulator()));

    // Assess
    expect(result.response).toEqual({ batchItemFailures: [] });
    for (const stream of Object.values(STREAMS)) expect(records[stream]).toEqual([]);
    const printed = result.stdout
      .split('\n')
      .filter((line) => line.startsWith('{"stream":'))
      .map((line) => z.object({ stream: z.string(), partitionKey: z.string(), record: z.unknown() }).parse(JSON.parse(line)));
    const count = (stream: string) => printed.filter((p) => p.stream === stream).length;
    expect(count(STREAMS.predictions)).toBe(5);
    expect(count(STREAMS.rejectedImages)).toBe(2);
    expect(count(STREAMS.uncertainImages)).toBeGreaterThanOrEqual(1);
    expect(result.stderr).toContain('outputs -> printed');
  }, 180_000);
});

describe('npm run invoke -- aggregate-metrics <window phase>', () => {
  const stateSchema = z.object({ count: z.number(), invalid: z.record(z.string(), z.number()) }).loose();
  const documentSchema = z
    .object({
      count: z.number(),
      shard: z.string(),
      terminated_early: z.boolean(),
      window: z.object({ start: z.string() }).loose(),
    })
    .loose();

  it('first and middle invocations carry the window state forward and write nothing', async () => {
    const first = await added(() => invoke(['aggregate-metrics', 'aggregate-metrics-first'], withEmulator()));
    const middle = await added(() => invoke(['aggregate-metrics', 'aggregate-metrics-middle'], withEmulator()));

    for (const { result, records } of [first, middle]) {
      expect(result.response).toEqual({ state: expect.any(Object), batchItemFailures: [] });
      expect(records[STREAMS.metrics]).toEqual([]);
    }
    const firstState = stateSchema.parse((first.result.response as { state: unknown }).state);
    const middleState = stateSchema.parse((middle.result.response as { state: unknown }).state);
    expect(firstState.count).toBe(4);
    // The middle batch holds two unreadable records: counted, not failed.
    expect(middleState.count).toBe(6);
    expect(middleState.invalid).toEqual({ invalid_json: 1, invalid_record: 1 });
  }, 180_000);

  it.each([
    ['aggregate-metrics-final', 6, false],
    ['aggregate-metrics-early-terminated', 3, true],
  ])(
    '%s ends the window: empty state, one metrics document',
    async (event, count, early) => {
      const { result, records } = await added(() => invoke(['aggregate-metrics', event], withEmulator()));

      expect(result.response).toEqual({ state: {}, batchItemFailures: [] });
      const documents = (records[STREAMS.metrics] ?? []).map((r) => documentSchema.parse(r));
      expect(documents).toHaveLength(1);
      expect(documents[0]).toMatchObject({ count, terminated_early: early, shard: 'shardId-000000000000' });
    },
    180_000,
  );
});

describe('npm run invoke -- camera-source camera-source', () => {
  it('publishes the requested MNIST frames to the emulator it finds on the local port', async () => {
    // Prepare: no endpoint given; the wrapper must find the emulator by its port.
    const port = new URL(kinesis.endpoint).port;

    // Act
    const { result, records } = await added(() => invoke(['camera-source', 'camera-source'], { KINESIS_PORT: port }));

    // Assess
    expect(result.response).toMatchObject({ published: 20, failed: 0, labelled: 20, stopped: 'count_reached' });
    const frames = (records[STREAMS.cameraImages] ?? []).map((r) => cameraFrameSchema.parse(r));
    expect(frames).toHaveLength(20);
    for (const frame of frames) {
      expect(frame.camera.startsWith('Camera-')).toBe(true);
      expect(Buffer.from(frame.image, 'base64').subarray(1, 4).toString('latin1')).toBe('PNG');
    }
    expect(result.stderr).toContain(`outputs -> http://127.0.0.1:${port}`);
  }, 180_000);
});

describe('the invoke wrapper', () => {
  it('finds an event by name in events/, with or without .json, and passes other options on', () => {
    expect(parseInvokeArgs(['classify', 'classify', '--param=confidence=0.9'], ROOT)).toEqual({
      functionName: 'classify',
      eventPath: join('events', 'classify.json'),
      print: false,
      slsArgs: ['--param=confidence=0.9'],
    });
    expect(parseInvokeArgs(['classify', 'events/classify.json', '--print'], ROOT).print).toBe(true);
  });

  it('refuses a missing function, event or event file with a usage message', () => {
    expect(() => parseInvokeArgs(['classify'], ROOT)).toThrow(InvokeUsageError);
    expect(() => parseInvokeArgs(['classify', 'no-such-event'], ROOT)).toThrow(/no event file "no-such-event"/);
  });

  it('tells a Kinesis endpoint from a closed port and from another kind of server', async () => {
    // Prepare: a plain HTTP server that is not Kinesis, and a port nobody listens on.
    const other: Server = createServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const otherPort = (other.address() as AddressInfo).port;
    await new Promise<void>((resolve) => other.close(() => resolve()));
    const closedPort = otherPort;
    const html: Server = createServer((_req, res) => res.end('<html>hello</html>'));
    await new Promise<void>((resolve) => html.listen(0, '127.0.0.1', resolve));
    const htmlPort = (html.address() as AddressInfo).port;
    try {
      // Act + Assess
      expect(await kinesisAnswers(kinesis.endpoint)).toBe(true);
      expect(await kinesisAnswers(`http://127.0.0.1:${htmlPort}`)).toBe(false);
      expect(await kinesisAnswers(`http://127.0.0.1:${closedPort}`)).toBe(false);
      expect(await chooseEndpoint({ KINESIS_PORT: String(closedPort) }, false)).toBeUndefined();
      expect(await chooseEndpoint({ KINESIS_PORT: new URL(kinesis.endpoint).port }, false)).toBe(kinesis.endpoint);
      expect(await chooseEndpoint({ KINESIS_ENDPOINT: 'http://10.0.0.1:1' }, false)).toBe('http://10.0.0.1:1');
      expect(await chooseEndpoint({ KINESIS_ENDPOINT: kinesis.endpoint }, true)).toBeUndefined();
    } finally {
      await new Promise<void>((resolve) => html.close(() => resolve()));
    }
  });
});
