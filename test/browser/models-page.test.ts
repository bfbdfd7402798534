/// <reference lib="dom" />
/**
 * The Models view in a real browser against a real `npm start` whose models folder is a
 * temporary copy (the shipped model plus two small candidates): put a candidate in shadow and
 * see the comparison arrive, promote it from the page and see the edge score with it, then
 * roll back. The tests run in order on one page and one pipeline.
 */
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { DEFAULT_MODELS_ROOT } from '../../training/model-registry';
import { addCandidate } from '../helpers/model-registry-fixtures';
import type { RunningPipeline } from './home-process';
import { type PageSession, START_MS, startPageSession, TEST_MS, WAIT_MS } from './page-session';

const TESTS = {
  list: 'the versions are listed with their state and gate checks; a candidate whose gates failed cannot be promoted',
  shadow: 'shadow from the page: the agreement rate of the candidate arrives with the next windows',
  promote: 'promote from the page, after confirming: the edge scores with the new version',
  rollback: 'roll back from the page, after confirming: the parent is current again',
} as const;

let root: string;
let session: PageSession | undefined;
let pipeline: RunningPipeline | undefined;
let page: Page;

beforeAll(async () => {
  session = await startPageSession({
    tests: Object.values(TESTS),
    name: 'models-browser',
    count: 4000,
    // A copy of the shipped model: the page's buttons change this folder's registry, never models/.
    prepare: (scratch) => {
      root = join(scratch, 'models');
      mkdirSync(root);
      for (const file of ['digits.onnx', 'model-card.json']) copyFileSync(join(DEFAULT_MODELS_ROOT, file), join(root, file));
      addCandidate(root, '1.1.0');
      addCandidate(root, '1.2.0', { passed: false });
    },
    env: () => ({ MODEL_ROOT: root }),
  });
  ({ pipeline, page } = session);
}, START_MS);

afterAll(async () => {
  await session?.stop();
}, 60_000);

const waitInPage = (what: string, predicate: (arg: never) => unknown, arg: string | null = null): Promise<void> =>
  (session as PageSession).waitInPage(what, predicate, arg);

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
