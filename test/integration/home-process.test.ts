/**
 * `npm run home` as a real process against a real emulator: it reads the home streams, keeps
 * acknowledged labels across a SIGKILL, resumes from its checkpoints, binds loopback by
 * default and refuses to listen beyond it without a token.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { REPO_ROOT } from '../../local/runner/mappings';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';
import { metricsDocument, rejectRecord, uncertainRecord } from '../helpers/home-fixtures';
import { waitForValue } from '../helpers/wait';

const HOME_LINE = /home on (http:\/\/\S+)/;

/** A JSON answer, read loosely: the assertions say what each field must be. */
// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field below
type Body = Record<string, any>;
const TOKEN = 'process-token-0123456789';

interface HomeProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

/** `tsx home/cli.ts ...args` (one node process, so a SIGKILL kills the home itself). */
function spawnHome(args: string[]): { child: ChildProcess; output(): string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'home/cli.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_OPTIONS: '', HOME_TOKEN: '', HOME_HOST: '', HOME_PORT: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits for `check` to hold, polling; fails with `what` and the process output after `timeoutMs`. */
const waitUntil = <T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  output: () => string,
  timeoutMs = 60_000,
): Promise<T> => waitForValue(check, what, timeoutMs, () => `the home printed:\n${output()}`);

async function startHome(args: string[]): Promise<HomeProcess> {
  const home = spawnHome(args);
  let ended = false;
  void home.exited.then(() => (ended = true));
  const url = await waitUntil(
    'the home printing "home on <url>"',
    () => {
      if (ended) throw new Error(`the home exited before serving:\n${home.output()}`);
      return HOME_LINE.exec(home.output())?.[1];
    },
    home.output,
  );
  return { ...home, url };
}

describe('npm run home (real process, real emulator)', () => {
  let kinesis: TestKinesis;
  let data: string;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    kinesis = await startKinesalite();
    await kinesis.createStreams(['uncertain-images', 'rejected-images', 'metrics']);
  });
  beforeEach(() => {
    data = mkdtempSync(join(tmpdir(), 'home-process-'));
  });
  afterEach(async () => {
    for (const child of running.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
    }
    rmSync(data, { recursive: true, force: true });
  });
  afterAll(async () => {
    await kinesis.close();
  });

  const put = async (stream: string, values: unknown[]): Promise<void> => {
    const out = await kinesis.client.send(
      new PutRecordsCommand({
        StreamName: stream,
        Records: values.map((v, i) => ({ PartitionKey: `k${i}`, Data: Buffer.from(JSON.stringify(v)) })),
      }),
    );
    expect(out.FailedRecordCount ?? 0).toBe(0);
  };
  const api = async (home: HomeProcess, path: string, init?: RequestInit): Promise<{ status: number; body: Body }> => {
    const response = await fetch(`${home.url}${path}`, init);
    return { status: response.status, body: await response.json() };
  };
  const framesTotal = (home: HomeProcess, status = 'all') =>
    api(home, `/api/frames?status=${status}&limit=500`).then((r) => r.body);

  it('reads the streams, keeps acknowledged labels across a SIGKILL, resumes from its checkpoints and stops on SIGTERM', async () => {
    const base = 1000;
    await put(
      'uncertain-images',
      Array.from({ length: 20 }, (_, i) => uncertainRecord(base + i)),
    );
    await put('rejected-images', [rejectRecord(base), rejectRecord(base + 1)]);
    await put('metrics', [metricsDocument(new Date(), 'shardId-000000000000', 25)]);
    const args = ['--endpoint', kinesis.endpoint, '--data', data, '--port', '0'];

    const first = await startHome(args);
    running.push(first.child);
    // Loopback unless told otherwise.
    expect(first.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await waitUntil(
      '20 frames, 2 rejects and a window at home',
      async () => {
        const status = (await api(first, '/api/status')).body;
        return status.frames === 20 && status.rejected === 2 && status.windows === 1 ? status : undefined;
      },
      first.output,
    );

    const ids: string[] = (await framesTotal(first)).frames.map((f: { frame_id: string }) => f.frame_id);
    const labelled = new Map<string, number | string>([
      [ids[0] as string, 3],
      [ids[1] as string, 'not_a_digit'],
      [ids[2] as string, 8],
    ]);
    for (const [frame_id, label] of labelled) {
      const response = await api(first, '/api/labels', { method: 'POST', body: JSON.stringify({ frame_id, label }) });
      expect(response.status).toBe(201);
    }
    const bulk = await api(first, '/api/labels/bulk', {
      method: 'POST',
      body: JSON.stringify({ frame_ids: [ids[3], ids[4]], label: 'accept' }),
    });
    expect(bulk.status).toBe(201);
    expect((await api(first, '/api/labels/undo', { method: 'POST', body: JSON.stringify({ frame_id: ids[4] }) })).status).toBe(
      201,
    );
    labelled.set(ids[3] as string, bulk.body.entries[0].label);

    // No goodbye: the labels were acknowledged, so they must be on disk.
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await startHome(args);
    running.push(second.child);
    const after = await framesTotal(second, 'labelled');
    expect(new Map(after.frames.map((f: { frame_id: string; label: number | string }) => [f.frame_id, f.label]))).toEqual(
      labelled,
    );
    // New records after the restart arrive; the old ones are not counted twice.
    await put('uncertain-images', [uncertainRecord(base + 100), uncertainRecord(base + 101)]);
    await waitUntil('the 2 new frames', async () => ((await framesTotal(second)).total === 22 ? true : undefined), second.output);
    expect((await api(second, '/api/status')).body.rejected).toBe(2);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('refuses to listen beyond loopback without a token, and with one answers only requests that carry it', async () => {
    const refused = spawnHome(['--endpoint', kinesis.endpoint, '--data', data, '--port', '0', '--host', '0.0.0.0']);
    running.push(refused.child);
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toContain('without a token');

    const guarded = await startHome(['--endpoint', kinesis.endpoint, '--data', data, '--port', '0', '--token', TOKEN]);
    running.push(guarded.child);
    expect((await fetch(`${guarded.url}/api/status`)).status).toBe(401);
    expect((await fetch(`${guarded.url}/api/status`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    guarded.child.kill('SIGTERM');
    expect(await guarded.exited).toBe(0);
  });
});
