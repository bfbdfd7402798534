/**
 * `npm run uplink-bench -- [--records N] [--outage-minutes M] [--rate R]`: measures the
 * store-and-forward uplink on loopback only, bounded in time (outage at most 30 minutes):
 *
 * 1. throughput: N records of an uncertain image's size (~3.2 kB) already in the backlog,
 *    sent to a home emulator as fast as the link allows (no cap);
 * 2. an outage: `npm start` (its own process, --persist, a Test camera so every frame goes
 *    home, the worst case) at R frames/s with the home streams (another process) stopped for
 *    M minutes: the edge's resident memory and the backlog on disk during the outage, then the
 *    catch-up time from the home's return until no record queued before it still waits (the
 *    status file is written once a second: that is the resolution).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startHomeStreams } from '../local/home-streams';
import { parseUplinkSettings } from '../local/uplink/settings';
import { Uplink } from '../local/uplink/uplink';
import { freePort, startProcess, stopProcess, waitUntil } from '../test/helpers/processes';
import { uplinkStatus } from '../test/helpers/uplink-ledger';
import { sleep } from '../functions/lib/retry';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({
  options: {
    records: { type: 'string' },
    'outage-minutes': { type: 'string' },
    rate: { type: 'string' },
    cameras: { type: 'string' },
  },
  strict: true,
});
const bounded = (name: string, value: string | undefined, fallback: number, min: number, max: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return n;
};
const RECORDS = bounded('records', values.records, 20_000, 1, 200_000);
const OUTAGE_MINUTES = bounded('outage-minutes', values['outage-minutes'], 1, 0.1, 30);
const RATE = bounded('rate', values.rate, 20, 1, 1000);
const CAMERAS = bounded('cameras', values.cameras, 2, 1, 10);
const RECORD_BYTES = 3200;

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const rssOf = (pid: number): number => {
  const line =
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:')) ?? '';
  return Number(line.replace(/\D+/g, '')) * 1024;
};
const diskOf = (path: string): number => {
  try {
    return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return 0;
  }
};

async function throughput(): Promise<void> {
  const home = await startHomeStreams({ port: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'uplink-bench-'));
  try {
    for (const persisted of [false, true]) {
      const uplink = new Uplink({
        settings: parseUplinkSettings({ endpoint: home.endpoint, intervalMs: 0, streamPrefix: '' }),
        ...(persisted ? { dir: join(dir, 'backlog') } : {}),
        log: () => undefined,
      });
      const pad = 'x'.repeat(RECORD_BYTES - 60);
      const loadStarted = performance.now();
      for (let start = 0; start < RECORDS; start += 1000) {
        const records = Array.from({ length: Math.min(1000, RECORDS - start) }, (_, j) => {
          const i = start + j;
          return {
            eventID: `shardId-000000000000:${i + 1}`,
            kinesis: {
              partitionKey: `Bench-${i % 2}`,
              sequenceNumber: String(i + 1),
              data: Buffer.from(JSON.stringify({ frame_id: `${persisted}-${i}`, pad })).toString('base64'),
            },
          };
        });
        await uplink.handler('uncertain-images')({ Records: records } as never);
      }
      const loadSeconds = (performance.now() - loadStarted) / 1000;
      const bytes = uplink.backlog.bytes;
      const started = performance.now();
      uplink.start();
      await waitUntil(() => uplink.backlog.records === 0, 'the backlog to empty', 600_000);
      const seconds = (performance.now() - started) / 1000;
      await uplink.stop();
      console.log(
        `throughput (${persisted ? 'backlog on disk' : 'backlog in memory'}): ${RECORDS} records (${mb(bytes)}) sent home in ${seconds.toFixed(2)} s = ` +
          `${Math.round(RECORDS / seconds)} records/s, ${((bytes * 8) / 1e6 / seconds).toFixed(1)} Mbit/s; storing them took ${loadSeconds.toFixed(2)} s (${Math.round(RECORDS / loadSeconds)} records/s)`,
      );
    }
  } finally {
    await home.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function outage(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'uplink-outage-bench-'));
  const port = await freePort();
  const out = join(dir, 'out');
  const persist = join(dir, 'persist');
  let home = startProcess('local/home-streams-cli.ts', ['--streams-port', String(port)]);
  let edge: ReturnType<typeof startProcess> | undefined;
  try {
    await home.waitForOutput(/home streams on/, 60_000);
    edge = startProcess('local/cli/main.ts', [
      '--count',
      String(Math.ceil(RATE * (OUTAGE_MINUTES * 60 + 600))),
      '--rate',
      String(RATE),
      '--camera',
      'Test',
      '--cameras',
      String(CAMERAS),
      '--port',
      '0',
      '--quiet',
      '--no-home',
      '--out',
      out,
      '--persist',
      persist,
      '--home-endpoint',
      `http://127.0.0.1:${port}`,
      '--uplink-retry-max',
      '5',
    ]);
    const e = edge;
    await waitUntil(
      () => (uplinkStatus(out)?.streams['uncertain-images']?.sent_records ?? 0) > RATE * 5,
      'the edge to send home',
      300_000,
      () => e.output(),
    );
    const rssBefore = rssOf(e.child.pid as number);
    await stopProcess(home);
    const outageStarted = Date.now();
    let peakRss = rssBefore;
    while (Date.now() - outageStarted < OUTAGE_MINUTES * 60_000) {
      peakRss = Math.max(peakRss, rssOf(e.child.pid as number));
      await sleep(500);
    }
    const atEnd = uplinkStatus(out);
    const backlogDisk = diskOf(join(persist, 'uplink'));
    const persistDisk = diskOf(persist);
    home = startProcess('local/home-streams-cli.ts', ['--streams-port', String(port)]);
    await home.waitForOutput(/home streams on/, 60_000);
    const back = Date.now();
    // Caught up once nothing queued before the home came back still waits (frames keep
    // arriving, so the backlog itself is rarely empty: records wait up to the batch interval).
    const caughtUp = (): boolean => {
      const waiting = Object.values(uplinkStatus(out)?.streams ?? {}) as Array<{ oldest_age_seconds?: number | null }>;
      const sinceBack = (Date.now() - back) / 1000;
      return waiting.every(
        (s) => s.oldest_age_seconds === null || s.oldest_age_seconds === undefined || s.oldest_age_seconds < sinceBack,
      );
    };
    await waitUntil(caughtUp, 'the backlog of the outage to be sent', 1_800_000, () => e.output());
    const catchUp = (Date.now() - back) / 1000;
    console.log(
      `outage of ${OUTAGE_MINUTES} min at ${RATE} frames/s (${CAMERAS} Test cameras, every frame sent home): backlog ${atEnd?.backlog.records} records ` +
        `(${mb((atEnd?.backlog as { bytes?: number } | undefined)?.bytes ?? 0)}); edge RSS ${mb(rssBefore)} before, peak ${mb(peakRss)} during; ` +
        `backlog on disk ${mb(backlogDisk)} (all edge state ${mb(persistDisk)}); caught up ${catchUp.toFixed(0)} s after the home returned`,
    );
  } finally {
    await stopProcess(edge);
    await stopProcess(home);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`uplink bench: loopback only; node ${process.version}, ${new Date().toISOString()}`);
  await throughput();
  await outage();
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
