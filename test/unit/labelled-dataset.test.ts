import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatasetError, isHeldOut, readLabelledDataset, splitByFrameId } from '../../training/labelled-dataset';
import { mnistEntries, writeDataset } from '../helpers/labelled-dataset';

describe('the held-out split of labelled frames', () => {
  const ids = Array.from(
    { length: 2000 },
    (_, k) => `shardId-000000000000-4965958045326204083818351922745271185347423351638931${String(k).padStart(4, '0')}`,
  );

  it('places each frame_id the same way on every call', () => {
    // Prepare
    const first = ids.map((id) => isHeldOut(id));
    // Act
    const again = ids.map((id) => isHeldOut(id));
    // Assess
    expect(again).toEqual(first);
    expect(isHeldOut('shardId-000000000000-1')).toBe(isHeldOut('shardId-000000000000-1'));
  });

  it('holds out about a fifth, and a frame stays where it was when the dataset grows', () => {
    const small = splitByFrameId(ids.slice(0, 500).map((frameId) => ({ frameId })));
    const large = splitByFrameId(ids.map((frameId) => ({ frameId })));
    expect(large.heldOut.length / ids.length).toBeGreaterThan(0.16);
    expect(large.heldOut.length / ids.length).toBeLessThan(0.24);
    const largeHeldOut = new Set(large.heldOut.map((f) => f.frameId));
    for (const f of small.heldOut) expect(largeHeldOut.has(f.frameId)).toBe(true);
    for (const f of small.train) expect(largeHeldOut.has(f.frameId)).toBe(false);
  });

  it('follows the share it is given', () => {
    expect(ids.filter((id) => isHeldOut(id, 0)).length).toBe(0);
    expect(ids.filter((id) => isHeldOut(id, 1)).length).toBe(ids.length);
  });
});

describe('reading a labelled dataset folder', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'dataset-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const good = () => writeDataset(join(root, 'ds'), mnistEntries('t10k', 0, 12));
  const metadata = (dir: string) => join(dir, 'metadata.jsonl');
  const rewriteLine = (dir: string, k: number, edit: (line: Record<string, unknown>) => Record<string, unknown> | string) => {
    const lines = readFileSync(metadata(dir), 'utf8').trim().split('\n');
    const edited = edit(JSON.parse(lines[k]!) as Record<string, unknown>);
    lines[k] = typeof edited === 'string' ? edited : JSON.stringify(edited);
    writeFileSync(metadata(dir), `${lines.join('\n')}\n`);
  };

  it('prepares every frame and counts the classes', async () => {
    const dir = good();
    const dataset = await readLabelledDataset(dir);
    expect(dataset.frames).toHaveLength(12);
    expect(dataset.frames.every((f) => f.pixels.length === 784)).toBe(true);
    expect(Object.values(dataset.perClass).reduce((a, b) => a + b, 0)).toBe(12);
    expect(dataset.version).toMatch(/^sha256:[0-9a-f]{16}$/);
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify({ version: 'sha256:0123456789abcdef', counts: {}, created_at: 'x' }));
    expect((await readLabelledDataset(dir)).version).toBe('sha256:0123456789abcdef');
  });

  it('accepts a bare file name, which lives in its label folder', async () => {
    const dir = good();
    rewriteLine(dir, 0, (line) => ({ ...line, file_name: String(line.file_name).split('/')[1]! }));
    expect((await readLabelledDataset(dir)).frames).toHaveLength(12);
  });

  it.each([
    ['a missing folder', (_dir: string) => join(root, 'nowhere'), /dataset folder .*nowhere does not exist/],
    [
      'no metadata.jsonl',
      (dir: string) => {
        rmSync(metadata(dir));
        return dir;
      },
      /metadata\.jsonl is missing/,
    ],
    [
      'a line that is not JSON',
      (dir: string) => {
        rewriteLine(dir, 3, () => '{"file_name": ');
        return dir;
      },
      /line 4 is not JSON/,
    ],
    [
      'a label out of range',
      (dir: string) => {
        rewriteLine(dir, 2, (line) => ({ ...line, label: 11 }));
        return dir;
      },
      /line 3 is not a dataset entry: label/,
    ],
    [
      'a missing frame_id',
      (dir: string) => {
        rewriteLine(dir, 2, ({ frame_id: _drop, ...line }) => line);
        return dir;
      },
      /line 3 is not a dataset entry: frame_id/,
    ],
    [
      'a repeated frame_id',
      (dir: string) => {
        const first = JSON.parse(readFileSync(metadata(dir), 'utf8').split('\n')[0]!) as { frame_id: string };
        rewriteLine(dir, 5, (line) => ({ ...line, frame_id: first.frame_id }));
        return dir;
      },
      /line 6 repeats frame_id .* \(first on line 1\)/,
    ],
    [
      'a file that does not exist',
      (dir: string) => {
        rewriteLine(dir, 1, (line) => ({ ...line, file_name: `${String(line.label)}/gone.png` }));
        return dir;
      },
      /line 2: .*gone\.png does not exist/,
    ],
    [
      'a file outside the folder',
      (dir: string) => {
        rewriteLine(dir, 1, (line) => ({ ...line, file_name: '../../etc/passwd' }));
        return dir;
      },
      /points outside the dataset folder/,
    ],
    [
      'a file in another label folder',
      (dir: string) => {
        rewriteLine(dir, 1, (line) => ({ ...line, label: (Number(line.label) + 1) % 10 }));
        return dir;
      },
      /line 2: .* is labelled \d but lies in folder \d/,
    ],
    [
      'an image nobody listed',
      (dir: string) => {
        mkdirSync(join(dir, '3'), { recursive: true });
        writeFileSync(
          join(dir, '3', 'stray.png'),
          readFileSync(join(dir, JSON.parse(readFileSync(metadata(dir), 'utf8').split('\n')[0]!).file_name as string)),
        );
        return dir;
      },
      /1 image\(s\) in .*3 are not in metadata\.jsonl \(first: stray\.png\)/,
    ],
    [
      'a file that is not a PNG',
      (dir: string) => {
        const line = JSON.parse(readFileSync(metadata(dir), 'utf8').split('\n')[4]!) as { file_name: string };
        writeFileSync(join(dir, line.file_name), 'this is text, not an image');
        return dir;
      },
      /\(line 5\) cannot be prepared/,
    ],
    [
      'no labelled frame at all',
      (dir: string) => {
        rmSync(dir, { recursive: true });
        mkdirSync(dir);
        writeFileSync(metadata(dir), '\n');
        return dir;
      },
      /lists no labelled frame/,
    ],
  ])('refuses %s with a clear DatasetError', async (_name, damage, message) => {
    // Prepare
    const dir = damage(good());
    // Act
    const read = readLabelledDataset(dir);
    // Assess
    await expect(read).rejects.toThrow(DatasetError);
    await expect(read).rejects.toThrow(message);
  });
});
