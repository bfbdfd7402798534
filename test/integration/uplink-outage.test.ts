/**
 * The edge and the home as two processes, each with its own emulator: the home streams go
 * away for 60 s while the edge keeps classifying at a steady rate (two cameras, plus a sender
 * of bad frames), then come back on the same port. Every uncertain frame, reject and metrics
 * document the edge produced must arrive home, once per id after de-duplication, in order per
 * camera, with nothing dropped; the edge says when the link went down and came back.
 */
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { exitCodeWithin, suiteFolders } from '../helpers/persisted-run';
import { type RunningProcess, startProcess, stopProcess } from '../helpers/processes';
import { waitUntil } from '../helpers/wait';
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

/** The outage the specification asks for; the only timed wait of the test. */
const OUTAGE_MS = 60_000;
/** 2 cameras at 10 frames/s each: publishing lasts ~100 s, past the outage. */
const FRAMES = 2000;
const RATE = 20;

let home: RunningProcess | undefined;
let edge: RunningProcess | undefined;

const folders = suiteFolders('uplink-outage', async () => {
  await stopProcess(edge);
  await stopProcess(home);
});

it('loses nothing through a 60 s outage of the home, and keeps each camera in order', async () => {
  // Prepare: the home streams, persisted so what arrived before the outage is still there after.
  const homeDir = join(folders.dir, 'home');
  const out = join(folders.dir, 'edge-out');
  home = startProcess('local/home-streams-cli.ts', ['--streams-port', '0', '--persist', homeDir]);
  const [, homeEndpoint, homePort] = (await home.waitForOutput(
    /home streams on (http:\/\/127\.0\.0\.1:(\d+))/,
    60_000,
  )) as string[];
  edge = startProcess(
    'local/cli/main.ts',
    [
      '--count',
      String(FRAMES),
      '--rate',
      String(RATE),
      '--camera',
      'Test',
      '--cameras',
      '2',
      '--port',
      '0',
      '--window',
      '2',
      '--out',
      out,
      '--quiet',
      '--no-home',
      '--home-endpoint',
      homeEndpoint as string,
      '--uplink-interval',
      '0.2',
      '--uplink-retry-max',
      '2',
    ],
    { MODEL_DIR: folders.modelDir },
  );
  const [, edgeEndpoint] = (await edge.waitForOutput(/kinesis (http:\/\/127\.0\.0\.1:\d+)/, 120_000)) as string[];
  // A sender of unreadable frames, all through the run up to the end of the outage.
  const edgeClient = createKinesisClient({ endpoint: edgeEndpoint as string });
  let sendingRejects = true;
  let rejectsSent = 0;
  const rejectSender = (async () => {
    while (sendingRejects) {
      const body = { image: Buffer.from('not a png').toString('base64'), camera: 'Bad-cam', timestamp: new Date().toISOString() };
      await edgeClient.send(
        new PutRecordsCommand({
          StreamName: 'camera-images',
          Records: [{ PartitionKey: 'Bad-cam', Data: Buffer.from(JSON.stringify(body)) }],
        }),
      );
      rejectsSent += 1;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  const state = (): string => `edge:\n${edge?.output()}\nuplink: ${JSON.stringify(uplinkStatus(out))}`;

  // Act 1: the home goes away once records have been arriving.
  await waitUntil(
    () => (uplinkStatus(out)?.streams['uncertain-images']?.sent_records ?? 0) > 20,
    'uncertain images to arrive home',
    180_000,
    state,
  );
  await stopProcess(home);
  await waitUntil(() => uplinkStatus(out)?.link === 'down', 'the edge to see the link down', 60_000, state);
  await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
  const duringOutage = uplinkStatus(out);

  // Act 2: the home comes back on the same port; the edge finishes its frames and its backlog.
  home = startProcess('local/home-streams-cli.ts', ['--streams-port', homePort as string, '--persist', homeDir]);
  await home.waitForOutput(/home streams on/, 60_000);
  sendingRejects = false;
  await rejectSender;
  edgeClient.destroy();
  const code = await exitCodeWithin(edge.exited, 400_000);
  expect({ code, output: code === 0 ? '' : state() }).toEqual({ code: 0, output: '' });

  // Assert: the outage mattered (a backlog built up), and the edge said so.
  expect(duringOutage?.link).toBe('down');
  expect(duringOutage?.backlog.records ?? 0).toBeGreaterThan(100);
  expect(edge.output()).toMatch(/uplink down: /);
  expect(edge.output()).toMatch(/uplink up again after \d+\.\d s down/);
  const summary = edgeSummary(out);
  expect(summary.unaccounted).toBe(0);
  expect(summary.uplink.backlog.records).toBe(0);
  expect(Object.values(summary.uplink.streams).map((s) => s.dropped)).toEqual([{}, {}, {}]);

  // Assert: exactly the edge's outputs arrived home, in order per camera.
  const atEdge = edgeIds(out);
  const endpoint = homeEndpoint as string;
  const uncertain = firstArrivals(await readHome(endpoint, 'uncertain-images'));
  const rejected = firstArrivals(await readHome(endpoint, 'rejected-images'));
  const metrics = firstArrivals(await readHome(endpoint, 'metrics'));
  expect(atEdge.uncertain).toHaveLength(FRAMES);
  expect(atEdge.rejected).toHaveLength(rejectsSent);
  expect(sorted(uncertain.records.map((r) => r.body.frame_id as string))).toEqual(sorted(atEdge.uncertain));
  expect(sorted(rejected.records.map((r) => r.body.frame_id as string))).toEqual(sorted(atEdge.rejected));
  expect(sorted(metrics.records.map((r) => r.body.id as string))).toEqual(sorted(atEdge.metrics));
  expect(new Set(uncertain.records.map((r) => r.partitionKey)).size).toBe(2);
  expect(outOfOrder(uncertain.records, (r) => frameSequence(r.body.frame_id as string))).toEqual([]);
  expect(outOfOrder(rejected.records, (r) => frameSequence(r.body.frame_id as string))).toEqual([]);
  expect(outOfOrder(metrics.records, (r) => BigInt(Date.parse(r.body.window?.start ?? '')))).toEqual([]);
  console.log(
    `outage test: ${atEdge.uncertain.length} uncertain, ${atEdge.rejected.length} rejects, ${atEdge.metrics.length} metrics documents home; ` +
      `backlog at the end of the outage ${duringOutage?.backlog.records} records; duplicates at home ${uncertain.duplicates + rejected.duplicates + metrics.duplicates}`,
  );
}, 900_000);
