import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportDataset, main as datasetCommand } from '../../home/dataset';
import { HomeStore } from '../../home/store';
import { uncertainRecord } from '../helpers/home-fixtures';

interface MetadataLine {
  file_name: string;
  label: number | string;
  camera: string;
  frame_id: string;
  model_version: string;
  predicted: number;
  probabilities: number[];
  labelled_at: string;
}

const readLines = (file: string): MetadataLine[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as MetadataLine);

describe('dataset export', () => {
  let root: string;
  let store: HomeStore;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'home-dataset-'));
    store = new HomeStore(join(root, 'data'));
    store.addFrames(Array.from({ length: 12 }, (_, i) => uncertainRecord(i)));
    store.addFrames([uncertainRecord(40, { image: '', image_omitted: true })]);
    store.label(
      [0, 1, 2, 3].map((i) => uncertainRecord(i).frame_id),
      'accept',
    );
    store.label([uncertainRecord(4).frame_id, uncertainRecord(40).frame_id], 7);
    store.label([uncertainRecord(5).frame_id, uncertainRecord(6).frame_id], 'not_a_digit');
    store.label([uncertainRecord(8).frame_id], 1);
    store.undo(); // frame 8 back to unlabelled
    store.label([uncertainRecord(3).frame_id], 9); // relabelled: only the latest counts
  });
  afterEach(() => {
    store.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Checks an export folder against the store's labels; returns the metadata lines. */
  function checkExport(dir: string): MetadataLine[] {
    const classes = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    // Only digit folders: ImageFolder takes every folder for a class.
    expect(classes).toEqual(['0', '1', '2', '7', '9']);
    const lines = readLines(join(dir, 'metadata.jsonl'));
    expect(lines).toHaveLength(6);
    for (const line of lines) {
      const frame = store.frames.get(line.frame_id);
      expect(frame).toBeDefined();
      expect(line.file_name).toBe(`${line.label}/${line.frame_id}.png`);
      expect(line.label).toBe(store.labels.labelOf(line.frame_id));
      expect(line).toMatchObject({
        camera: frame!.camera,
        model_version: frame!.model_version,
        predicted: frame!.result_class,
        probabilities: frame!.predictions,
      });
      expect(readFileSync(join(dir, line.file_name))).toEqual(store.frames.exportImage(frame!));
    }
    const byFolder = classes.flatMap((c) => readdirSync(join(dir, c)).map((f) => `${c}/${f}`)).sort();
    expect(byFolder).toEqual(lines.map((l) => l.file_name).sort());
    const original = lines.find((l) => l.frame_id === uncertainRecord(4).frame_id)!;
    expect(readFileSync(join(dir, original.file_name))).toEqual(Buffer.from(uncertainRecord(4).image, 'base64'));
    // Without an original, the prepared 28x28 image stands in.
    const omitted = lines.find((l) => l.frame_id === uncertainRecord(40).frame_id)!;
    expect(readFileSync(join(dir, omitted.file_name)).subarray(1, 4).toString()).toBe('PNG');
    const others = readLines(join(`${dir}.not_a_digit`, 'metadata.jsonl'));
    expect(others.map((l) => [l.file_name, l.label]).sort()).toEqual(
      [5, 6].map((i) => [`${uncertainRecord(i).frame_id}.png`, 'not_a_digit']).sort(),
    );
    for (const l of others) expect(existsSync(join(`${dir}.not_a_digit`, l.file_name))).toBe(true);
    const manifest = JSON.parse(readFileSync(join(dir, 'dataset.json'), 'utf8')) as {
      version: string;
      counts: { total: number; not_a_digit: number; per_class: Record<string, number> };
    };
    expect(manifest.version).toBe(store.dataset().version);
    expect(manifest.counts).toMatchObject({
      total: 8,
      not_a_digit: 2,
      per_class: { '0': 1, '1': 1, '2': 1, '7': 2, '9': 1, '8': 0 },
    });
    return lines;
  }

  it('writes the ImageFolder layout with metadata.jsonl, not-a-digit frames outside it', () => {
    const dir = join(root, 'export');
    const result = exportDataset(store, dir);
    expect(result).toMatchObject({ dir, not_a_digit_dir: `${dir}.not_a_digit`, version: store.dataset().version });
    checkExport(dir);
  });

  it('replaces an earlier export, and refuses a folder that is not one', () => {
    const dir = join(root, 'export');
    exportDataset(store, dir);
    store.label([uncertainRecord(3).frame_id], 0);
    exportDataset(store, dir);
    expect(existsSync(join(dir, '9'))).toBe(false);
    expect(readLines(join(dir, 'metadata.jsonl')).filter((l) => l.label === 0)).toHaveLength(2);
    const precious = join(root, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'thesis.tex'), 'keep me');
    expect(() => exportDataset(store, precious)).toThrow('is not an earlier export');
    expect(() => exportDataset(store, root)).toThrow('holds the home data folder');
    expect(readFileSync(join(precious, 'thesis.tex'), 'utf8')).toBe('keep me');
  });

  it('npm run dataset -- export DIR reads the folder beside a running home and writes the same export', async () => {
    const dir = join(root, 'cli-export');
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await datasetCommand(['export', dir, '--data', store.dir])).toBe(0);
      expect(await datasetCommand(['status', '--data', store.dir])).toBe(0);
      expect(JSON.parse(log.mock.calls[1]?.[0] as string)).toEqual(store.dataset());
      expect(await datasetCommand(['export'])).toBe(2);
      expect(await datasetCommand(['export', dir, '--data', join(root, 'missing')])).toBe(1);
      expect(error.mock.calls.map((c) => String(c[0])).join('\n')).toContain('does not exist');
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
    checkExport(dir);
  });
});
