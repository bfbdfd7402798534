/**
 * The edge is killed (SIGKILL: nothing flushed, nothing closed) while its home is unreachable
 * and its uplink holds a backlog on disk, then started again on the same folders once the home
 * is there: every frame that entered the edge arrives home as an uncertain image (a Test
 * camera sends every frame home), and nothing is dropped.
 */
import { join } from 'node:path';
import { exitCodeWithin, persistedRunArgs, readPersisted, suiteFolders } from '../helpers/persisted-run';
import { freePort, type RunningProcess, startProcess, stopProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';
import { streamReader } from '../helpers/stream-reader';
import {
  edgeIds,
  edgeSummary,
  firstArrivals,
  frameSequence,
  outOfOrder,
  readHome,
  sorted,
  uplinkStatus,
} from '../helpers/uplink-ledger';

const FRAMES = 600;

let home: RunningProcess | undefined;
let edge: RunningProcess | undefined;

const folders = suiteFolders('uplink-kill', async () => {
  await stopProcess(edge);
  await stopProcess(home);
});

it('loses nothing when the edge is killed during an outage and restarted with --persist', async () => {
  // Prepare: the home's port is chosen now; nothing listens there until after the kill.
  const port = await freePort();
  const homeEndpoint = `http://127.0.0.1:${port}`;
  const persist = join(folders.dir, 'edge-state');
  const out = join(folders.dir, 'edge-out');
  // Every record stays in the edge's streams, so the test can count what entered.
  const common = [...persistedRunArgs(persist, out), '--no-home', '--home-endpoint', homeEndpoint, '--uplink-retry-max', '1'];
  const state = (): string => `edge:\n${edge?.output()}\nuplink: ${JSON.stringify(uplinkStatus(out))}`;

  // Act 1: frames flow, the home is unreachable, the backlog grows on disk; then SIGKILL.
  edge = startProcess(
    'local/cli/main.ts',
    [...common, '--count', String(FRAMES), '--rate', '100', '--camera', 'Test', '--cameras', '2'],
    { MODEL_DIR: folders.modelDir },
  );
  await waitUntil(() => (uplinkStatus(out)?.backlog.records ?? 0) >= 200, 'a backlog of 200 records at the edge', 240_000, state);
  expect(uplinkStatus(out)?.link).toBe('down');
  const backlogAtKill = uplinkStatus(out)?.backlog.records ?? 0;
  edge.child.kill('SIGKILL');
  await edge.exited;

  // Act 2: the home comes up; the edge restarts on the same folders, publishing nothing more.
  home = startProcess('local/home-streams-cli.ts', ['--streams-port', String(port)]);
  await home.waitForOutput(/home streams on/, 60_000);
  edge = startProcess('local/cli/main.ts', [...common, '--count', '0'], { MODEL_DIR: folders.modelDir });
  const code = await exitCodeWithin(edge.exited, 400_000);
  expect({ code, output: code === 0 ? '' : state() }).toEqual({ code: 0, output: '' });

  // Assert: what entered the edge (read back from its persisted store) arrived home.
  const entered = await readPersisted(persist, async (client) => (await streamReader(client).readAll('camera-images')).length);
  const atEdge = edgeIds(out);
  const uncertain = firstArrivals(await readHome(homeEndpoint, 'uncertain-images'));
  expect(atEdge.uncertain).toHaveLength(entered);
  expect(sorted(uncertain.records.map((r) => r.body.frame_id as string))).toEqual(sorted(atEdge.uncertain));
  expect(outOfOrder(uncertain.records, (r) => frameSequence(r.body.frame_id as string))).toEqual([]);
  const metrics = firstArrivals(await readHome(homeEndpoint, 'metrics'));
  expect(sorted(metrics.records.map((r) => r.body.id as string))).toEqual(sorted(atEdge.metrics));
  // The backlog at the kill (200 records or more) was made of these uncertain images and metrics.
  expect(backlogAtKill).toBeGreaterThanOrEqual(200);
  expect(entered + metrics.records.length).toBeGreaterThanOrEqual(backlogAtKill);
  const summary = edgeSummary(out);
  expect(summary.unaccounted).toBe(0);
  expect(summary.uplink.backlog.records).toBe(0);
  expect(Object.values(summary.uplink.streams).map((s) => s.dropped)).toEqual([{}, {}, {}]);
  console.log(`kill test: ${entered} frames entered, all home; duplicates at home ${uncertain.duplicates + metrics.duplicates}`);
}, 900_000);
