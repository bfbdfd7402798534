/**
 * Append-only files of the home data folder: JSON Lines logs and the image pack. A process
 * killed mid-write leaves at most a torn last line; opening a log cuts it off so the next
 * append starts on a line of its own.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** Reads a JSON Lines file: every whole line parsed, unreadable lines counted, not thrown. */
export function readJsonLines(file: string): { values: unknown[]; unreadable: number } {
  if (!existsSync(file)) return { values: [], unreadable: 0 };
  const values: unknown[] = [];
  let unreadable = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      values.push(JSON.parse(line) as unknown);
    } catch {
      unreadable += 1;
    }
  }
  return { values, unreadable };
}

/** Replaces a file's content atomically (write aside, then rename). */
export function rewriteFile(file: string, content: string | Buffer): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}

/** Makes a new file's directory entry durable (a file fsync alone does not). */
function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * An append-only file kept open. `append` writes one chunk with one system call (a batch
 * of lines is one append); `sync` makes it durable.
 */
export class AppendFile {
  private readonly fd: number;
  /** Bytes in the file: the offset the next append starts at. */
  size: number;

  /**
   * Opens (creating) `file` for appending. With `lines`, a torn last line (no final newline,
   * left by a crash mid-write) is cut off first.
   */
  constructor(
    readonly file: string,
    options: { lines: boolean; readOnly?: boolean },
  ) {
    if (options.readOnly) {
      // A reader beside a running home: never cut, never create, never write.
      this.fd = existsSync(file) ? openSync(file, 'r') : -1;
      this.size = this.fd >= 0 ? fstatSync(this.fd).size : 0;
      return;
    }
    mkdirSync(dirname(file), { recursive: true });
    const created = !existsSync(file);
    this.fd = openSync(file, 'a+');
    this.size = fstatSync(this.fd).size;
    if (options.lines && this.size > 0) this.cutTornLine();
    if (created) fsyncDirectory(dirname(file));
  }

  private cutTornLine(): void {
    const probe = Buffer.alloc(Math.min(this.size, 64 * 1024));
    let end = this.size;
    for (;;) {
      const start = Math.max(0, end - probe.length);
      const n = readSync(this.fd, probe, 0, end - start, start);
      const last = probe.subarray(0, n).lastIndexOf(0x0a);
      if (last >= 0) {
        end = start + last + 1;
        break;
      }
      if (start === 0) {
        end = 0;
        break;
      }
      end = start;
    }
    if (end !== this.size) {
      ftruncateSync(this.fd, end);
      this.size = end;
    }
  }

  /** Appends `data` in one write; returns the offset it starts at. */
  append(data: string | Buffer): number {
    if (this.fd < 0) throw new Error(`${this.file} is open read-only`);
    const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const offset = this.size;
    let written = 0;
    while (written < buffer.length) written += writeSync(this.fd, buffer, written, buffer.length - written);
    this.size += buffer.length;
    return offset;
  }

  /** Reads `length` bytes at `offset` (the image pack serves images this way). */
  read(offset: number, length: number): Buffer {
    const buffer = Buffer.alloc(length);
    let read = 0;
    if (this.fd < 0) return buffer.subarray(0, 0);
    while (read < length) {
      const n = readSync(this.fd, buffer, read, length - read, offset + read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read);
  }

  /** Flushes the file to the disk: what was appended survives a crash or power loss. */
  sync(): void {
    fsyncSync(this.fd);
  }

  /** {@link sync} on the thread pool: the event loop goes on serving while the disk flushes. */
  syncInBackground(): Promise<void> {
    return new Promise((resolveSync, reject) => fsync(this.fd, (error) => (error ? reject(error) : resolveSync())));
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
  }
}

/**
 * Claims a data folder for one writing process: `home.lock` holds its pid. A lock left by a
 * process that no longer runs (killed) is taken over. Returns the function that releases it.
 * @throws Error naming the other process when it still runs.
 */
export function lockDataFolder(dir: string): () => void {
  const file = `${dir}/home.lock`;
  mkdirSync(dir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (error: unknown) {
      if ((error as { code?: unknown }).code !== 'EEXIST') throw error;
      const pid = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && isRunning(pid)) {
        throw new Error(`another home (pid ${pid}) is using the data folder ${dir}: stop it, or pass another --data folder`);
      }
      unlinkSync(file);
    }
  }
  throw new Error(`cannot lock the data folder ${dir}`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    return (error as { code?: unknown }).code === 'EPERM';
  }
}
