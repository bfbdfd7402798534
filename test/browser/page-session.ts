/**
 * One page on one `npm start`: what every browser suite starts in its `beforeAll` (a scratch
 * folder, the pipeline with its home page, Chromium, a page whose errors are kept) and the
 * bounded wait on the page that reports them when it runs out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { type Browser, launchChromium, requireChromium } from './chromium';
import { type RunningPipeline, startPipeline } from './home-process';

/** Bound for each wait on the page: CI machines are shared and slow. */
export const WAIT_MS = 60_000;
/** Bound for one test: a few waits in a row. */
export const TEST_MS = 180_000;
/** Bound for starting the pipeline and the browser. */
export const START_MS = 300_000;

export type PageArg = string | number | null | (string | null)[];

export interface PageSession {
  /** A folder of the suite's own, removed on stop. */
  scratch: string;
  pipeline: RunningPipeline;
  page: Page;
  /**
   * Waits for `predicate` to hold in the page; after `timeout` fails with `what`, the page's
   * URL, its latest errors and the end of the pipeline's output.
   */
  waitInPage(
    what: string,
    predicate: (arg: never) => unknown,
    arg?: PageArg,
    options?: { timeout?: number; polling?: 'raf' | number },
  ): Promise<void>;
  stop(): Promise<void>;
}

export interface PageSessionOptions {
  /** The suite's test names: a missing Chromium fails naming them. */
  tests: readonly string[];
  /** Prefix of the scratch folder's name. */
  name: string;
  /** Frames the Test camera sends (20 a second): enough to keep windows closing through the suite. */
  count: number;
  /** Prepares the scratch folder before the pipeline starts. */
  prepare?(scratch: string): void;
  /** Arguments after the common ones. */
  args?(scratch: string): string[];
  env?(scratch: string): NodeJS.ProcessEnv;
  /** Keep the page's console warnings too, not only its errors. */
  keepWarnings?: boolean;
}

/**
 * Starts `npm start --serve` with a Test camera at 20 frames/s and 2 s windows on free ports,
 * then Chromium on its home page's origin. On a failure half-way, stops what it had started.
 */
export async function startPageSession(options: PageSessionOptions): Promise<PageSession> {
  requireChromium(options.tests);
  const scratch = mkdtempSync(join(tmpdir(), `${options.name}-`));
  let pipeline: RunningPipeline | undefined;
  let browser: Browser | undefined;
  const stop = async (): Promise<void> => {
    await browser?.close();
    await pipeline?.stop();
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    options.prepare?.(scratch);
    // The home data and outputs in the scratch folder; windows close every 2 s.
    const args = [
      ...['--count', String(options.count), '--rate', '20', '--camera', 'Test', '--port', '0', '--home-port', '0'],
      ...['--window', '2', '--data', join(scratch, 'home-data'), '--out', join(scratch, 'out'), '--quiet'],
      ...(options.args?.(scratch) ?? []),
    ];
    pipeline = await startPipeline(args, 180_000, options.env?.(scratch) ?? {});
    browser = await launchChromium();
    const page = await browser.context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const pageLog: string[] = [];
    page.on('pageerror', (error) => pageLog.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      const type = message.type();
      if (type === 'error' || (options.keepWarnings && type === 'warning')) pageLog.push(`console ${type}: ${message.text()}`);
    });
    const running = pipeline;
    return {
      scratch,
      pipeline: running,
      page,
      stop,
      async waitInPage(what, predicate, arg = null, { timeout = WAIT_MS, polling = 'raf' } = {}) {
        try {
          await page.waitForFunction(predicate as (arg: PageArg) => unknown, arg, { timeout, polling });
        } catch (error: unknown) {
          const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
          throw new Error(
            `waited ${timeout / 1000} s for ${what} at ${page.url()}: ${reason}\n` +
              `--- page errors ---\n${pageLog.slice(-20).join('\n')}\n--- npm start output ---\n${running.output().slice(-3000)}`,
          );
        }
      },
    };
  } catch (error: unknown) {
    await stop();
    throw error;
  }
}
