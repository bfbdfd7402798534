/**
 * Record data over HTTP without large strings: a PutRecords or PutRecord body's base64 `Data`
 * values are decoded straight from the request's bytes, and kinesalite parses only what is left
 * (the keys, stream name and partition keys). Plain CommonJS because it runs inside the
 * emulator's worker thread, where no TypeScript loader is registered.
 *
 * Why: a 640x480 frame put over HTTP cost the emulator ~14 ms, most of it making large strings:
 * the body as one string (3 ms for 650 kB on this machine), JSON.parse of it (2 ms more), then
 * kinesalite's Blob check decoding the base64, encoding it again and comparing, its length
 * checks decoding it twice more, and the store once more (bench/emulator-paths.ts). Here each
 * value is checked and decoded in 64 kB slices, which V8 makes and drops cheaply.
 *
 * Same answers: a value is taken from the bytes only when it is base64 kinesalite's Blob check
 * accepts (a multiple of 4 characters of the alphabet, padding only at the end, re-encoding to
 * itself; see {@link canonicalBase64}) and the body's shape is the one expected. Anything else
 * goes to kinesalite unchanged, with its own errors, and so does every other request.
 */
const { dirname, join } = require('node:path');

const KINESALITE = dirname(require.resolve('kinesalite'));
const PUT_RECORDS = 'Kinesis_20131202.PutRecords';
const PUT_TARGETS = new Set([PUT_RECORDS, 'Kinesis_20131202.PutRecord']);
const DATA_KEY = Buffer.from('"Data":"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Characters of base64 decoded per slice: a multiple of 4, and a string V8 makes cheaply. */
const SLICE_CHARS = 64 * 1024;
/** Bodies with less base64 than this are left to kinesalite: nothing to gain. */
const MIN_DATA_CHARS = 32 * 1024;
/** A character outside base64, or padding before the end (kinesalite's own test). */
const NOT_BASE64_PADDED = /[^A-Za-z0-9+/=]|=[^=]/;

/**
 * The bytes of `text` when it is base64 that kinesalite's Blob check accepts, else undefined.
 * Only the last 4 characters can fail to re-encode to themselves: every full quantum before
 * them decodes and encodes one to one.
 */
function canonicalBase64(text) {
  if (text.length % 4 !== 0 || NOT_BASE64_PADDED.test(text) || text.endsWith('===')) return undefined;
  const tail = text.slice(-4);
  if (Buffer.from(tail, 'base64').toString('base64') !== tail) return undefined;
  return Buffer.from(text, 'base64');
}

const EQUALS = 0x3d;
/** base64url's two characters, which Node's decoder takes but kinesalite refuses. */
const URL_SAFE = [0x2d, 0x5f];

/**
 * {@link canonicalBase64} of the characters `body[start, end)`, without a string of the whole
 * and without a regular expression (V8 ran one over fresh 64 kB strings at ~150 MB/s). Node's
 * decoder skips characters outside the alphabet, so a value holding one decodes to fewer bytes
 * than its length promises: that, plus base64url's two characters and padding anywhere but the
 * end, is what kinesalite's check refuses.
 */
function canonicalBase64Bytes(body, start, end) {
  const length = end - start;
  if (length % 4 !== 0) return undefined;
  if (length === 0) return Buffer.alloc(0);
  const padding = body[end - 1] === EQUALS ? (body[end - 2] === EQUALS ? 2 : 1) : 0;
  // Searched in a view of the value only: a put holds up to 500 of them.
  const value = body.subarray(start, end);
  const firstEquals = value.indexOf(EQUALS);
  if (firstEquals !== -1 && firstEquals < length - padding) return undefined;
  for (const character of URL_SAFE) if (value.includes(character)) return undefined;
  const tail = body.latin1Slice(end - 4, end);
  if (Buffer.from(tail, 'base64').toString('base64') !== tail) return undefined;
  const expected = (length / 4) * 3 - padding;
  const out = Buffer.allocUnsafe(expected);
  let written = 0;
  for (let at = start; at < end && written < expected; at += SLICE_CHARS) {
    written += out.write(body.latin1Slice(at, Math.min(at + SLICE_CHARS, end)), written, 'base64');
  }
  return written === expected ? out : undefined;
}

/** The operation (`X-Amz-Target`) of a request in the AWS JSON protocol, else undefined (CBOR, plain JSON). */
function jsonTarget(request) {
  const type = (request.headers['content-type'] || '').split(';')[0].trim();
  return type === 'application/x-amz-json-1.1' ? request.headers['x-amz-target'] : undefined;
}

/**
 * For a PutRecords or PutRecord request: the body with every `Data` value emptied (what
 * kinesalite then parses) and the values' bytes in order, or undefined to leave the request
 * as it is. A `"Data":"` not preceded by a backslash is a key in any valid JSON (a quote
 * inside a string is escaped); a value holding a backslash, or anything not canonical base64,
 * leaves the request to kinesalite.
 */
function lighten(request, body) {
  if (!PUT_TARGETS.has(jsonTarget(request))) return undefined;
  const blobs = [];
  const pieces = [];
  let copied = 0;
  let dataChars = 0;
  for (let key = body.indexOf(DATA_KEY); key !== -1; key = body.indexOf(DATA_KEY, key + DATA_KEY.length)) {
    if (key > 0 && body[key - 1] === BACKSLASH) return undefined;
    const start = key + DATA_KEY.length;
    const end = body.indexOf(QUOTE, start);
    if (end === -1) return undefined;
    if (body.subarray(start, end).includes(BACKSLASH)) return undefined;
    const bytes = canonicalBase64Bytes(body, start, end);
    if (bytes === undefined) return undefined;
    blobs.push(bytes);
    pieces.push(body.subarray(copied, start));
    copied = end;
    dataChars += end - start;
    key = end - DATA_KEY.length + 1;
  }
  if (blobs.length === 0 || dataChars < MIN_DATA_CHARS) return undefined;
  pieces.push(body.subarray(copied));
  const light = Buffer.concat(pieces);
  // Each emptied value must be the one Data of one record, in order: then kinesalite's parse
  // of the light body puts them back where they were (no duplicate keys, no Data elsewhere).
  let parsed;
  try {
    parsed = JSON.parse(light.toString('utf8'));
  } catch {
    return undefined;
  }
  if (holdersOf(parsed, request.headers['x-amz-target'] === PUT_RECORDS) !== blobs.length) return undefined;
  return { body: light, blobs };
}

/** Records (or the request, for PutRecord) whose Data is the empty string. */
function holdersOf(parsed, many) {
  if (parsed === null || typeof parsed !== 'object') return 0;
  const holders = many ? (Array.isArray(parsed.Records) ? parsed.Records : []) : [parsed];
  let count = 0;
  for (const holder of holders) if (holder !== null && typeof holder === 'object' && holder.Data === '') count += 1;
  return count;
}

/** The values taken from the body kinesalite is parsing now (set only while it does). */
let pending;

/**
 * Runs `parse`, kinesalite's handling of a lightened request (synchronous up to its type
 * check), with `blobs` standing in for the emptied `Data` values.
 */
function parsingWith(blobs, parse) {
  pending = { blobs, used: 0 };
  try {
    parse();
  } finally {
    pending = undefined;
  }
}

/**
 * Wraps kinesalite's type check: the emptied `Data` values of a lightened request get their
 * bytes back in order, and any other base64 `Data` text it accepts is decoded once here,
 * which its Blob check then takes as it is (a Buffer). Idempotent.
 */
function install() {
  const validations = require(join(KINESALITE, 'validations'));
  if (validations.checkTypes.__blobs) return;
  const checkTypes = validations.checkTypes;
  const recordsTypes = require(join(KINESALITE, 'validations', 'putRecords')).types;
  const recordTypes = require(join(KINESALITE, 'validations', 'putRecord')).types;
  const decode = (holder) => {
    if (holder === null || typeof holder !== 'object' || typeof holder.Data !== 'string') return;
    if (pending && holder.Data === '' && pending.used < pending.blobs.length) {
      holder.Data = pending.blobs[pending.used];
      pending.used += 1;
      return;
    }
    const bytes = canonicalBase64(holder.Data);
    if (bytes) holder.Data = bytes;
  };
  validations.checkTypes = (data, types) => {
    if (data !== null && typeof data === 'object') {
      if (types === recordsTypes && Array.isArray(data.Records)) for (const record of data.Records) decode(record);
      else if (types === recordTypes) decode(data);
    }
    return checkTypes(data, types);
  };
  validations.checkTypes.__blobs = true;
  validations.checkTypes.__original = checkTypes;
}

module.exports = { install, jsonTarget, lighten, parsingWith, canonicalBase64, canonicalBase64Bytes };
