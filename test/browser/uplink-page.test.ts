/// <reference lib="dom" />
/**
 * The uplink on the home page in a real browser: `npm start --home-endpoint` forwarding to a
 * home-streams emulator that the test stops and starts again. The header shows the link up,
 * then down with a backlog that grows while the home is away, then up again; a home served
 * without an uplink says so. The tests run in order on one page and one pipeline.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type HomeStreams, startHomeStreams } from '../../local/home-streams';
import { type RunningHome, startHomeServer } from '../../home/serve';
import { HomeStore } from '../../home/store';
import type { RunningPipeline } from './home-process';
import { type PageSession, START_MS, startPageSession, TEST_MS } from './page-session';

const TESTS = {
  up: 'the header shows the link up and the Uplink view lists the forwarded streams',
  down: 'the home streams stop: the link shows down, with a backlog that grows and the error',
  back: 'the home streams come back: the link shows up again and the backlog is sent',
  none: 'a home without an uplink says so in the header and the Uplink view',
} as const;

let streams: HomeStreams | undefined;
let streamsPort: number;
let session: PageSession | undefined;
let scratch: string;
let pipeline: RunningPipeline | undefined;
let page: Page;

beforeAll(async () => {
  streams = await startHomeStreams({ port: 0 });
  streamsPort = Number(new URL(streams.endpoint).port);
  const endpoint = streams.endpoint;
  session = await startPageSession({
    tests: Object.values(TESTS),
    name: 'uplink-browser',
    count: 6000,
    args: () => ['--home-endpoint', endpoint, '--uplink-interval', '0.2', '--uplink-retry-max', '1'],
  });
  ({ scratch, pipeline, page } = session);
}, START_MS);

afterAll(async () => {
  await session?.stop();
  await streams?.stop();
}, 60_000);

const waitInPage = (what: string, predicate: (arg: never) => unknown, arg: string | number | null = null): Promise<void> =>
  (session as PageSession).waitInPage(what, predicate, arg, { polling: 250 });

const linkShows = (state: string) =>
  waitInPage(
    `the header's uplink indicator to show the link ${state}`,
    (want: string) => document.querySelector('[data-testid="uplink-indicator"]')?.getAttribute('data-link') === want,
    state,
  );
const backlogShown = async (): Promise<number> =>
  Number(((await page.getByTestId('uplink-backlog-records').textContent()) ?? '').replace(/,/g, ''));

it(
  TESTS.up,
  async () => {
    await page.goto(`${pipeline?.url}/#/uplink`);
    await page.getByTestId('view-uplink').waitFor();
    await linkShows('up');
    expect(await page.getByTestId('uplink-link').textContent()).toBe('up');
    const rows = await page.getByTestId('uplink-stream').evaluateAll((els) => els.map((e) => e.getAttribute('data-stream')));
    expect(rows).toEqual(['metrics', 'rejected-images', 'uncertain-images']);
    expect(await page.getByTestId('uplink-last-success').textContent()).not.toBe('none yet');
  },
  TEST_MS,
);

it(
  TESTS.down,
  async () => {
    await streams?.stop();
    streams = undefined;
    await linkShows('down');
    expect(await page.getByTestId('uplink-indicator').textContent()).toMatch(/uplink down since \d\d:\d\d:\d\d/);
    expect(await page.getByTestId('uplink-last-error').textContent()).not.toBe('none');
    // The Test camera's frames keep coming: the backlog grows while the home is away.
    const first = await backlogShown();
    await waitInPage(
      `the backlog shown to grow past ${first} records`,
      (past: number) =>
        Number((document.querySelector('[data-testid="uplink-backlog-records"]')?.textContent ?? '').replace(/,/g, '')) > past,
      first,
    );
    await waitInPage(
      'the uncertain-images row to show records waiting',
      () =>
        Number(
          document.querySelector('[data-testid="uplink-stream"][data-stream="uncertain-images"]')?.getAttribute('data-records'),
        ) > 0,
    );
  },
  TEST_MS,
);

it(
  TESTS.back,
  async () => {
    const waiting = await backlogShown();
    streams = await startHomeStreams({ port: streamsPort });
    await linkShows('up');
    expect(await page.getByTestId('uplink-link').textContent()).toBe('up');
    await waitInPage(
      `the backlog shown to fall below the ${waiting} records that waited`,
      (before: number) =>
        Number((document.querySelector('[data-testid="uplink-backlog-records"]')?.textContent ?? '').replace(/,/g, '')) < before,
      waiting,
    );
  },
  TEST_MS,
);

it(
  TESTS.none,
  async () => {
    const store = new HomeStore(join(scratch, 'standalone-data'));
    let home: RunningHome | undefined;
    try {
      // As npm run home serves it: reading the home streams, forwarding nothing.
      home = await startHomeServer(store, {
        port: 0,
        source: { endpoint: streams?.endpoint ?? 'http://127.0.0.1:4568', prefix: '' },
      });
      await page.goto(`${home.url}/#/uplink`);
      await page.getByTestId('uplink-not-configured').waitFor();
      await linkShows('not-configured');
      expect(await page.getByTestId('uplink-indicator').textContent()).toContain('uplink not configured');
    } finally {
      await home?.close();
      store.close();
    }
  },
  TEST_MS,
);
