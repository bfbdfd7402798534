/**
 * Crash-consistent state files: every truncation and garbage is detected and the last good
 * copy used, and no readable copy is an error naming the file. A writer killed at random
 * instants is in test/integration/state-file-kill.test.ts (it runs a child process).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  appendDurable,
  decodeStateFile,
  encodeStateFile,
  previousCopyPath,
  readStateFile,
  repairJsonLines,
  StateFileError,
  writeStateFile,
} from '../../functions/lib/state-file';

const schema = z.object({ n: z.number() });
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'state-file-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('reading and writing', () => {
  it('reads back what was written and keeps the previous value as .prev', () => {
    const file = join(dir, 'state.json');
    writeStateFile(file, { n: 1 });
    writeStateFile(file, { n: 2 });

    expect(readStateFile(file, schema)).toEqual({ value: { n: 2 }, source: 'current', problems: [] });
    expect(decodeStateFile(readFileSync(previousCopyPath(file)))).toEqual({ n: 1 });
  });

  it('treats no file at all as a first run', () => {
    expect(readStateFile(join(dir, 'none.json'), schema)).toEqual({ value: undefined, source: 'none', problems: [] });
  });

  it('detects every truncation of the current copy and uses the previous one', () => {
    const file = join(dir, 'state.json');
    writeStateFile(file, { n: 1 });
    writeStateFile(file, { n: 2 });
    const whole = readFileSync(file);
    for (let length = 0; length < whole.length; length += 1) {
      writeFileSync(file, whole.subarray(0, length));
      const read = readStateFile(file, schema);
      expect({ length, value: read.value, source: read.source }).toEqual({ length, value: { n: 1 }, source: 'previous' });
      expect(read.problems[0]).toContain(file);
    }
  });

  it.each([
    ['random bytes', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0a, 0x00, 0xff])],
    ['zeros, as a power cut can leave', Buffer.alloc(512)],
    ['plain JSON without the header', Buffer.from('{"n":3}')],
    ['a changed digit', Buffer.from(encodeStateFile({ n: 2 }).toString('utf8').replace('"n":2', '"n":7'))],
    ['another shape', encodeStateFile({ m: 'x' })],
  ])('detects %s and uses the previous copy', (_name, bytes) => {
    const file = join(dir, 'state.json');
    writeStateFile(file, { n: 1 });
    writeStateFile(file, { n: 2 });
    writeFileSync(file, bytes);

    const read = readStateFile(file, schema);

    expect(read.value).toEqual({ n: 1 });
    expect(read.problems).toHaveLength(1);
    expect(read.problems[0]).toContain(file);
  });

  it('uses the previous copy when the current one is missing (a crash between the two renames)', () => {
    const file = join(dir, 'state.json');
    writeStateFile(file, { n: 1 });
    writeStateFile(file, { n: 2 });
    rmSync(file);

    expect(readStateFile(file, schema)).toMatchObject({ value: { n: 1 }, source: 'previous' });
  });

  it('throws an error naming the file when no copy is readable, and changes nothing', () => {
    const file = join(dir, 'state.json');
    writeFileSync(file, 'garbage');
    writeFileSync(previousCopyPath(file), '');

    expect(() => readStateFile(file, schema)).toThrow(StateFileError);
    expect(() => readStateFile(file, schema)).toThrow(`no readable copy of ${file}`);
    expect(readFileSync(file, 'utf8')).toBe('garbage');
  });

  it('removes temporary files a crash left behind', () => {
    const file = join(dir, 'state.json');
    writeFileSync(`${file}.tmp-12345`, 'half a write');

    expect(readStateFile(file, schema).source).toBe('none');
    expect(existsSync(`${file}.tmp-12345`)).toBe(false);
  });
});

describe('JSON Lines', () => {
  it('cuts a torn last line and leaves whole files alone', () => {
    const file = join(dir, 'out.jsonl');
    appendDurable(file, '{"a":1}\n{"a":2}\n');
    expect(repairJsonLines(file)).toBe(0);
    appendDurable(file, '{"a":3');

    expect(repairJsonLines(file)).toBe(6);
    expect(readFileSync(file, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
    expect(repairJsonLines(join(dir, 'missing.jsonl'))).toBe(0);
  });
});
