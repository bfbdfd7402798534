/**
 * The uplink's bandwidth cap against a real home emulator: a backlog of 30 s worth of data at
 * the cap is sent, and the bytes put on the link never exceed cap x elapsed by more than 10%
 * (an upper bound: a loaded machine only makes the run slower, never the bound tighter).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { type HomeStreams, startHomeStreams } from '../../local/home-streams';
import { kbpsToBytesPerSecond } from '../../local/uplink/rate-limiter';
import { parseUplinkSettings } from '../../local/uplink/settings';
import { Uplink } from '../../local/uplink/uplink';
import { streamReader } from '../helpers/stream-reader';

const KBPS = 200;
const SECONDS = 30;

let home: HomeStreams;
let dir: string;
beforeAll(async () => {
  home = await startHomeStreams({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'uplink-bw-'));
});
afterAll(async () => {
  await home.stop();
  rmSync(dir, { recursive: true, force: true });
});

it(`keeps to ${KBPS} kbit/s over a ${SECONDS} s run`, async () => {
  // Prepare: ~3 kB records (an uncertain image's size), 30 s worth at the cap, two cameras.
  const bytesPerSecond = kbpsToBytesPerSecond(KBPS);
  const recordBytes = 3000;
  const count = Math.ceil((bytesPerSecond * SECONDS) / recordBytes);
  const settings = parseUplinkSettings({ endpoint: home.endpoint, kbps: KBPS, intervalMs: 0 });
  const uplink = new Uplink({ settings, log: () => undefined });
  const records = Array.from({ length: count }, (_, i) => {
    const body = JSON.stringify({ frame_id: `f${i}`, pad: '' });
    const data = JSON.stringify({ frame_id: `f${i}`, pad: 'x'.repeat(recordBytes - Buffer.byteLength(body) - 5) });
    return {
      eventID: `shardId-000000000000:${i + 1}`,
      kinesis: { partitionKey: `cam-${i % 2}`, sequenceNumber: String(i + 1), data: Buffer.from(data).toString('base64') },
    };
  });
  await uplink.handler('uncertain-images')({ Records: records } as never);
  const total = uplink.backlog.bytes;
  const samples: Array<{ seconds: number; bytes: number }> = [];
  // Act
  const started = performance.now();
  uplink.start();
  try {
    const deadline = Date.now() + SECONDS * 1000 * 6;
    while (uplink.backlog.records > 0) {
      if (Date.now() > deadline) throw new Error(`the backlog did not empty: ${JSON.stringify(uplink.status())}`);
      samples.push({ seconds: (performance.now() - started) / 1000, bytes: uplink.status().bytes_attempted });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await uplink.stop();
  }
  const elapsed = (performance.now() - started) / 1000;
  // Assert: at every sample and at the end (bytes counted before each call goes out).
  const overCap = samples.filter((s) => s.bytes > bytesPerSecond * s.seconds * 1.1);
  expect(overCap).toEqual([]);
  expect(uplink.status().bytes_attempted).toBeLessThanOrEqual(bytesPerSecond * elapsed * 1.1);
  expect(uplink.status().bytes_attempted).toBe(total);
  const client = createKinesisClient({ endpoint: home.endpoint });
  const arrived = await streamReader(client).readAll('uncertain-images');
  client.destroy();
  expect(arrived.reduce((sum, r) => sum + r.data.byteLength + Buffer.byteLength(r.partitionKey), 0)).toBe(total);
  console.log(
    `uplink bandwidth: ${total} bytes in ${elapsed.toFixed(1)} s = ${((total * 8) / 1000 / elapsed).toFixed(1)} kbit/s (cap ${KBPS})`,
  );
}, 300_000);
