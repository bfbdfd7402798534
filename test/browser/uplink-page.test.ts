/// <reference lib="dom" />
/**
 * The uplink on the home page in a real browser: `npm start --home-endpoint` forwarding to a
 * home-streams emulator that the test stops and starts again. The header shows the link up,
 * then down with a backlog that grows while the home is away, then up again; a home served
 * without an uplink says so. The tests run in order on one page and one pipeline.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type HomeStreams, startHomeStreams } from '../../local/home-streams';
import { type RunningHome, startHomeServer } from '../../home/serve';
import { HomeStore } from '../../home/store';
import { type Browser, launchChromium, requireChromium } from './chromium';
import { type RunningPipeline, startPipeline } from './home-process';

const TESTS = {
  up: 'the header shows the link up and the Uplink view lists the forwarded streams',
  down: 'the home streams stop: the link shows down, with a backlog that grows and the error',
  back: 'the home streams come back: the link shows up again and the backlog is sent',
  none: 'a home without an uplink says so in the header and the Uplink view',
} as const;

const WAIT_MS = 60_000;
const TEST_MS = 180_000;

let scratch: string;
let streams: HomeStreams | undefined;
let streamsPort: number;
let pipeline: RunningPipeline | undefined;
let browser: Browser | undefined;
let page: Page;
const pageLog: string[] = [];

beforeAll(async () => {
  requireChromium(Object.values(TESTS));
  scratch = mkdtempSync(join(tmpdir(), 'uplink-browser-'));
  streams = await startHomeStreams({ port: 0 });
  streamsPort = Number(new URL(streams.endpoint).port);
  pipeline = await startPipeline(
    [
      '--count',
      '6000',
      '--rate',
      '20',
      '--camera',
      'Test',
      '--port',
      '0',
      '--home-port',
      '0',
      '--window',
      '2',
      '--data',
      join(scratch, 'home-data'),
      '--out',
      join(scratch, 'out'),
      '--quiet',
      '--home-endpoint',
      streams.endpoint,
      '--uplink-interval',
      '0.2',
      '--uplink-retry-max',
      '1',
    ],
    180_000,
  );
  browser = await launchChromium();
  page = await browser.context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageLog.push(`console error: ${message.text()}`);
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await pipeline?.stop();
  await streams?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, 60_000);

async function waitInPage(what: string, predicate: (arg: never) => unknown, arg: string | number | null = null): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: string | number | null) => unknown, arg, { timeout: WAIT_MS, polling: 250 });
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(
      `waited ${WAIT_MS / 1000} s for ${what} at ${page.url()}: ${reason}\n` +
        `--- page errors ---\n${pageLog.slice(-20).join('\n')}\n--- npm start output ---\n${pipeline?.output().slice(-3000)}`,
    );
  }
}

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
