/// <reference lib="dom" />
/**
 * The data folder's bound in a real browser against a real `npm start` whose home may keep
 * only 800 kB: as frames keep arriving the home prunes the oldest unlabelled ones, and the
 * page drops their tiles without a reload or an error, keeps the labelled ones, and shows the
 * folder's size, its bound and the last prune.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type Browser, launchChromium, requireChromium } from './chromium';
import { type RunningPipeline, startPipeline } from './home-process';

const TEST = 'pruned frames leave the queue without a reload; labelled ones stay; the dataset view shows the bound';
const WAIT_MS = 90_000;

let scratch: string;
let pipeline: RunningPipeline | undefined;
let browser: Browser | undefined;
let page: Page;
const pageLog: string[] = [];

beforeAll(async () => {
  requireChromium([TEST]);
  scratch = mkdtempSync(join(tmpdir(), 'home-retention-browser-'));
  // 50 frames/s for 80 s, every one sent home: the 800 kB bound is passed within seconds and
  // again every few seconds after.
  pipeline = await startPipeline(
    [
      ...['--count', '4000', '--rate', '50', '--camera', 'Test', '--port', '0', '--home-port', '0', '--window', '2'],
      ...['--max-gb', '0.0008', '--data', join(scratch, 'home-data'), '--out', join(scratch, 'out'), '--quiet'],
    ],
    180_000,
  );
  browser = await launchChromium();
  page = await browser.context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageLog.push(`console error: ${message.text()} (${message.location().url})`);
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await pipeline?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, 60_000);

async function waitInPage(what: string, predicate: (arg: never) => unknown, arg: string | string[]): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: string | string[]) => unknown, arg, { timeout: WAIT_MS, polling: 250 });
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(
      `waited ${WAIT_MS / 1000} s for ${what}: ${reason}\n--- page ---\n${pageLog.join('\n')}\n--- npm start ---\n${pipeline?.output().slice(-3000)}`,
    );
  }
}

const api = async (path: string, init?: RequestInit): Promise<Response> => fetch(`${pipeline?.url}${path}`, init);

it(TEST, async () => {
  // Arrange: the queue, oldest first, every frame (labelled ones too).
  await page.goto(`${pipeline?.url}/#/queue?status=all&sort=oldest`);
  await waitInPage('five tiles in the queue', () => document.querySelectorAll('[data-testid="tile"]').length >= 5, '');
  const shown = await page
    .locator('[data-testid="tile"]')
    .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id') as string));
  // The two oldest shown get a person's label: they must outlive every prune.
  const kept = shown.slice(0, 2);
  for (const frameId of kept) {
    const response = await api('/api/labels', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ frame_id: frameId, label: 'accept' }),
    });
    expect(response.status).toBe(201);
  }
  const doomed = shown.slice(2, 5);

  // Act: frames keep arriving; the home prunes the oldest unlabelled ones.
  await waitInPage(
    'the oldest unlabelled tiles to leave the queue, the labelled ones to stay',
    ([a, b, ...gone]: string[]) => {
      const ids = new Set([...document.querySelectorAll('[data-testid="tile"]')].map((t) => t.getAttribute('data-frame-id')));
      return ids.has(a as string) && ids.has(b as string) && gone.every((id) => !ids.has(id));
    },
    [...kept, ...doomed],
  );

  // Assert: the API agrees, a pruned image is gone with a sentence, the labels are whole.
  for (const frameId of doomed) {
    const image = await api(`/api/frames/${encodeURIComponent(frameId)}/image.png`);
    expect(image.status).toBe(410);
    expect(((await image.json()) as { error: string }).error).toMatch(/was pruned at/);
  }
  for (const frameId of kept) {
    expect((await api(`/api/frames/${encodeURIComponent(frameId)}/image.png`)).status).toBe(200);
  }
  const retention = (await (await api('/api/retention')).json()) as {
    bound: { max_bytes: number };
    last_prune: { pruned: number } | null;
  };
  expect(retention.bound.max_bytes).toBe(800_000);
  expect(retention.last_prune?.pruned).toBeGreaterThan(0);

  await page.click('[data-testid="tab-dataset"]');
  await waitInPage(
    'the data folder panel with its bound and the last prune',
    () =>
      /of 800 kB/.test(document.querySelector('[data-testid="retention-size"]')?.textContent ?? '') &&
      /last pruned .* frames/.test(document.querySelector('[data-testid="retention-last"]')?.textContent ?? ''),
    '',
  );
  expect(pageLog).toEqual([]);
}, 240_000);
