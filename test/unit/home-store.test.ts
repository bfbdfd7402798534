import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { homeHandlers } from '../../home/feed';
import { HomeStore } from '../../home/store';
import { REJECT_ADVICE } from '../../functions/lib/errors';
import { kinesisEvent, metricsDocument, rejectRecord, uncertainRecord } from '../helpers/home-fixtures';

describe('home store', () => {
  let dir: string;
  let store: HomeStore | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-store-'));
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const open = (): HomeStore => {
    store?.close();
    store = new HomeStore(dir);
    return store;
  };

  it('stores a batch of frames with one append each to the index and the pack, and serves their images', async () => {
    const s = open();
    const records = Array.from({ length: 50 }, (_, i) => uncertainRecord(i));
    await homeHandlers(s)['uncertain-images'](kinesisEvent('uncertain-images', records));
    expect(s.frames.size).toBe(50);
    expect(readFileSync(join(dir, 'frames.jsonl'), 'utf8').trim().split('\n')).toHaveLength(50);
    const frame = s.frames.get(records[7]?.frame_id ?? '');
    expect(frame).toBeDefined();
    expect(s.frames.original(frame!)).toEqual(Buffer.from(records[7]?.image ?? '', 'base64'));
    const prepared = s.frames.prepared(frame!);
    expect(prepared.subarray(1, 4).toString()).toBe('PNG');
    // The stored line holds no image: the pack does.
    expect(readFileSync(join(dir, 'frames.jsonl'), 'utf8')).not.toContain(records[7]?.image.slice(0, 40));
  });

  it('drops a redelivered frame, and keeps a different frame that reuses a frame_id under its own key', async () => {
    const s = open();
    const first = uncertainRecord(1);
    s.addFrames([first]);
    expect(s.addFrames([first, { ...first, received_at: '2026-12-06T05:00:00.000Z' }])).toEqual({ added: 0, duplicates: 2 });
    // Another emulator started in the same second hands out the same sequence numbers.
    const other = uncertainRecord(2, { frame_id: first.frame_id });
    expect(s.addFrames([other]).added).toBe(1);
    const keys = s.frames.list.map((f) => f.key);
    expect(keys[0]).toBe(first.frame_id);
    expect(keys[1]).toMatch(new RegExp(`^${first.frame_id}~[0-9a-f]{12}$`));
    // After a restart both stay, and a redelivery of either is still recognised.
    const reopened = open();
    expect(reopened.frames.size).toBe(2);
    expect(reopened.addFrames([first, other])).toEqual({ added: 0, duplicates: 2 });
  });

  it('gives a frame_id that is not a safe file name a key that is one', () => {
    const s = open();
    s.addFrames([uncertainRecord(3, { frame_id: '../../etc/passwd' })]);
    expect(s.frames.list[0]?.key).toMatch(/^f-[0-9a-f]{32}$/);
  });

  it('counts unreadable records and never throws on them', async () => {
    const s = open();
    const handlers = homeHandlers(s);
    await handlers['uncertain-images'](kinesisEvent('uncertain-images', ['not json', { frame_id: 'x' }, uncertainRecord(1)]));
    await handlers['rejected-images'](kinesisEvent('rejected-images', ['{', { reason: 'nope' }]));
    await handlers.metrics(kinesisEvent('metrics', [{ id: 'x' }]));
    expect(s.unreadable).toEqual({ 'uncertain-images': 2, 'rejected-images': 2, metrics: 1 });
    expect(s.frames.size).toBe(1);
  });

  it('reads back after a crash that tore the last line or lost the images of the last batch', () => {
    const s = open();
    s.addFrames([uncertainRecord(1), uncertainRecord(2)]);
    s.label([uncertainRecord(1).frame_id], 4);
    s.close();
    store = undefined;
    appendFileSync(join(dir, 'frames.jsonl'), '{"key":"torn');
    appendFileSync(join(dir, 'labels.jsonl'), '{"seq":1,"fra');
    const reopened = open();
    expect(reopened.frames.size).toBe(2);
    expect(reopened.labels.labelOf(uncertainRecord(1).frame_id)).toBe(4);
    // The torn tail is cut: the next append starts on its own line.
    reopened.label([uncertainRecord(2).frame_id], 'not_a_digit');
    reopened.close();
    store = undefined;
    const again = open();
    expect(again.labels.labelOf(uncertainRecord(2).frame_id)).toBe('not_a_digit');
    expect(again.labels.unreadableLines).toBe(0);
    // A line pointing past the pack (images lost) is not served.
    again.close();
    store = undefined;
    const pack = join(dir, 'images.bin');
    writeFileSync(pack, readFileSync(pack).subarray(0, statSync(pack).size - 10));
    const cut = open();
    expect(cut.frames.size).toBe(1);
    expect(cut.frames.unreadableLines).toBe(1);
  });

  it('labels, relabels and undoes in order; the latest label wins; the log tells the history', () => {
    const s = open();
    const [a, b] = [uncertainRecord(1), uncertainRecord(2)];
    s.addFrames([a, b]);
    const first = s.label([a.frame_id], 3)[0];
    expect(first).toMatchObject({
      seq: 0,
      frame_id: a.frame_id,
      label: 3,
      previous: null,
      predicted: 1,
      action: 'label',
      camera: 'Test-edge1',
    });
    expect(s.label([a.frame_id], 5)[0]).toMatchObject({ label: 5, previous: 3 });
    expect(s.label([b.frame_id], 'accept')[0]).toMatchObject({ label: 2, action: 'accept' });
    expect(s.undo()).toMatchObject({ frame_id: b.frame_id, label: null, previous: 2, action: 'undo', undoes: 2 });
    expect(s.undo(a.frame_id)).toMatchObject({ label: 3, previous: 5, undoes: 1 });
    expect(s.undo()).toMatchObject({ frame_id: a.frame_id, label: null, previous: 3, undoes: 0 });
    expect(() => s.undo()).toThrow('there is no label to undo');
    expect(() => s.label(['no-such-frame'], 1)).toThrow('there is no frame "no-such-frame"');
    const lines = readFileSync(join(dir, 'labels.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(open().labels.labelOf(a.frame_id)).toBeNull();
  });

  it('counts the dataset per class and versions it by content', () => {
    const s = open();
    s.addFrames(Array.from({ length: 5 }, (_, i) => uncertainRecord(i)));
    const empty = s.dataset();
    expect(empty).toMatchObject({ labelled: 0, unlabelled: 5, frames: 5, not_a_digit: 0 });
    s.label([uncertainRecord(0).frame_id, uncertainRecord(1).frame_id], 'accept');
    s.label([uncertainRecord(2).frame_id], 'not_a_digit');
    const summary = s.dataset();
    expect(summary).toMatchObject({ labelled: 3, unlabelled: 2, not_a_digit: 1 });
    expect(summary.per_class).toMatchObject({ '0': 1, '1': 1, '2': 0 });
    expect(summary.version).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(summary.version).not.toBe(empty.version);
    // Relabelling and undoing back gives the same content, so the same version.
    s.label([uncertainRecord(0).frame_id], 9);
    expect(s.dataset().version).not.toBe(summary.version);
    s.undo();
    expect(s.dataset().version).toBe(summary.version);
    expect(s.confusion().matrix[10]?.[2]).toBe(1);
    expect(s.confusion().matrix[0]?.[0]).toBe(1);
  });

  it('merges the shard documents of a window, drops redeliveries, keeps the last hour and reloads it', () => {
    const s = open();
    const start = new Date('2026-12-06T04:00:00.000Z');
    const a = metricsDocument(start, 'shardId-000000000000', 40);
    const b = metricsDocument(start, 'shardId-000000000001', 60);
    const events: unknown[] = [];
    s.subscribe((e) => events.push(e));
    s.addMetrics([a]);
    expect(s.addMetrics([b, a])).toEqual({ added: 1, duplicates: 1 });
    const [merged] = s.metrics.list();
    expect(merged?.count).toBe(100);
    expect(merged).not.toHaveProperty('histograms');
    expect(events.filter((e) => (e as { type: string }).type === 'window')).toHaveLength(2);
    // A window two hours later pushes the first out of the hour kept.
    s.addMetrics([metricsDocument(new Date(start.getTime() + 2 * 3600_000), 'shardId-000000000000', 10)]);
    expect(s.metrics.list()).toHaveLength(1);
    const reopened = open();
    expect(reopened.metrics.list().map((w) => w.count)).toEqual([10]);
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(1);
    expect(reopened.metrics.list({ camera: 'Nobody' })).toEqual([]);
    expect(reopened.metrics.list({ since: Date.parse('2026-12-06T07:00:00Z') })).toEqual([]);
  });

  it('counts rejects per reason and over time, with the advice and the latest samples', () => {
    const s = open();
    s.addRejects(Array.from({ length: 8 }, (_, i) => rejectRecord(i)));
    s.addRejects([rejectRecord(0), rejectRecord(100, { reason: 'future_timestamp', error: 'clock' })]);
    const view = s.rejects.view();
    expect(view.reasons.map((r) => [r.reason, r.count])).toEqual([
      ['image_not_base64', 8],
      ['future_timestamp', 1],
    ]);
    expect(view.reasons[0]?.hint).toBe(REJECT_ADVICE.image_not_base64);
    expect(view.reasons[0]?.samples).toHaveLength(5);
    expect(view.reasons[0]?.samples[0]?.payload_preview).toContain('not base64 at all 7');
    expect(view.series).toEqual([{ start: '2026-12-06T04:00:00.000Z', counts: { image_not_base64: 8, future_timestamp: 1 } }]);
    expect(open().rejects.total).toBe(9);
  });

  it('lets one writing home use a data folder at a time', () => {
    open();
    expect(() => new HomeStore(dir)).toThrow(/another home \(pid \d+\) is using the data folder/);
    // A reader beside it (the dataset command) is fine.
    const reader = new HomeStore(dir, { readOnly: true });
    reader.close();
  });
});
