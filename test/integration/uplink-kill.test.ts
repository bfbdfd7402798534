/**
 * The edge is killed (SIGKILL: nothing flushed, nothing closed) while its home is unreachable
 * and its uplink holds a backlog on disk, then started again on the same folders once the home
 * is there: every frame that entered the edge arrives home as an uncertain image (a Test
 * camera sends every frame home), and nothing is dropped.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { KinesisEmulator } from '../../local/emulator';
import { writeCentroidModel } from '../helpers/centroid-model';
import { freePort, type RunningProcess, startProcess, stopProcess, waitUntil } from '../helpers/processes';
import { streamReader } from '../helpers/stream-reader';
import { edgeIds, firstArrivals, frameSequence, outOfOrder, readHome, sorted, uplinkStatus } from '../helpers/uplink-ledger';

const FRAMES = 600;

let dir: string;
let modelDir: string;
let home: RunningProcess | undefined;
let edge: RunningProcess | undefined;

beforeAll(() => {
  modelDir = writeCentroidModel(3000);
  dir = mkdtempSync(join(tmpdir(), 'uplink-kill-'));
});
afterAll(async () => {
  await stopProcess(edge);
  await stopProcess(home);
  rmSync(dir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});

it('loses nothing when the edge is killed during an outage and restarted with --persist', async () => {
  // Prepare: the home's port is chosen now; nothing listens there until after the kill.
  const port = await freePort();
  const homeEndpoint = `http://127.0.0.1:${port}`;
  const persist = join(dir, 'edge-state');
  const out = join(dir, 'edge-out');
  // Every record stays in the edge's streams, so the test can count what entered.
  const common = [
    '--persist',
    persist,
    '--out',
    out,
    '--port',
    '0',
    '--quiet',
    '--no-home',
    '--window',
    '2',
    '--retain-consumed',
    'all',
    '--home-endpoint',
    homeEndpoint,
    '--uplink-retry-max',
    '1',
  ];
  const state = (): string => `edge:\n${edge?.output()}\nuplink: ${JSON.stringify(uplinkStatus(out))}`;

  // Act 1: frames flow, the home is unreachable, the backlog grows on disk; then SIGKILL.
  edge = startProcess(
    'local/cli/main.ts',
    [...common, '--count', String(FRAMES), '--rate', '100', '--camera', 'Test', '--cameras', '2'],
    { MODEL_DIR: modelDir },
  );
  await waitUntil(() => (uplinkStatus(out)?.backlog.records ?? 0) >= 200, 'a backlog of 200 records at the edge', 240_000, state);
  expect(uplinkStatus(out)?.link).toBe('down');
  edge.child.kill('SIGKILL');
  await edge.exited;

  // Act 2: the home comes up; the edge restarts on the same folders, publishing nothing more.
  home = startProcess('local/home-streams-cli.ts', ['--streams-port', String(port)]);
  await home.waitForOutput(/home streams on/, 60_000);
  edge = startProcess('local/cli/main.ts', [...common, '--count', '0'], { MODEL_DIR: modelDir });
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    edge.exited,
    new Promise((resolve) => (timer = setTimeout(() => resolve('edge still running after 400 s'), 400_000))),
  ]);
  clearTimeout(timer);
  expect({ code, output: code === 0 ? '' : state() }).toEqual({ code: 0, output: '' });

  // Assert: what entered the edge (read back from its persisted store) arrived home.
  const emulator = await KinesisEmulator.start({ port: 0, persistPath: join(persist, 'kinesis') });
  const client = createKinesisClient({ endpoint: emulator.endpoint });
  const entered = (await streamReader(client).readAll('camera-images')).length;
  client.destroy();
  await emulator.stop();
  const atEdge = edgeIds(out);
  const uncertain = firstArrivals(await readHome(homeEndpoint, 'uncertain-images'));
  expect(entered).toBeGreaterThan(200);
  expect(atEdge.uncertain).toHaveLength(entered);
  expect(sorted(uncertain.records.map((r) => r.body.frame_id as string))).toEqual(sorted(atEdge.uncertain));
  expect(outOfOrder(uncertain.records, (r) => frameSequence(r.body.frame_id as string))).toEqual([]);
  const metrics = firstArrivals(await readHome(homeEndpoint, 'metrics'));
  expect(sorted(metrics.records.map((r) => r.body.id as string))).toEqual(sorted(atEdge.metrics));
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as {
    unaccounted: number;
    uplink: { backlog: { records: number }; streams: Record<string, { dropped: Record<string, number> }> };
  };
  expect(summary.unaccounted).toBe(0);
  expect(summary.uplink.backlog.records).toBe(0);
  expect(Object.values(summary.uplink.streams).map((s) => s.dropped)).toEqual([{}, {}, {}]);
  console.log(`kill test: ${entered} frames entered, all home; duplicates at home ${uncertain.duplicates + metrics.duplicates}`);
}, 900_000);
