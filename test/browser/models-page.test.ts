/// <reference lib="dom" />
/**
 * The Models view in a real browser against a real `npm start` whose models folder is a
 * temporary copy (the shipped model plus two small candidates): put a candidate in shadow and
 * see the comparison arrive, promote it from the page and see the edge score with it, then
 * roll back. The tests run in order on one page and one pipeline.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { DEFAULT_MODELS_ROOT } from '../../training/model-registry';
import { addCandidate } from '../helpers/model-registry-fixtures';
import { type Browser, launchChromium, requireChromium } from './chromium';
import { type RunningPipeline, startPipeline } from './home-process';

const TESTS = {
  list: 'the versions are listed with their state and gate checks; a candidate whose gates failed cannot be promoted',
  shadow: 'shadow from the page: the agreement rate of the candidate arrives with the next windows',
  promote: 'promote from the page, after confirming: the edge scores with the new version',
  rollback: 'roll back from the page, after confirming: the parent is current again',
} as const;

const WAIT_MS = 60_000;
const TEST_MS = 180_000;

let scratch: string;
let root: string;
let pipeline: RunningPipeline | undefined;
let browser: Browser | undefined;
let page: Page;
const pageLog: string[] = [];

beforeAll(async () => {
  requireChromium(Object.values(TESTS));
  scratch = mkdtempSync(join(tmpdir(), 'models-browser-'));
  root = join(scratch, 'models');
  // A copy of the shipped model: the page's buttons change this folder's registry, never models/.
  mkdirSync(root);
  for (const file of ['digits.onnx', 'model-card.json']) copyFileSync(join(DEFAULT_MODELS_ROOT, file), join(root, file));
  addCandidate(root, '1.1.0');
  addCandidate(root, '1.2.0', { passed: false });
  pipeline = await startPipeline(
    [
      '--count',
      '4000',
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
    ],
    180_000,
    { MODEL_ROOT: root },
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
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}, 60_000);

async function waitInPage(what: string, predicate: (arg: never) => unknown, arg: string | null = null): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: string | null) => unknown, arg, { timeout: WAIT_MS, polling: 'raf' });
  } catch (error: unknown) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new Error(
      `waited ${WAIT_MS / 1000} s for ${what} at ${page.url()}: ${reason}\n` +
        `--- page errors ---\n${pageLog.slice(-20).join('\n')}\n--- npm start output ---\n${pipeline?.output().slice(-3000)}`,
    );
  }
}

/** Waits until the row of `version` shows `state`. */
const rowState = (version: string, state: string) =>
  waitInPage(
    `the row of ${version} to show state ${state}`,
    (want: string) => {
      const [v, s] = want.split(' ');
      return document.querySelector(`[data-testid="model-row"][data-version="${v}"]`)?.getAttribute('data-state') === s;
    },
    `${version} ${state}`,
  );

const row = (version: string) => page.locator(`[data-testid="model-row"][data-version="${version}"]`);
const registry = () =>
  JSON.parse(readFileSync(join(root, 'registry.json'), 'utf8')) as { current: string; shadow: string | null };

/** Waits, with a bound and a message, until the home has seen a prediction scored by `version`. */
async function waitForVersionAtEdge(version: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const status = (await (await fetch(`${pipeline?.url}/api/metrics`)).json()) as {
      windows: Array<{ window: { start: string }; model_versions: Record<string, number> }>;
    };
    const latest = status.windows.at(-1);
    if (latest && Object.keys(latest.model_versions).join() === version) return;
    if (Date.now() > deadline)
      throw new Error(
        `no metrics window scored only by ${version} within ${WAIT_MS / 1000} s; latest: ${JSON.stringify(latest?.model_versions)}`,
      );
    await page.waitForTimeout(250);
  }
}

it(
  TESTS.list,
  async () => {
    await page.goto(`${pipeline?.url}/#/models`);
    await page.getByTestId('tab-models').waitFor();
    await rowState('1.0.0', 'current');
    await rowState('1.1.0', 'candidate');
    await rowState('1.2.0', 'candidate');
    expect(await row('1.2.0').locator('[data-testid="gate"][data-passed="false"]').getAttribute('data-gate')).toBe(
      'held_out_better',
    );
    expect(await row('1.2.0').getByTestId('promote-button').isDisabled()).toBe(true);
    expect(await row('1.1.0').getByTestId('promote-button').isDisabled()).toBe(false);
    expect(await page.getByTestId('rollback-button').isDisabled()).toBe(true);
  },
  TEST_MS,
);

it(
  TESTS.shadow,
  async () => {
    await row('1.1.0').getByTestId('shadow-button').click();
    await rowState('1.1.0', 'shadow');
    expect(registry()).toMatchObject({ current: '1.0.0', shadow: '1.1.0' });
    await waitInPage('the agreement of 1.1.0 with 1.0.0', () => {
      const stat = document.querySelector('[data-testid="shadow-agreement"]');
      return stat?.getAttribute('data-candidate') === '1.1.0' && Number(stat.getAttribute('data-agreement')) > 0;
    });
    const agreement = Number(await page.getByTestId('shadow-agreement').getAttribute('data-agreement'));
    expect(agreement).toBeGreaterThan(0);
    expect(agreement).toBeLessThanOrEqual(1);
  },
  TEST_MS,
);

it(
  TESTS.promote,
  async () => {
    await row('1.1.0').getByTestId('promote-button').click();
    // Nothing changes before the confirmation.
    await page.getByTestId('confirm').waitFor();
    expect(registry().current).toBe('1.0.0');
    await page.getByTestId('confirm-yes').click();
    await rowState('1.1.0', 'current');
    await rowState('1.0.0', 'previous');
    expect(registry()).toMatchObject({ current: '1.1.0', shadow: null });
    await waitForVersionAtEdge('1.1.0');
    expect(await page.getByTestId('rollback-button').textContent()).toContain('1.0.0');
  },
  TEST_MS,
);

it(
  TESTS.rollback,
  async () => {
    await page.getByTestId('rollback-button').click();
    await page.getByTestId('confirm').waitFor();
    await page.getByTestId('confirm-yes').click();
    await rowState('1.0.0', 'current');
    await rowState('1.1.0', 'previous');
    expect(registry().current).toBe('1.0.0');
    await waitForVersionAtEdge('1.0.0');
    expect(await page.getByTestId('rollback-button').isDisabled()).toBe(true);
  },
  TEST_MS,
);
