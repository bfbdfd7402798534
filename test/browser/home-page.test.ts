/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The home page in a real browser against a real `npm start`: Chromium (Debian's, through
 * playwright-core) opens the printed address while a Test camera sends every frame home.
 * The tests run in order on one page and one pipeline, as a person would use them: watch the
 * charts, see a window arrive, label with the keyboard, undo, accept a group, export.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import type { Page } from 'playwright-core';
import { createKinesisClient } from '../../functions/lib/kinesis';
import type { RunningPipeline } from './home-process';
import { type PageArg, type PageSession, START_MS, startPageSession, TEST_MS, WAIT_MS } from './page-session';

const TESTS = {
  charts: 'the live charts draw the metrics windows',
  live: 'a new window reaches the table without a reload',
  keys: 'keys 0-9 (and x) label the focused frame and move the focus on; s skips',
  undo: 'u undoes the last label',
  steady: 'frames arriving are announced, not inserted under the focused tile',
  select: 'arrows move the focus; shift-click selects a range, ctrl-click toggles one, Esc clears',
  bulk: "a predicted-class group is selected and accepted as the model's guess in one go",
  confusion: 'a confusion cell opens exactly its frames in the queue',
  export: 'the exported dataset folder holds exactly the labels given on the page',
  markup: 'markup in a rejected record is shown as text, never run',
} as const;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

type Label = number | 'not_a_digit';

let session: PageSession | undefined;
let pipeline: RunningPipeline | undefined;
let page: Page;
/** The labels the tests gave through the page, as the export must hold them. */
const given = new Map<string, Label>();
/** The model's guess for each frame in `given`. */
const predictedOf = new Map<string, number>();

beforeAll(async () => {
  // A Test camera sends every frame home; a slow, steady rate keeps windows closing (one
  // every 2 s) and frames arriving for 400 s, well past a slow run of these tests.
  session = await startPageSession({ tests: Object.values(TESTS), name: 'home-browser', count: 8000, keepWarnings: true });
  ({ pipeline, page } = session);
}, START_MS);

afterAll(async () => {
  await session?.stop();
}, 60_000);

/** Waits for `predicate` in the page, failing with `what` (and the page's URL) when it never holds. */
const waitInPage = (what: string, predicate: (arg: never) => unknown, arg: PageArg, timeout = WAIT_MS): Promise<void> =>
  (session as PageSession).waitInPage(what, predicate, arg, { timeout });

async function apiGet<T>(path: string): Promise<T> {
  const response = await fetch(`${pipeline?.url}${path}`);
  if (!response.ok) throw new Error(`GET ${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

interface FrameAnswer {
  frame_id: string;
  result_class: number;
  label?: Label;
}

const frameLabel = async (id: string): Promise<Label | undefined> =>
  (await apiGet<FrameAnswer>(`/api/frames/${encodeURIComponent(id)}`)).label;

/** The tile of a frame (the id quoted as a CSS string). */
const tile = (frameId: string) => page.locator(`[data-testid="tile"][data-frame-id=${JSON.stringify(frameId)}]`);

const focusedId = (): Promise<string | null> =>
  page.locator('[data-testid="tile"][aria-current="true"]').getAttribute('data-frame-id');

/** Waits until the tile of `frameId` is the focused one. */
const waitForFocus = (frameId: string | null | undefined): Promise<void> =>
  waitInPage(
    `the focus on tile ${frameId}`,
    (id: string) => document.querySelector('[data-testid="tile"][aria-current="true"]')?.getAttribute('data-frame-id') === id,
    frameId ?? '',
  );

/** Waits until `n` tiles are selected. */
const waitForSelected = (n: number): Promise<void> =>
  waitInPage(
    `${n} selected tiles`,
    (want: number) => document.querySelectorAll('[data-testid="tile"][aria-selected="true"]').length === want,
    n,
  );

/** Waits until the tile shows `label` (undefined: no label) and its write has been answered. */
async function waitForTileLabel(id: string, label: Label | undefined): Promise<void> {
  await waitInPage(
    `tile ${id} to show label ${String(label)} with its write answered`,
    ([frameId, want]: (string | null)[]) => {
      const tile = [...document.querySelectorAll('[data-testid="tile"]')].find(
        (t) => t.getAttribute('data-frame-id') === frameId,
      );
      return tile !== undefined && tile.getAttribute('data-label') === want && !tile.hasAttribute('data-pending');
    },
    [id, label === undefined ? null : String(label)],
  );
}

it(
  TESTS.charts,
  async () => {
    // Act
    await page.goto(`${pipeline?.url}/#/live`);
    // Assess: the canvases come to hold drawn series, not just axes (pixels of the series'
    // colours). Waited for: with the first two windows a line can still be a few pixels long.
    await waitInPage(
      'the time charts to draw lines over at least two windows and the digit bars some frames (over 20 pixels of series colour each)',
      () => {
        const drawn = (testid: string) =>
          Number(document.querySelector(`[data-testid="${testid}"]`)?.getAttribute('data-drawn') ?? 0);
        if (drawn('chart-throughput') < 2 || drawn('chart-latency') < 2 || drawn('chart-digits') < 1) return false;
        const colourPixels = (testid: string, rgb: [number, number, number]): number => {
          const canvas = document.querySelector<HTMLCanvasElement>(`[data-testid="${testid}"] canvas`);
          const context = canvas?.getContext('2d');
          if (!canvas || !context) return -1;
          const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
          let n = 0;
          for (let i = 0; i < data.length; i += 4) {
            if (
              Math.abs(data[i]! - rgb[0]) < 40 &&
              Math.abs(data[i + 1]! - rgb[1]) < 40 &&
              Math.abs(data[i + 2]! - rgb[2]) < 40 &&
              data[i + 3]! > 100
            )
              n += 1;
          }
          return n;
        };
        const throughput = colourPixels('chart-throughput', [0x4c, 0x9a, 0xff]);
        // p99 is drawn over p50 and the two coincide in windows of few frames: count both.
        const latency = colourPixels('chart-latency', [0x3e, 0xcf, 0x8e]) + colourPixels('chart-latency', [0xe5, 0x53, 0x4b]);
        const digits = colourPixels('chart-digits', [0x4c, 0x9a, 0xff]);
        return throughput > 20 && latency > 20 && digits > 20;
      },
      null,
    );
    expect(await page.locator('[data-testid="window-row"]').count()).toBeGreaterThanOrEqual(2);
  },
  TEST_MS,
);

it(
  TESTS.live,
  async () => {
    // Prepare: mark this document; a reload would lose the mark.
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const newest = await page.locator('[data-testid="window-row"]').first().getAttribute('data-start');
    expect(newest).not.toBeNull();

    // Act: the pipeline keeps closing windows; wait for a newer one at the top of the table.
    await waitInPage(
      `a window newer than ${newest} in the table`,
      (before: string) => {
        const top = document.querySelector('[data-testid="window-row"]')?.getAttribute('data-start');
        return top !== undefined && top !== null && Date.parse(top) > Date.parse(before);
      },
      newest as string,
    );

    // Assess
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
  },
  TEST_MS,
);

it(
  TESTS.keys,
  async () => {
    // Prepare
    await page.goto(`${pipeline?.url}/#/queue`);
    await waitInPage(
      'at least 14 tiles in the review queue',
      () => document.querySelectorAll('[data-testid="tile"]').length >= 14,
      null,
    );
    const ids = await page
      .locator('[data-testid="tile"]')
      .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id') ?? ''));
    expect(await focusedId()).toBe(ids[0]);

    // Act + Assess: each key labels the focused tile and the focus moves to the next one.
    const keys: [string, Label][] = [...'0123456789'].map((k) => [k, Number(k)]);
    keys.push(['x', 'not_a_digit']);
    for (const [index, [key, label]] of keys.entries()) {
      const id = ids[index] as string;
      expect(await focusedId()).toBe(id);
      await page.keyboard.press(key);
      await waitForTileLabel(id, label);
      expect(await focusedId()).toBe(ids[index + 1]);
      given.set(id, label);
      predictedOf.set(id, Number(await tile(id).getAttribute('data-predicted')));
    }
    // s moves on without labelling.
    const skipped = ids[keys.length] as string;
    await page.keyboard.press('s');
    await waitInPage(
      'the focus to move past the skipped tile',
      (id: string) => document.querySelector('[aria-current="true"]')?.getAttribute('data-frame-id') !== id,
      skipped,
    );
    expect(await focusedId()).toBe(ids[keys.length + 1]);

    // The server holds what the tiles show.
    for (const [id, label] of given) expect(await frameLabel(id)).toBe(label);
    expect(await frameLabel(skipped)).toBeUndefined();
  },
  TEST_MS,
);

it(
  TESTS.undo,
  async () => {
    // Prepare: label the focused tile, then take it back.
    const id = (await focusedId()) as string;
    await page.keyboard.press('7');
    await waitForTileLabel(id, 7);
    expect(await frameLabel(id)).toBe(7);

    // Act
    await page.keyboard.press('u');

    // Assess: unlabelled again, on the page and on the server, and focused again.
    await waitForTileLabel(id, undefined);
    expect(await frameLabel(id)).toBeUndefined();
    expect(await focusedId()).toBe(id);
  },
  TEST_MS,
);

it(
  TESTS.steady,
  async () => {
    // Prepare: what is on screen now.
    const before = await page
      .locator('[data-testid="tile"]')
      .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id')));
    const focused = await focusedId();

    // Act: the Test camera keeps sending; wait for the page to announce new frames.
    await page.locator('[data-testid="new-frames"]').waitFor({ state: 'visible', timeout: WAIT_MS });

    // Assess: the same tiles in the same order, the same one focused.
    const after = await page
      .locator('[data-testid="tile"]')
      .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id')));
    // (a further page may have been appended below: that moves nothing on screen)
    expect(after.slice(0, before.length)).toEqual(before);
    expect(await focusedId()).toBe(focused);
  },
  TEST_MS,
);

it(
  TESTS.select,
  async () => {
    // Prepare
    const ids = await page
      .locator('[data-testid="tile"]')
      .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id')));
    const columns = await page
      .locator('[data-testid="queue-grid"]')
      .evaluate((grid) => getComputedStyle(grid).gridTemplateColumns.split(' ').filter(Boolean).length);
    const start = ids.indexOf(await focusedId());
    const selected = () =>
      page
        .locator('[data-testid="tile"][aria-selected="true"]')
        .evaluateAll((tiles) => tiles.map((t) => t.getAttribute('data-frame-id')));

    // Act + Assess: arrows.
    await page.keyboard.press('ArrowRight');
    await waitForFocus(ids[start + 1]);
    await page.keyboard.press('ArrowDown');
    await waitForFocus(ids[start + 1 + columns]);
    await page.keyboard.press('ArrowUp');
    await page.keyboard.press('ArrowLeft');
    await waitForFocus(ids[start]);

    // Clicks: a plain click focuses, shift-click takes the range, ctrl-click toggles one out.
    const tiles = page.locator('[data-testid="tile"]');
    await tiles.nth(start + 1).click();
    await waitForFocus(ids[start + 1]);
    await tiles.nth(start + 4).click({ modifiers: ['Shift'] });
    await waitForSelected(4);
    expect((await selected()).sort()).toEqual(ids.slice(start + 1, start + 5).sort());
    await tiles.nth(start + 2).click({ modifiers: ['Control'] });
    await waitForSelected(3);
    expect((await selected()).sort()).toEqual([ids[start + 1], ids[start + 3], ids[start + 4]].sort());
    await page.keyboard.press('Escape');
    await waitForSelected(0);
  },
  TEST_MS,
);

it(
  TESTS.bulk,
  async () => {
    // Prepare: the predicted class with the most unlabelled tiles loaded.
    const options = await page
      .locator('[data-testid="select-group"] option')
      .evaluateAll((list) => list.map((o) => ({ value: (o as HTMLOptionElement).value, text: o.textContent ?? '' })));
    const groups = options
      .filter((o) => o.value !== '')
      .map((o) => ({ digit: o.value, unlabelled: Number(/\((\d+) unlabelled\)/.exec(o.text)?.[1] ?? 0) }))
      .sort((a, b) => b.unlabelled - a.unlabelled);
    const group = groups[0];
    expect(group?.unlabelled).toBeGreaterThanOrEqual(2);

    // Act
    await page.selectOption('[data-testid="select-group"]', group?.digit as string);
    await waitInPage(
      `the ${group?.unlabelled} tiles of group ${group?.digit} to be selected`,
      (n: number) => document.querySelectorAll('[data-testid="tile"][aria-selected="true"]').length === n,
      group?.unlabelled ?? 0,
    );
    const selected = await page
      .locator('[data-testid="tile"][aria-selected="true"]')
      .evaluateAll((tiles) =>
        tiles.map((t) => ({ id: t.getAttribute('data-frame-id') ?? '', predicted: Number(t.getAttribute('data-predicted')) })),
      );
    expect(selected.every((t) => t.predicted === Number(group?.digit))).toBe(true);
    await page.click('[data-testid="bulk-accept"]');

    // Assess: every selected frame carries the model's guess, on the page and on the server.
    for (const { id, predicted } of selected) {
      await waitForTileLabel(id, predicted);
      given.set(id, predicted);
      predictedOf.set(id, predicted);
    }
    for (const { id, predicted } of selected) expect(await frameLabel(id)).toBe(predicted);
    expect(await page.locator('[data-testid="tile"][aria-selected="true"]').count()).toBe(0);
  },
  TEST_MS,
);

it(
  TESTS.confusion,
  async () => {
    // Prepare: the diagonal cell holding the most of the frames labelled here.
    const cells = new Map<number, string[]>();
    for (const [id, label] of given) {
      if (label === predictedOf.get(id)) cells.set(label as number, [...(cells.get(label as number) ?? []), id]);
    }
    const [digit, ids] = [...cells].sort((a, b) => b[1].length - a[1].length)[0] as [number, string[]];
    await page.goto(`${pipeline?.url}/#/confusion`);
    const cell = page.locator(`[data-testid="confusion-cell"][data-label="${digit}"][data-predicted="${digit}"]`);
    await waitInPage(
      `the confusion cell ${digit}/${digit} to count ${ids.length} frames`,
      ([d, n]: (string | null)[]) =>
        document.querySelector(`[data-testid="confusion-cell"][data-label="${d}"][data-predicted="${d}"]`)?.textContent === n,
      [String(digit), String(ids.length)],
    );

    // Act
    await cell.click();

    // Assess: the queue lists the labelled frames of that cell, and only them.
    await waitInPage(
      `the queue to list the ${ids.length} frames labelled and predicted ${digit}`,
      (n: number) => location.hash.startsWith('#/queue') && document.querySelectorAll('[data-testid="tile"]').length === n,
      ids.length,
    );
    const shown = await page
      .locator('[data-testid="tile"]')
      .evaluateAll((tiles) =>
        tiles.map((t) => [t.getAttribute('data-frame-id'), t.getAttribute('data-label'), t.getAttribute('data-predicted')]),
      );
    expect(shown.map(([id]) => id).sort()).toEqual([...ids].sort());
    expect(shown.every(([, label, predicted]) => label === String(digit) && predicted === String(digit))).toBe(true);
  },
  TEST_MS,
);

interface MetadataLine {
  file_name: string;
  frame_id: string;
  label: Label;
}

function readMetadata(dir: string): MetadataLine[] {
  const file = join(dir, 'metadata.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as MetadataLine);
}

it(
  TESTS.export,
  async () => {
    // Act
    await page.goto(`${pipeline?.url}/#/dataset`);
    const button = page.locator('[data-testid="export-button"]');
    await waitInPage(
      'the export button to be enabled',
      () => {
        const b = document.querySelector<HTMLButtonElement>('[data-testid="export-button"]');
        return b !== null && !b.disabled;
      },
      null,
    );
    await button.click();
    const result = page.locator('[data-testid="export-result"]');
    await result.waitFor({ state: 'visible', timeout: WAIT_MS });
    const dir = (await result.getAttribute('data-dir')) as string;
    expect(dir).toBeTruthy();

    // Assess: read the folder back from disk, class folders and the not-a-digit sibling.
    const exported = new Map<string, Label>();
    const digitDirs = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    expect(digitDirs.every((name) => /^[0-9]$/.test(name))).toBe(true);
    let pngFiles = 0;
    for (const digit of digitDirs) {
      for (const name of readdirSync(join(dir, digit))) {
        expect(
          readFileSync(join(dir, digit, name))
            .subarray(0, 8)
            .equals(PNG_SIGNATURE),
        ).toBe(true);
        pngFiles += 1;
      }
    }
    for (const line of readMetadata(dir)) {
      expect(existsSync(join(dir, line.file_name))).toBe(true);
      expect(line.file_name.split('/')[0]).toBe(String(line.label));
      expect(exported.has(line.frame_id)).toBe(false);
      exported.set(line.frame_id, line.label);
    }
    expect(pngFiles).toBe(exported.size);
    const notDigitDir = `${dir}.not_a_digit`;
    for (const line of readMetadata(notDigitDir)) {
      expect(existsSync(join(notDigitDir, line.file_name))).toBe(true);
      expect(exported.has(line.frame_id)).toBe(false);
      exported.set(line.frame_id, line.label);
    }
    expect(Object.fromEntries([...exported].sort())).toEqual(Object.fromEntries([...given].sort()));
    const summary = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as { version: string };
    expect(summary.version).toBe(await result.getAttribute('data-version'));
  },
  TEST_MS,
);

it(
  TESTS.markup,
  async () => {
    // Prepare: a frame whose fields hold markup; it cannot be scored, so it is rejected.
    const markup = '<img src=x onerror=window.markupRan=true>';
    const client = createKinesisClient({ endpoint: pipeline?.kinesis, region: 'us-east-1' });
    await client.send(
      new PutRecordCommand({
        StreamName: 'camera-images',
        PartitionKey: 'markup',
        Data: Buffer.from(JSON.stringify({ image: markup, camera: markup, timestamp: new Date().toISOString() })),
      }),
    );
    client.destroy();

    // Act
    await page.goto(`${pipeline?.url}/#/rejected`);
    await waitInPage(
      'the rejected record to be listed with its payload',
      (text: string) => document.querySelector('[data-testid="view-rejected"]')?.textContent?.includes(text) === true,
      markup,
    );

    // Assess: the markup is text on the page; no element was made from it and it did not run.
    const made = await page.evaluate(() => ({
      images: document.querySelectorAll('[data-testid="view-rejected"] img').length,
      ran: (window as unknown as { markupRan?: boolean }).markupRan === true,
    }));
    expect(made).toEqual({ images: 0, ran: false });
  },
  TEST_MS,
);
