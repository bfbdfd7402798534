/**
 * The home's uplink API in process: a home without an uplink says so; a home given a real
 * uplink (forwarding to a home-streams emulator) answers its status, and its event stream
 * tells when the emulator goes away (link down, records waiting) and comes back (link up,
 * backlog sent).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisStreamEvent } from 'aws-lambda';
import { STREAMS } from '../../functions/lib/contracts';
import { createHomeApp } from '../../home/server';
import { HomeStore } from '../../home/store';
import { UPLINK_BACKLOG_EVENT_MS, uplinkEventDue } from '../../home/uplink-events';
import { type HomeStreams, startHomeStreams } from '../../local/home-streams';
import { parseUplinkSettings } from '../../local/uplink/settings';
import type { UplinkStatus } from '../../local/uplink/status';
import { Uplink } from '../../local/uplink/uplink';
import { waitForValue, within } from '../helpers/wait';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field below
type Body = Record<string, any>;

let sequence = 0;
/** A batch of `n` metrics-stream records as the runner hands them to the uplink. */
function batch(n: number): KinesisStreamEvent {
  return {
    Records: Array.from({ length: n }, () => {
      sequence += 1;
      return {
        eventID: `shardId-000000000000:${sequence}`,
        kinesis: {
          data: Buffer.from(JSON.stringify({ id: `doc-${sequence}`, n: sequence })).toString('base64'),
          partitionKey: 'cam',
          sequenceNumber: String(sequence),
        },
      };
    }),
  } as unknown as KinesisStreamEvent;
}

const until = <T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> =>
  waitForValue(probe, what, ms);

describe('home uplink API', () => {
  let dir: string;
  let store: HomeStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-uplink-'));
    store = new HomeStore(join(dir, 'data'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers { configured: false } when the process runs no uplink', async () => {
    const app = createHomeApp(store);
    const response = await app.request('/api/uplink');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ configured: false });
  });

  describe('with an uplink to a home-streams emulator', () => {
    let streams: HomeStreams | undefined;
    let uplink: Uplink;
    let port: number;

    beforeEach(async () => {
      streams = await startHomeStreams({ port: 0 });
      port = Number(new URL(streams.endpoint).port);
      uplink = new Uplink({
        settings: parseUplinkSettings({
          endpoint: streams.endpoint,
          streams: [STREAMS.metrics],
          intervalMs: 0,
          retryBaseMs: 50,
          retryMaxMs: 200,
          maxBytes: 1024 * 1024,
        }),
        log: () => undefined,
      });
      uplink.start();
    });
    afterEach(async () => {
      await uplink.stop();
      await streams?.stop();
    });

    it('answers the status, and streams an uplink event when the link goes down and comes back', async () => {
      const app = createHomeApp(store, { uplinkStatus: () => uplink.status() });
      const get = async (): Promise<Body> => (await (await app.request('/api/uplink')).json()) as Body;

      const before = await get();
      expect(before).toMatchObject({
        configured: true,
        endpoint: streams?.endpoint,
        link: 'unknown',
        backlog: { records: 0, max_bytes: 1024 * 1024, policy: 'reject-new', persisted: false },
      });
      expect(Object.keys(before.streams)).toEqual([STREAMS.metrics]);

      await uplink.handler(STREAMS.metrics)(batch(3));
      const up = await until('the first records sent', async () => {
        const s = await get();
        return s.link === 'up' && s.backlog.records === 0 ? s : undefined;
      });
      expect(up.streams[STREAMS.metrics]).toMatchObject({ records: 0, sent_records: 3, dropped: {} });
      expect(up.last_success).not.toBeNull();

      // The event stream: the status once at the start, then each change.
      const response = await app.request('/api/events');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let buffered = '';
      const events: Body[] = [];
      const nextUplinkEvent = async (what: string, match: (s: Body) => boolean): Promise<Body> => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const found = events.find(match);
          if (found) {
            events.splice(0, events.indexOf(found) + 1);
            return found;
          }
          if (Date.now() > deadline)
            throw new Error(`no uplink event with ${what} within 30 s; got ${JSON.stringify(events).slice(0, 500)}`);
          const { value, done } = await within(reader.read(), `an uplink event with ${what}`, deadline - Date.now(), () =>
            JSON.stringify(events).slice(0, 500),
          );
          if (done) throw new Error(`the event stream ended before an uplink event with ${what}`);
          buffered += decoder.decode(value);
          const blocks = buffered.split('\n\n');
          buffered = blocks.pop() ?? '';
          for (const block of blocks) {
            const lines = block.split('\n');
            if (!lines.includes('event: uplink')) continue;
            const data = lines.find((l) => l.startsWith('data: '));
            if (data) events.push(JSON.parse(data.slice('data: '.length)) as Body);
          }
        }
      };
      await nextUplinkEvent('link up', (s) => s.configured === true && s.link === 'up');

      await streams?.stop();
      streams = undefined;
      await uplink.handler(STREAMS.metrics)(batch(2));
      const down = await nextUplinkEvent('link down', (s) => s.link === 'down');
      expect(down.backlog.records).toBe(2);
      expect(down.streams[STREAMS.metrics].records).toBe(2);
      expect(down.last_error.message).toEqual(expect.any(String));
      expect(down.consecutive_failures).toBeGreaterThan(0);

      streams = await startHomeStreams({ port });
      const back = await nextUplinkEvent('link up again', (s) => s.link === 'up');
      expect(Date.parse(back.link_since)).toBeGreaterThan(Date.parse(down.link_since));
      const sent = await until('the waiting records sent', async () => {
        const s = await get();
        return s.backlog.records === 0 ? s : undefined;
      });
      expect(sent.streams[STREAMS.metrics].sent_records).toBe(5);
      await reader.cancel();
    }, 90_000);
  });
});

describe('uplinkEventDue', () => {
  const status = (link: UplinkStatus['link'], records: number): UplinkStatus => ({ link, backlog: { records } }) as UplinkStatus;

  it('sends the first status, a change of link, an emptied backlog, and a waiting one every few seconds', () => {
    expect(uplinkEventDue(undefined, status('unknown', 0), 0)).toBe(true);
    const mark = { link: 'up' as const, records: 0, at: 1000 };
    expect(uplinkEventDue(mark, status('up', 0), 60_000)).toBe(false);
    expect(uplinkEventDue(mark, status('down', 0), 1001)).toBe(true);
    const waiting = { link: 'down' as const, records: 5, at: 1000 };
    expect(uplinkEventDue(waiting, status('down', 7), 1000 + UPLINK_BACKLOG_EVENT_MS - 1)).toBe(false);
    expect(uplinkEventDue(waiting, status('down', 7), 1000 + UPLINK_BACKLOG_EVENT_MS)).toBe(true);
    expect(uplinkEventDue(waiting, status('down', 0), 1001)).toBe(true);
  });
});
