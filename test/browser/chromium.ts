/**
 * Debian's Chromium driven by playwright-core (`npx playwright install` cannot download
 * here). A missing browser fails the tests with the command that installs it: the browser
 * tests are part of `npm test` and must never pass by not running.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Flags for a quiet, reproducible headless run: no network of its own, no first-run work. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Throws, naming the tests that cannot run and how to install the browser, when Chromium is
 * not at {@link CHROMIUM_PATH}.
 */
export function requireChromium(tests: readonly string[]): void {
  if (existsSync(CHROMIUM_PATH)) return;
  throw new Error(
    `Chromium is not installed at ${CHROMIUM_PATH}, so these browser tests could not run:\n` +
      tests.map((t) => `  - ${t}`).join('\n') +
      '\nInstall it with: apt-get install -y chromium (or set CHROMIUM_PATH to a Chromium binary).',
  );
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium headless with a fresh profile folder, removed on close. */
export async function launchChromium(viewport = { width: 1280, height: 800 }): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'home-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: FLAGS,
    viewport,
    timeout: 60_000,
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
