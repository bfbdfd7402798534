/**
 * Crash-consistent files for the local pipeline's state (checkpoints, window state) and home
 * outputs. A SIGKILL or a power cut at any instant leaves either the old or the new content,
 * never a mix:
 *
 * - a state file is written to a temporary file, fsynced, the current file is kept as
 *   `<file>.prev` (a hard link: no instant without a current file), the temporary file is
 *   renamed over the current one and the folder is fsynced so the rename itself is durable;
 * - its content carries a header line with the body's length and sha256, so a torn or damaged
 *   file is recognised at start-up rather than half-read;
 * - reading falls back to `<file>.prev` when the current copy is missing or damaged, and
 *   reports the path and the problem; when no copy is readable it throws, so a run never
 *   silently starts over from the beginning;
 * - JSON Lines outputs are appended and fsynced before the caller moves on (their readers'
 *   checkpoints are written only after that), and a torn last line left by a crash mid-append
 *   is cut off at start-up (the records it held are delivered again).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { z } from 'zod';

/** First line of every state file; the version changes if the layout ever does. */
const FORMAT = 'edge-camera-classifier state v1';

/** No usable copy of a state file: the run must not start as if there were none. */
export class StateFileError extends Error {
  constructor(
    readonly path: string,
    readonly problems: string[],
  ) {
    super(
      `no readable copy of ${path} (${problems.join('; ')}). Nothing was changed: move the file aside to ` +
        'start without it (earlier records are then treated as new), or restore it from a backup.',
    );
    this.name = 'StateFileError';
  }
}

/** What reading a state file found. */
export interface StateFileRead<T> {
  /** The content, or undefined when no copy exists (a first run). */
  value: T | undefined;
  /** Which copy was used. */
  source: 'current' | 'previous' | 'none';
  /** Damaged or missing copies, each naming its path (empty when the current copy was fine). */
  problems: string[];
}

/** The copy kept from before the last write. */
export function previousCopyPath(path: string): string {
  return `${path}.prev`;
}

function fsyncPath(path: string, flags: number = constants.O_RDONLY): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the folder's entries (a rename, a new file) durable. */
export function fsyncFolder(folder: string): void {
  try {
    fsyncPath(folder);
  } catch (error: unknown) {
    // Some file systems (and Windows) cannot open a folder for fsync; the data is fsynced anyway.
    const code = (error as { code?: unknown }).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw error;
  }
}

function writeAllAndSync(path: string, data: Buffer): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/**
 * Replaces `path` with `data` atomically and durably: temporary file, fsync, rename, fsync of
 * the folder. A crash leaves the old file or the new one, plus at worst a `*.tmp-<pid>` file
 * that {@link removeTemporaryFiles} clears.
 */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  writeFilesAtomic([{ path, data }]);
}

/**
 * {@link writeFileAtomic} for several files of one folder at a time: each is written and
 * fsynced, then all are renamed into place and the folders fsynced once.
 */
export function writeFilesAtomic(files: ReadonlyArray<{ path: string; data: string | Buffer }>): void {
  const folders = new Set<string>();
  for (const file of files) {
    const folder = dirname(file.path);
    if (!folders.has(folder)) mkdirSync(folder, { recursive: true });
    folders.add(folder);
    writeAllAndSync(temporaryPath(file.path), typeof file.data === 'string' ? Buffer.from(file.data, 'utf8') : file.data);
  }
  for (const file of files) renameSync(temporaryPath(file.path), file.path);
  for (const folder of folders) fsyncFolder(folder);
}

/** Deletes temporary files a crash left next to `path` (any process id). */
export function removeTemporaryFiles(path: string): void {
  const folder = dirname(path);
  if (!existsSync(folder)) return;
  const prefix = `${basename(path)}.tmp-`;
  for (const name of readdirSync(folder)) if (name.startsWith(prefix)) rmSync(join(folder, name), { force: true });
}

/** Temporary files of {@link writeFilesAtomic} left in a folder by a crash. */
export function removeTemporaryFilesIn(folder: string): void {
  if (!existsSync(folder)) return;
  for (const name of readdirSync(folder)) if (/\.tmp-\d+$/.test(name)) rmSync(join(folder, name), { force: true });
}

/** The bytes of a state file holding `value`: a header line, then the JSON body. */
export function encodeStateFile(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  const header = JSON.stringify({ format: FORMAT, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
  return Buffer.concat([Buffer.from(`${header}\n`, 'utf8'), body]);
}

/** The JSON value of a state file's bytes; throws an Error saying what is wrong. */
export function decodeStateFile(bytes: Buffer): unknown {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) throw new Error(bytes.length === 0 ? 'empty file' : 'no header line (truncated or not a state file)');
  let header: unknown;
  try {
    header = JSON.parse(bytes.subarray(0, newline).toString('utf8'));
  } catch {
    throw new Error('unreadable header line (not a state file)');
  }
  const { format, bytes: length, sha256 } = (header ?? {}) as { format?: unknown; bytes?: unknown; sha256?: unknown };
  if (format !== FORMAT) throw new Error(`unknown format ${JSON.stringify(format)}`);
  const body = bytes.subarray(newline + 1);
  if (body.length !== length) throw new Error(`body has ${body.length} bytes, the header says ${String(length)} (torn write)`);
  if (createHash('sha256').update(body).digest('hex') !== sha256) throw new Error('checksum mismatch (damaged)');
  return JSON.parse(body.toString('utf8')) as unknown;
}

/**
 * Writes `value` as the state file `path` (see the module comment): the previous content
 * stays readable as `<path>.prev` until the next write.
 */
export function writeStateFile(path: string, value: unknown): void {
  const folder = dirname(path);
  mkdirSync(folder, { recursive: true });
  const tmp = temporaryPath(path);
  writeAllAndSync(tmp, encodeStateFile(value));
  if (existsSync(path)) {
    const prev = previousCopyPath(path);
    rmSync(prev, { force: true });
    try {
      linkSync(path, prev);
    } catch {
      // File systems without hard links: a copy, made durable before the rename below.
      copyFileSync(path, prev);
      fsyncPath(prev);
    }
  }
  renameSync(tmp, path);
  fsyncFolder(folder);
}

function readCopy<T>(path: string, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; problem: string } {
  if (!existsSync(path)) return { ok: false, problem: `${path}: missing` };
  try {
    const parsed = schema.safeParse(decodeStateFile(readFileSync(path)));
    if (!parsed.success)
      return { ok: false, problem: `${path}: unexpected content (${parsed.error.issues[0]?.message ?? 'invalid'})` };
    return { ok: true, value: parsed.data };
  } catch (error: unknown) {
    return { ok: false, problem: `${path}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/**
 * Reads the state file `path`, checked against `schema`. Falls back to `<path>.prev` when the
 * current copy is missing or damaged (the problems name each path). Returns `source: 'none'`
 * only when neither copy exists.
 *
 * @throws StateFileError when a copy exists but none is readable.
 */
export function readStateFile<T>(path: string, schema: z.ZodType<T>): StateFileRead<T> {
  removeTemporaryFiles(path);
  const prev = previousCopyPath(path);
  if (!existsSync(path) && !existsSync(prev)) return { value: undefined, source: 'none', problems: [] };
  const current = readCopy(path, schema);
  if (current.ok) return { value: current.value, source: 'current', problems: [] };
  const previous = readCopy(prev, schema);
  if (previous.ok) return { value: previous.value, source: 'previous', problems: [current.problem] };
  throw new StateFileError(path, [current.problem, previous.problem]);
}

/**
 * Appends `text` to `path` and fsyncs it before returning, so whoever records progress after
 * this call (a checkpoint) never gets ahead of what is on disk. A new file's folder entry is
 * fsynced too.
 */
export function appendDurable(path: string, text: string): void {
  const created = !existsSync(path);
  const fd = openSync(path, 'a', 0o644);
  try {
    const data = Buffer.from(text, 'utf8');
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (created) fsyncFolder(dirname(path));
}

/**
 * Cuts a torn last line (no final newline: a crash in the middle of an append) off a JSON
 * Lines file. Returns the number of bytes removed (0 when the file is whole or missing).
 */
export function repairJsonLines(path: string): number {
  if (!existsSync(path)) return 0;
  const size = statSync(path).size;
  if (size === 0) return 0;
  const bytes = readFileSync(path);
  if (bytes[bytes.length - 1] === 0x0a) return 0;
  const keep = bytes.lastIndexOf(0x0a) + 1;
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, keep);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return size - keep;
}
