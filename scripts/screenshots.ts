/**
 * `npx tsx scripts/screenshots.ts [--out docs]`: the README's pictures of the home page,
 * taken from a real run. Starts `npm start -- --serve` with a Test camera (every frame goes
 * home) and 2 s metrics windows, waits for a minute of windows, labels the least confident
 * frames with the digit their MNIST frame carries (as a reviewer would), then saves
 * 1280x800 PNGs of the live metrics, review queue, confusion and dataset views, and of the
 * rejected view after a few malformed records (bad JSON, a JPEG, a bad camera id).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { Page } from 'playwright-core';
import { createKinesisClient } from '../functions/lib/kinesis';
import { launchChromium, requireChromium } from '../test/browser/chromium';
import { startPipeline } from '../test/browser/home-process';

const WINDOWS_WANTED = 30;
const LABELLED_WANTED = 120;
const WAIT_MS = 180_000;

interface FramePage {
  frames: { frame_id: string; camera_label?: number }[];
}

async function api<T>(base: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(
    `${base}${path}`,
    body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
  );
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Polls `check` until it holds; throws `what` after WAIT_MS. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function shot(page: Page, out: string, name: string): Promise<void> {
  const file = join(out, `home-${name}.png`);
  await page.screenshot({ path: file });
  console.log(`wrote ${file}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'docs' } } });
  const out = resolve(values.out ?? 'docs');
  requireChromium(['scripts/screenshots.ts']);
  mkdirSync(out, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), 'home-screenshots-'));
  const pipeline = await startPipeline(
    [
      '--count',
      '6000',
      '--rate',
      '50',
      '--camera',
      'Test',
      '--port',
      '0',
      '--home-port',
      '0',
      '--window',
      '2',
      '--data',
      join(scratch, 'data'),
      '--out',
      join(scratch, 'out'),
      '--quiet',
    ],
    WAIT_MS,
  );
  const browser = await launchChromium();
  try {
    const base = pipeline.url;
    console.log(`pipeline serving the home on ${base}; waiting for ${WINDOWS_WANTED} windows...`);
    await until(
      `${WINDOWS_WANTED} metrics windows`,
      async () => (await api<{ windows: number }>(base, '/api/status')).windows >= WINDOWS_WANTED,
    );

    // A reviewer's first pass: the least confident frames, labelled with their true digit.
    const { frames } = await api<FramePage>(base, `/api/frames?sort=confidence&limit=${LABELLED_WANTED + 40}`);
    const byDigit = new Map<number, string[]>();
    for (const f of frames.slice(40)) {
      if (f.camera_label === undefined) continue;
      byDigit.set(f.camera_label, [...(byDigit.get(f.camera_label) ?? []), f.frame_id]);
    }
    for (const [digit, ids] of byDigit) await api(base, '/api/labels/bulk', { frame_ids: ids, label: digit });

    // Records a misconfigured camera would send: the Rejected view explains each.
    const now = () => new Date().toISOString();
    const bad = [
      '{"image": "iVBORw0KGgo", "camera": "Dock-4", "timestamp": ',
      JSON.stringify({
        image: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 74, 70, 73, 70]).toString('base64'),
        camera: 'Dock-4',
        timestamp: now(),
      }),
      JSON.stringify({ image: 'iVBORw0KGgo=', camera: 'dock 4/left', timestamp: now() }),
    ];
    const kinesis = createKinesisClient({ endpoint: pipeline.kinesis, region: 'us-east-1' });
    for (let round = 0; round < 3; round += 1) {
      await kinesis.send(
        new PutRecordsCommand({
          StreamName: 'camera-images',
          Records: bad.map((data, i) => ({ PartitionKey: `bad-${i}`, Data: Buffer.from(data) })),
        }),
      );
    }
    kinesis.destroy();
    await until('the malformed records to be rejected', async () => {
      const rejected = await api<{ reasons: { count: number }[] }>(base, '/api/rejected');
      return rejected.reasons.reduce((n, r) => n + r.count, 0) >= bad.length * 3;
    });

    const page = await browser.context.newPage();
    await page.goto(`${base}/#/live`);
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="chart-throughput"]')?.getAttribute('data-drawn')) >= n,
      WINDOWS_WANTED,
      { timeout: WAIT_MS },
    );
    await shot(page, out, 'live');

    await page.goto(`${base}/#/queue?sort=confidence`);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="tile"] img.pixelated').length >= 10, null, {
      timeout: WAIT_MS,
    });
    // Lazy images below the fold never load: wait only for the ones on screen.
    await page.waitForFunction(
      () =>
        [...document.images]
          .filter((img) => img.getBoundingClientRect().top < innerHeight)
          .every((img) => img.complete && img.naturalWidth > 0),
      null,
      { timeout: WAIT_MS },
    );
    // Label the first three the way a reviewer does: the digit key, focus moves on.
    for (let i = 0; i < 3; i += 1) {
      const id = await page.locator('[data-testid="tile"][aria-current="true"]').getAttribute('data-frame-id');
      const frame = await api<{ camera_label?: number; result_class: number }>(
        base,
        `/api/frames/${encodeURIComponent(id ?? '')}`,
      );
      await page.keyboard.press(String(frame.camera_label ?? frame.result_class));
      await page.waitForFunction(
        (fid) => {
          const tile = document.getElementById(`tile-${fid}`);
          return tile?.hasAttribute('data-label') && !tile.hasAttribute('data-pending');
        },
        id,
        { timeout: WAIT_MS },
      );
    }
    await page.keyboard.down('Control');
    await page.locator('[data-testid="tile"]').nth(6).click();
    await page.locator('[data-testid="tile"]').nth(8).click();
    await page.keyboard.up('Control');
    await shot(page, out, 'queue');

    await page.goto(`${base}/#/confusion`);
    await page.waitForSelector('[data-testid="confusion-cell"]:not([disabled])', { timeout: WAIT_MS });
    await shot(page, out, 'confusion');

    await page.goto(`${base}/#/rejected`);
    await page.waitForSelector('[data-testid="reject-reason"]', { timeout: WAIT_MS });
    await shot(page, out, 'rejected');

    await page.goto(`${base}/#/dataset`);
    await page.click('[data-testid="export-button"]');
    await page.waitForSelector('[data-testid="export-result"]', { timeout: WAIT_MS });
    await shot(page, out, 'dataset');
  } finally {
    await browser.close();
    await pipeline.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
