/**
 * A full uplink backlog under each policy, against a real home emulator: exactly the expected
 * records are dropped, each one counted by stream and reason and listed in the dropped file,
 * and exactly the others arrive home, once each, in order.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams } from '../../local/emulator';
import { HOME_STREAMS, type HomeStreams, startHomeStreams } from '../../local/home-streams';
import { parseUplinkSettings, type UplinkPolicy } from '../../local/uplink/settings';
import { Uplink } from '../../local/uplink/uplink';
import { streamReader } from '../helpers/stream-reader';
import { waitUntil } from '../helpers/wait';

let home: HomeStreams;
let dir: string;

beforeAll(async () => {
  home = await startHomeStreams({ port: 0 });
});
afterAll(async () => {
  await home.stop();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'uplink-full-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A Kinesis event of JSON records with ids, as the runner hands the uplink's reader. */
function event(ids: string[], key: string, firstSeq: number, pad = 0): never {
  return {
    Records: ids.map((id, i) => ({
      eventID: `shardId-000000000000:${firstSeq + i}`,
      kinesis: {
        partitionKey: key,
        sequenceNumber: String(firstSeq + i),
        data: Buffer.from(JSON.stringify({ frame_id: id, pad: 'x'.repeat(pad) })).toString('base64'),
      },
    })),
  } as never;
}

async function homeIds(prefix: string, stream: string): Promise<string[]> {
  const client = createKinesisClient({ endpoint: home.endpoint });
  try {
    return (await streamReader(client).readAll(`${prefix}${stream}`)).map(
      (r) => (JSON.parse(r.data.toString('utf8')) as { frame_id: string }).frame_id,
    );
  } finally {
    client.destroy();
  }
}

const range = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

it.each<[UplinkPolicy, Record<string, string[]>, Record<string, Record<string, number>>]>([
  [
    'reject-new',
    // 10 images fill the backlog; the 3 metrics documents and 2 rejects after them find no room.
    { metrics: [], 'rejected-images': [], 'uncertain-images': range('u', 10) },
    { metrics: { 'backlog-full-reject-new': 3 }, 'rejected-images': { 'backlog-full-reject-new': 2 }, 'uncertain-images': {} },
  ],
  [
    'drop-oldest',
    // The 5 newcomers push out the 5 oldest images (the lowest priority).
    { metrics: range('m', 3), 'rejected-images': range('r', 2), 'uncertain-images': range('u', 10).slice(5) },
    { metrics: {}, 'rejected-images': {}, 'uncertain-images': { 'backlog-full-drop-oldest': 5 } },
  ],
])(
  '%s: drops and counts exactly the expected records, and sends exactly the rest',
  async (policy, expectedHome, expectedDrops) => {
    // Prepare: every record is 1 kB; the backlog holds 10 of them. A prefix keeps cases apart.
    const prefix = `${policy}-`;
    const admin = createKinesisClient({ endpoint: home.endpoint });
    await ensureStreams(
      admin,
      HOME_STREAMS.map((name) => ({ name: `${prefix}${name}`, shards: 1 })),
    );
    admin.destroy();
    const sizeOf = (n: number) => Buffer.byteLength(JSON.stringify({ frame_id: 'u1', pad: 'x'.repeat(n) })) + 'cam'.length;
    const pad = 1024 - sizeOf(0);
    const settings = parseUplinkSettings({
      endpoint: home.endpoint,
      streamPrefix: prefix,
      maxBytes: 10 * 1024 + 512,
      policy,
      intervalMs: 0,
      retryBaseMs: 10,
      retryMaxMs: 50,
    });
    const droppedFile = join(dir, 'dropped.jsonl');
    const uplink = new Uplink({ settings, dir: join(dir, 'backlog'), droppedFile, log: () => undefined });
    try {
      // Act: all offered before the link starts, so what fits is decided by the policy alone.
      await uplink.handler('uncertain-images')(event(range('u', 10), 'cam', 1, pad));
      await uplink.handler('metrics')(event(range('m', 3), 'cam', 1, pad));
      await uplink.handler('rejected-images')(event(range('r', 2), 'cam', 1, pad));
      uplink.start();
      await waitUntil(
        () => uplink.backlog.records === 0,
        'the backlog to empty',
        60_000,
        () => JSON.stringify(uplink.status()),
      );
    } finally {
      await uplink.stop();
    }
    // Assert
    for (const [stream, ids] of Object.entries(expectedHome))
      expect({ stream, ids: await homeIds(prefix, stream) }).toEqual({ stream, ids });
    const status = uplink.status();
    expect(Object.fromEntries(Object.entries(status.streams).map(([s, v]) => [s, v.dropped]))).toEqual(expectedDrops);
    const listed = existsSync(droppedFile)
      ? readFileSync(droppedFile, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { stream: string; id: string; reason: string })
      : [];
    const expectedListed = Object.entries(expectedDrops).flatMap(([stream, reasons]) =>
      Object.keys(reasons).flatMap((reason) => {
        const all = stream === 'metrics' ? range('m', 3) : stream === 'rejected-images' ? range('r', 2) : range('u', 10);
        return all.filter((id) => !expectedHome[stream]?.includes(id)).map((id) => ({ stream, id, reason }));
      }),
    );
    expect(listed.map(({ stream, id, reason }) => ({ stream, id, reason }))).toEqual(expect.arrayContaining(expectedListed));
    expect(listed).toHaveLength(expectedListed.length);
  },
);
