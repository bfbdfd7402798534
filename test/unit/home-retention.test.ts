import {
  copyFileSync,
  existsSync,
  renameSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHomeApp } from '../../home/server';
import { type HomeEvent, HomeStore, type StoredFrame } from '../../home/store';
import {
  choosePrune,
  DEFAULT_RETENTION,
  folderBytes,
  parseRetention,
  type RetentionCandidate,
  RetentionSettingError,
} from '../../home/store/retention';
import { uncertainRecord } from '../helpers/home-fixtures';

const DAY = 24 * 60 * 60 * 1000;
const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);

/** Frame i arrived i hours after the first, 100 bytes each, the first 100 days before NOW. */
function candidates(n: number): RetentionCandidate[] {
  return Array.from({ length: n }, (_, i) => ({
    key: `f${i}`,
    seq: i,
    received_at: new Date(NOW - 100 * DAY + i * 3600_000).toISOString(),
    bytes: 100,
  }));
}

describe('choosing what to prune', () => {
  const none = (): boolean => false;

  it('prunes the oldest unlabelled frames first, just enough to meet the size bound', () => {
    const frames = candidates(50);
    const plan = choosePrune(frames, none, { keepDays: null, maxBytes: 3000 }, 5000, NOW);
    expect(plan.keys).toEqual(new Set(frames.slice(0, 20).map((f) => f.key)));
    expect(plan).toMatchObject({ bytes: 2000, bySize: 20, byAge: 0, overBy: 0 });
  });

  it('never prunes a labelled frame, even the oldest, and says how far over the bound labelled frames leave it', () => {
    const frames = candidates(50);
    const labelled = new Set(['f0', 'f1', 'f2', 'f10']);
    const plan = choosePrune(frames, (key) => labelled.has(key), { keepDays: null, maxBytes: 3000 }, 5000, NOW);
    for (const key of labelled) expect(plan.keys.has(key)).toBe(false);
    expect(plan.keys).toEqual(new Set(['f3', 'f4', 'f5', 'f6', 'f7', 'f8', 'f9', ...frames.slice(11, 24).map((f) => f.key)]));
    expect(plan.bytes).toBe(2000);

    const all = choosePrune(frames, (key) => labelled.has(key), { keepDays: null, maxBytes: 100 }, 5000, NOW);
    expect(all.keys.size).toBe(46);
    expect(all.overBy).toBe(5000 - 4600 - 100);
  });

  it('prunes unlabelled frames older than keep-days and keeps the younger ones while the size allows', () => {
    const frames = candidates(50); // hours 0..49 after NOW - 100 days
    const cut = choosePrune(frames, (k) => k === 'f3', { keepDays: 100 - 30 / 24, maxBytes: null }, 5000, NOW);
    // Received before NOW - (100 days - 30 h): hours 0..29; f3 is labelled.
    expect(cut.keys).toEqual(
      new Set(
        frames
          .slice(0, 30)
          .map((f) => f.key)
          .filter((k) => k !== 'f3'),
      ),
    );
    expect(cut).toMatchObject({ byAge: 29, bySize: 0 });
    expect(choosePrune(frames, none, { keepDays: 365, maxBytes: 1e9 }, 5000, NOW).keys.size).toBe(0);
    expect(choosePrune(frames, none, { keepDays: null, maxBytes: null }, 5000, NOW).keys.size).toBe(0);
  });

  it('goes by arrival order, not by the order it is handed the frames', () => {
    const frames = candidates(10).reverse();
    const plan = choosePrune(frames, none, { keepDays: null, maxBytes: 800 }, 1000, NOW);
    expect(plan.keys).toEqual(new Set(['f0', 'f1']));
  });
});

describe('retention settings', () => {
  it('has stated defaults, takes numbers and "off", and refuses anything else with the flag named', () => {
    expect(parseRetention({})).toEqual(DEFAULT_RETENTION);
    expect(DEFAULT_RETENTION).toEqual({ keepDays: 30, maxBytes: 10e9 });
    expect(parseRetention({ keepDays: '7', maxGb: '0.5' })).toEqual({ keepDays: 7, maxBytes: 5e8 });
    expect(parseRetention({ keepDays: 'off', maxGb: 'off' })).toEqual({ keepDays: null, maxBytes: null });
    for (const [keepDays, maxGb, message] of [
      ['0', undefined, /--keep-days must be a number above 0.*got "0"/],
      ['-3', undefined, /--keep-days/],
      ['seven', undefined, /--keep-days.*got "seven"/],
      [undefined, '1e3', /--max-gb.*got "1e3"/],
      [undefined, 'NaN', /--max-gb/],
    ] as const) {
      expect(() => parseRetention({ keepDays, maxGb })).toThrow(RetentionSettingError);
      expect(() => parseRetention({ keepDays, maxGb })).toThrow(message);
    }
  });
});

describe('pruning a home store', () => {
  let dir: string;
  let store: HomeStore | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-retention-'));
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const open = (maxBytes: number | null): HomeStore => {
    store?.close();
    store = new HomeStore(dir, { retention: { keepDays: null, maxBytes } });
    return store;
  };
  const closeStore = (): void => {
    store?.close();
    store = undefined;
  };
  const records = Array.from({ length: 300 }, (_, i) => uncertainRecord(i));

  it('compacts the pack: labelled frames and the newest unlabelled stay readable, the oldest unlabelled go', async () => {
    let s = open(null);
    s.addFrames(records.slice(0, 150));
    s.addFrames(records.slice(150));
    const labelled = [0, 1, 5, 40, 299].map((i) => records[i]?.frame_id as string);
    s.label(labelled.slice(0, 3), 7);
    s.label(labelled.slice(3), 'accept');
    // An undone label is still someone's work: that frame stays too.
    s.label([records[2]?.frame_id as string], 4);
    s.undo();
    const before = folderBytes(dir);
    const bound = Math.round(before * 0.6);

    s = open(bound);
    const events: HomeEvent[] = [];
    s.subscribe((event) => events.push(event));
    const prune = await s.enforceRetention({ framesPerStep: 16 });
    expect(prune).not.toBeNull();
    const kept = new Set(s.frames.list.map((f) => f.key));
    for (const id of [...labelled, records[2]?.frame_id as string]) expect(kept.has(id)).toBe(true);
    // The pruned ones are exactly the oldest unlabelled frames.
    const gone = records.flatMap((r, i) => (kept.has(r.frame_id) ? [] : [i]));
    const unlabelledInOrder = records
      .map((r, i) => ({ id: r.frame_id, i }))
      .filter(({ id }) => ![...labelled, records[2]?.frame_id].includes(id))
      .map(({ i }) => i);
    expect(gone).toEqual(unlabelledInOrder.slice(0, gone.length));
    expect(prune?.pruned).toBe(gone.length);
    expect(folderBytes(dir)).toBeLessThanOrEqual(bound);
    expect(s.retentionView()).toMatchObject({ over_bound_bytes: 0, total: { pruned: gone.length, prunes: 1 } });
    expect(prune?.bytes_after).toBeLessThan(prune?.bytes_before ?? 0);

    const check = (store: HomeStore): void => {
      expect(store.frames.list.map((f) => f.key)).toEqual(records.filter((r) => kept.has(r.frame_id)).map((r) => r.frame_id));
      for (const frame of store.frames.list) {
        const record = records.find((r) => r.frame_id === frame.key);
        expect(store.frames.original(frame)).toEqual(Buffer.from(record?.image ?? '', 'base64'));
        expect(store.frames.prepared(frame).subarray(1, 4).toString()).toBe('PNG');
      }
      expect(store.dataset()).toMatchObject({ labelled: 5, frames: kept.size, unlabelled: kept.size - 5 });
    };
    check(s);
    const retention = events.find((e) => e.type === 'retention');
    if (retention?.type !== 'retention') throw new Error('no retention event');
    expect(retention.data).toMatchObject({ pruned_keys_complete: true });
    expect(new Set(retention.data.pruned_keys)).toEqual(
      new Set(records.filter((r) => !kept.has(r.frame_id)).map((r) => r.frame_id)),
    );
    // Appending after the switch goes to the new files.
    s.addFrames([uncertainRecord(1000)]);
    kept.add(uncertainRecord(1000).frame_id);
    records.push(uncertainRecord(1000));
    check(s);
    // Nothing is left of the compaction, and a restart reads the same store.
    expect(readdirSync(dir).filter((f) => f.includes('compact'))).toEqual([]);
    check(open(null));
    expect(store?.retentionView().last_prune).toEqual(prune);
  });

  it('keeps frames that arrive, and frames labelled, while a compaction runs', async () => {
    const s = open(null);
    s.addFrames(records.slice(0, 200));
    const bound = Math.round(folderBytes(dir) * 0.5);
    store?.close();
    store = new HomeStore(dir, { retention: { keepDays: null, maxBytes: bound } });
    const t = store;
    const running = t.enforceRetention({ framesPerStep: 5 });
    // Between steps: a new batch, and a label on the oldest frame (chosen for pruning).
    await new Promise((resolve) => setImmediate(resolve));
    t.addFrames(records.slice(200, 220));
    t.label([records[0]?.frame_id as string], 3);
    expect(t.enforceRetention()).toBe(running);
    const prune = await running;
    expect(prune?.pruned).toBeGreaterThan(0);
    expect(t.frames.get(records[0]?.frame_id as string)).toBeDefined();
    expect(t.frames.get(records[1]?.frame_id as string)).toBeUndefined();
    for (const r of records.slice(200, 220)) {
      const frame = t.frames.get(r.frame_id);
      expect(frame && t.frames.original(frame)).toEqual(Buffer.from(r.image, 'base64'));
    }
    const reopened = open(null);
    expect(reopened.frames.list.map((f) => f.seq)).toEqual([...reopened.frames.list.map((f) => f.seq)].sort((a, b) => a - b));
    expect(reopened.frames.original(reopened.frames.get(records[0]?.frame_id as string)!)).toEqual(
      Buffer.from(records[0]?.image ?? '', 'base64'),
    );
    expect(reopened.frames.size).toBe(220 - (prune?.pruned ?? 0));
  });

  it('does nothing within the bound, and leaves no files behind when closed mid-compaction', async () => {
    const s = open(1e12);
    s.addFrames(records.slice(0, 100));
    expect(await s.enforceRetention()).toBeNull();
    expect(s.frames.size).toBe(100);
    const t = open(1000);
    const running = t.enforceRetention({ framesPerStep: 1 });
    await new Promise((resolve) => setImmediate(resolve));
    t.close();
    store = undefined;
    expect(await running).toBeNull();
    expect(readdirSync(dir).filter((f) => f.includes('compact'))).toEqual([]);
    expect(open(null).frames.size).toBe(100);
  });

  it('rolls a committed switch forward and an uncommitted one back when the folder is opened', () => {
    open(null).addFrames(records.slice(0, 10));
    closeStore();
    const pack = statSync(join(dir, 'images.bin')).size;
    // Uncommitted leftovers: deleted, the old store read.
    writeFileSync(join(dir, 'images.bin.compact'), 'half');
    writeFileSync(join(dir, 'frames.jsonl.compact'), '{"torn');
    // Killed while the marker itself was being written: its temporary file, no marker.
    writeFileSync(join(dir, 'compaction.commit.tmp-4242'), '{"at":');
    expect(open(null).frames.size).toBe(10);
    expect(existsSync(join(dir, 'images.bin.compact'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.includes('compact'))).toEqual([]);
    expect(statSync(join(dir, 'images.bin')).size).toBe(pack);

    // A committed switch (the marker written) cut short before its renames: finished.
    closeStore();
    const aside = mkdtempSync(join(tmpdir(), 'home-retention-aside-'));
    copyFileSync(join(dir, 'images.bin'), join(aside, 'images.bin'));
    copyFileSync(join(dir, 'frames.jsonl'), join(aside, 'frames.jsonl'));
    open(null).addFrames(records.slice(10, 15));
    closeStore();
    copyFileSync(join(aside, 'images.bin'), join(dir, 'images.bin.compact'));
    copyFileSync(join(aside, 'frames.jsonl'), join(dir, 'frames.jsonl.compact'));
    rmSync(aside, { recursive: true });
    writeFileSync(join(dir, 'compaction.commit'), '{}\n');
    // A reader beside the home (the dataset command) reads the new files, half switched or not.
    for (const renamed of [false, true]) {
      if (renamed) renameSync(join(dir, 'images.bin.compact'), join(dir, 'images.bin'));
      const reader = new HomeStore(dir, { readOnly: true });
      expect(reader.frames.list.map((f) => f.key)).toEqual(records.slice(0, 10).map((r) => r.frame_id));
      expect(reader.frames.original(reader.frames.list[9] as StoredFrame)).toEqual(
        Buffer.from(records[9]?.image ?? '', 'base64'),
      );
      reader.close();
    }
    const reopened = open(null);
    expect(reopened.frames.list.map((f) => f.key)).toEqual(records.slice(0, 10).map((r) => r.frame_id));
    expect(readdirSync(dir).filter((f) => f.includes('compact'))).toEqual([]);
  });
});

describe('GET /api/retention and pruned frames over HTTP', () => {
  let dir: string;
  let store: HomeStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-retention-api-'));
    mkdirSync(join(dir, 'web'));
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the size, the bound and the last prune; a pruned frame is 410 with a sentence, an unknown one 404', async () => {
    store = new HomeStore(join(dir, 'data'), { retention: { keepDays: 30, maxBytes: null } });
    const old = Array.from({ length: 10 }, (_, i) =>
      uncertainRecord(i, { received_at: new Date(Date.now() - 40 * DAY + i).toISOString() }),
    );
    const fresh = Array.from({ length: 10 }, (_, i) => uncertainRecord(100 + i, { received_at: new Date().toISOString() }));
    store.addFrames([...old, ...fresh]);
    store.label([old[0]?.frame_id as string], 1);
    const app = createHomeApp(store, { webRoot: join(dir, 'web') });
    const before = await app.request('/api/retention');
    expect(before.status).toBe(200);
    expect(await before.json()).toMatchObject({ bound: { keep_days: 30, max_bytes: null }, last_prune: null, running: false });

    await store.enforceRetention();
    const after = (await (await app.request('/api/retention')).json()) as Record<string, unknown>;
    expect(after).toMatchObject({
      bound: { keep_days: 30, max_bytes: null },
      frames_bytes: store.frames.bytes,
      last_prune: { pruned: 9, pruned_by_age: 9, pruned_by_size: 0 },
      total: { pruned: 9, prunes: 1 },
    });
    expect(after.data_bytes).toBe(folderBytes(join(dir, 'data')));

    const listed = (await (await app.request('/api/frames?status=all&limit=500')).json()) as { frames: { frame_id: string }[] };
    expect(listed.frames.map((f) => f.frame_id).sort()).toEqual(
      [old[0]?.frame_id, ...fresh.map((r) => r.frame_id)].sort() as string[],
    );
    for (const path of ['image.png', 'prepared.png', '']) {
      const response = await app.request(`/api/frames/${old[3]?.frame_id}${path ? `/${path}` : ''}`);
      expect(response.status).toBe(410);
      expect(((await response.json()) as { error: string }).error).toMatch(/was pruned at .*nobody had labelled it/);
    }
    expect((await app.request('/api/frames/shardId-nope/image.png')).status).toBe(404);
    const label = await app.request('/api/labels', {
      method: 'POST',
      body: JSON.stringify({ frame_id: old[3]?.frame_id, label: 3 }),
    });
    expect(label.status).toBe(410);
    expect(((await label.json()) as { error: string }).error).toMatch(/was pruned at .*before anyone labelled it/);
    expect((await app.request(`/api/frames/${old[0]?.frame_id}/image.png`)).status).toBe(200);
  });
});
