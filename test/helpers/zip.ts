/**
 * A minimal reader for the zip files the framework writes (deflate or stored entries, no
 * zip64, no encryption): enough to measure a Lambda artifact's unzipped size from its central
 * directory and to extract it, with no tool or dependency beyond node:zlib.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** Uncompressed bytes: what counts toward Lambda's 250 MB limit. */
  size: number;
  compressedSize: number;
  method: number;
  localHeaderOffset: number;
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_FILE_HEADER = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;

/** Lists a zip's entries from its central directory. Throws on anything it cannot read. */
export function listZip(path: string): ZipEntry[] {
  const buf = readFileSync(path);
  // The end record is 22 bytes plus a comment of at most 65,535 bytes.
  let end = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65_535); i--) {
    if (buf.readUInt32LE(i) === END_OF_CENTRAL_DIRECTORY) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`${path}: no end of central directory`);
  const count = buf.readUInt16LE(end + 10);
  let offset = buf.readUInt32LE(end + 16);
  if (count === 0xffff || offset === 0xffffffff) throw new Error(`${path}: zip64 is not supported`);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(offset) !== CENTRAL_FILE_HEADER) throw new Error(`${path}: bad central header at ${offset}`);
    const nameLength = buf.readUInt16LE(offset + 28);
    const extraLength = buf.readUInt16LE(offset + 30);
    const commentLength = buf.readUInt16LE(offset + 32);
    entries.push({
      method: buf.readUInt16LE(offset + 10),
      compressedSize: buf.readUInt32LE(offset + 20),
      size: buf.readUInt32LE(offset + 24),
      localHeaderOffset: buf.readUInt32LE(offset + 42),
      name: buf.toString('utf8', offset + 46, offset + 46 + nameLength),
    });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Sum of the entries' uncompressed sizes. */
export function unzippedSize(path: string): number {
  return listZip(path).reduce((sum, entry) => sum + entry.size, 0);
}

/** Extracts every file entry under `dest` (which must not be escaped by an entry name). */
export function extractZip(path: string, dest: string): void {
  const buf = readFileSync(path);
  const root = resolve(dest);
  for (const entry of listZip(path)) {
    if (entry.name.endsWith('/')) continue;
    const target = resolve(join(root, entry.name));
    if (!target.startsWith(root + sep)) throw new Error(`${path}: entry ${entry.name} escapes the folder`);
    const at = entry.localHeaderOffset;
    if (buf.readUInt32LE(at) !== LOCAL_FILE_HEADER) throw new Error(`${path}: bad local header for ${entry.name}`);
    const start = at + 30 + buf.readUInt16LE(at + 26) + buf.readUInt16LE(at + 28);
    const raw = buf.subarray(start, start + entry.compressedSize);
    let data: Buffer;
    if (entry.method === 0) data = raw;
    else if (entry.method === 8) data = inflateRawSync(raw);
    else throw new Error(`${path}: ${entry.name} uses compression method ${entry.method}`);
    if (data.length !== entry.size) throw new Error(`${path}: ${entry.name} inflated to ${data.length}, expected ${entry.size}`);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, data);
  }
}
