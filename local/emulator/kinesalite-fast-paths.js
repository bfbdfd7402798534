/**
 * Faster, behaviour-identical versions of kinesalite's sequence-number and hash-key helpers,
 * installed on its `db` module before the server starts. Plain CommonJS because it runs
 * inside the emulator's worker thread, where no TypeScript loader is registered.
 *
 * Why: profiling a replay showed a quarter of the emulator thread's time in bignumber.js
 * (every record put or read parses and prints 185-bit sequence numbers in base 10 and 16, and
 * every put hashes its partition key into a BigNumber), plus the garbage it leaves. Native
 * BigInt does the same arithmetic several times faster. Inputs the fast paths do not cover
 * (anything but plain decimal digits) go to kinesalite's own functions, so errors and edge
 * cases stay exactly as they were; test/unit/emulator-fast-paths.test.ts compares both.
 */
const crypto = require('node:crypto');
const { dirname, join } = require('node:path');
const blobs = require('./kinesalite-blobs.js');

const KINESALITE = require.resolve('kinesalite');
// kinesalite's own copy, for the rare comparisons the fast path leaves to it.
const BigNumber = require(require.resolve('bignumber.js', { paths: [dirname(KINESALITE)] }));

const POW_2_124 = 1n << 124n;
const POW_2_124_NEXT = (1n << 125n) * 16n;
const POW_2_185 = 1n << 185n;
const POW_2_185_NEXT = 3n << 184n; // 2^185 * 1.5
const DIGITS = /^\d+$/;

/**
 * Replaces `parseSequence`, `stringifySequence` and `partitionKeyToHashKey` on kinesalite's
 * `db` module (its actions look them up there on every call). Idempotent.
 */
function install(db = require(join(dirname(KINESALITE), 'db'))) {
  if (db.__fastPaths) return db;
  const original = {
    parseSequence: db.parseSequence,
    stringifySequence: db.stringifySequence,
    partitionKeyToHashKey: db.partitionKeyToHashKey,
  };

  function parseSequence(seq) {
    if (typeof seq !== 'string' || !DIGITS.test(seq)) return original.parseSequence(seq);
    let seqNum = BigInt(seq);
    if (seqNum < POW_2_124) seqNum += POW_2_124;
    const hex = seqNum.toString(16);
    const version =
      seqNum < POW_2_124_NEXT
        ? 0
        : seqNum > POW_2_185 && seqNum < POW_2_185_NEXT
          ? parseInt(hex.slice(hex.length - 1), 16)
          : null;
    if (version === 2) {
      const seqIxHex = hex.slice(11, 27);
      let shardIxHex = hex.slice(38, 46);
      if (parseInt(seqIxHex[0], 16) > 7) throw new Error('Sequence index too high');
      if (parseInt(shardIxHex[0], 16) > 7) shardIxHex = '-' + shardIxHex;
      const shardCreateSecs = parseInt(hex.slice(1, 10), 16);
      if (shardCreateSecs >= 16025175000) throw new Error('Date too large: ' + shardCreateSecs);
      return {
        shardCreateTime: shardCreateSecs * 1000,
        seqIx: BigInt('0x' + seqIxHex).toString(),
        byte1: hex.slice(27, 29),
        seqTime: parseInt(hex.slice(29, 38), 16) * 1000,
        shardIx: parseInt(shardIxHex, 16),
        version: version,
      };
    }
    // Versions 0 and 1 (and unknown ones) are rare: kinesalite's own code handles them.
    return original.parseSequence(seq);
  }

  function stringifySequence(obj) {
    const seqIx = obj.seqIx || 0;
    const plainIndex = typeof seqIx === 'number' ? Number.isSafeInteger(seqIx) && seqIx >= 0 : DIGITS.test(String(seqIx));
    if (!((obj.version == null || Number(obj.version) === 2) && plainIndex)) return original.stringifySequence(obj);
    const hex = [
      '2',
      ('00000000' + Math.floor(obj.shardCreateTime / 1000).toString(16)).slice(-9),
      (obj.shardIx || 0).toString(16).slice(-1),
      ('0000000000000000' + BigInt(seqIx).toString(16)).slice(-16),
      obj.byte1 || '00',
      ('00000000' + Math.floor((obj.seqTime || obj.shardCreateTime) / 1000).toString(16)).slice(-9),
      db.shardIxToHex(obj.shardIx),
      '2',
    ].join('');
    if (!/^[0-9a-f]+$/.test(hex)) return original.stringifySequence(obj);
    return BigInt('0x' + hex).toString();
  }

  /** A hash key that compares like kinesalite's BigNumber one (the only use it has). */
  class HashKey {
    constructor(value) {
      this.value = value;
    }
    comparedTo(other) {
      const text =
        typeof other === 'object' && other !== null && typeof other.toFixed === 'function' ? other.toFixed() : String(other);
      if (!DIGITS.test(text)) return new BigNumber(this.toFixed()).comparedTo(other);
      const b = BigInt(text);
      return this.value < b ? -1 : this.value > b ? 1 : 0;
    }
    toFixed() {
      return this.value.toString();
    }
    toString() {
      return this.value.toString();
    }
  }

  // Camera streams repeat a handful of partition keys: remember their hashes (bounded).
  const hashes = new Map();
  function partitionKeyToHashKey(partitionKey) {
    let key = hashes.get(partitionKey);
    if (key === undefined) {
      key = new HashKey(BigInt('0x' + crypto.createHash('md5').update(partitionKey, 'utf8').digest('hex')));
      if (hashes.size >= 10000) hashes.clear();
      hashes.set(partitionKey, key);
    }
    return key;
  }

  db.parseSequence = parseSequence;
  db.stringifySequence = stringifySequence;
  db.partitionKeyToHashKey = partitionKeyToHashKey;
  db.create = keepRecordsAsObjects(db.create);
  db.__fastPaths = original;
  blobs.install();
  return db;
}

/**
 * An encoding for records held in memory: the stored object itself, handed out as a shallow
 * copy (kinesalite's GetRecords adds fields to what it reads, which must not reach the store).
 */
const recordObjects = {
  type: 'record-objects',
  // "Buffer" values tell memdown to hand back what it holds rather than call toString() on it.
  buffer: true,
  encode: (value) => value,
  decode: (value) => Object.assign({}, value),
};

/**
 * Wraps kinesalite's `db.create` so that, in memory (no `path`), stream records are kept as
 * the objects PutRecords built instead of JSON text in Buffers.
 *
 * Why: memdown stores every value as a Buffer, so each record was JSON.stringify'd and UTF-8
 * encoded on put, then UTF-8 decoded and JSON.parse'd on every read: four full passes over
 * the record's base64 data (816 kB for a 640x480 frame) that do nothing in a process-local
 * store. The persisted LevelDB store (`path`) keeps kinesalite's JSON unchanged.
 */
function keepRecordsAsObjects(create) {
  if (create.__recordObjects) return create;
  const sub = require(require.resolve('subleveldown', { paths: [dirname(KINESALITE)] }));
  function createStore(options) {
    const store = create.apply(this, arguments);
    if (options && options.path) return store;
    // levelup -> deferred-leveldown -> memdown: the one that turns values into Buffers.
    let memory = store.db;
    while (memory && !memory._store) memory = memory._db || memory.db;
    if (!memory) return store;
    const serializeValue = memory._serializeValue;
    memory._serializeValue = function (value) {
      return typeof value === 'object' && value !== null && !Buffer.isBuffer(value) ? value : serializeValue.call(this, value);
    };
    const streamDbs = new Map();
    store.getStreamDb = (name) => {
      let streamDb = streamDbs.get(name);
      if (!streamDb) {
        streamDb = sub(store.db, 'stream-' + name, { valueEncoding: recordObjects });
        streamDb.lock = require(require.resolve('lock', { paths: [dirname(KINESALITE)] })).Lock();
        streamDbs.set(name, streamDb);
      }
      return streamDb;
    };
    return store;
  }
  createStore.__recordObjects = true;
  return createStore;
}

/** Response bodies above this many characters are written as a Buffer (see below). */
const LARGE_BODY_CHARS = 64 * 1024;

/**
 * Makes `response.end(text)` write a large text body as one UTF-8 Buffer: the same bytes
 * (kinesalite's Content-Length is already the UTF-8 length), but Node writes a Buffer to the
 * socket with a fraction of the CPU it spends writing a string of that size: 15 against 43 ms
 * per 10 MB GetRecords response measured here, and GetRecords responses were half of the
 * emulator thread's time with 640x480 frames.
 */
function sendLargeBodiesAsBuffers(response) {
  const end = response.end;
  response.end = function (chunk, ...rest) {
    if (typeof chunk === 'string' && chunk.length > LARGE_BODY_CHARS) return end.call(this, Buffer.from(chunk, 'utf8'), ...rest);
    return end.call(this, chunk, ...rest);
  };
}

/** Answers a request with a JSON body as kinesalite would (status 200, its headers). */
function answerJson(response, text) {
  const body = Buffer.from(text, 'utf8');
  response.statusCode = 200;
  response.setHeader('x-amzn-RequestId', crypto.randomUUID());
  response.setHeader('Content-Type', 'application/x-amz-json-1.1');
  response.setHeader('Content-Length', body.length);
  response.end(body);
}

/** kinesalite's request size bound (its index.js): bodies above it get a 413. */
const MAX_REQUEST_BYTES = 7 * 1024 * 1024;

/**
 * Hands kinesalite each request body in one piece instead of chunk by chunk.
 *
 * Why: kinesalite grows the body with `Buffer.concat([body, chunk])` on every 64 kB chunk,
 * which copies the whole body again each time: quadratic in the body's size. A PutRecords of
 * eight 640x480 frames (about 6.5 MB) cost ~2 s of copying that way, a third of the
 * emulator's time in a profile. Collected here in a list and joined once, kinesalite sees one
 * chunk and runs its own checks on it, the 413 above 7 MB included. Bodies beyond that bound
 * are not kept: the part over the bound is dropped and kinesalite answers 413 as before. A
 * request the client aborts is dropped instead of reaching kinesalite's `throw` on 'error',
 * which would take the whole emulator down. `answerEarly(request, body)`, when given, may
 * answer a request itself (JSON text) before kinesalite parses it; a put's record data is
 * taken from the raw body (kinesalite-blobs.js).
 */
function collectRequestBodies(server, answerEarly) {
  if (server.__collectsBodies) return server;
  const { EventEmitter } = require('node:events');
  const handlers = server.listeners('request');
  server.removeAllListeners('request');
  server.on('request', (request, response) => {
    let chunks = [];
    let length = 0;
    const joined = () => {
      if (chunks.length > 1) chunks = [Buffer.concat(chunks, length)];
      return chunks[0];
    };
    request.on('data', (chunk) => {
      if (length > MAX_REQUEST_BYTES) return;
      chunks.push(chunk);
      length += chunk.length;
    });
    request.on('error', () => response.destroy());
    sendLargeBodiesAsBuffers(response);
    request.on('end', () => {
      const withinBound = length > 0 && length <= MAX_REQUEST_BYTES;
      const early = answerEarly && withinBound ? answerEarly(request, joined()) : undefined;
      if (early !== undefined) return answerJson(response, early);
      // kinesalite reads only method, url and headers and listens for data/end/error.
      const whole = new EventEmitter();
      whole.method = request.method;
      whole.url = request.url;
      whole.headers = request.headers;
      for (const handler of handlers) handler.call(server, whole, response);
      const light = withinBound ? blobs.lighten(request, joined()) : undefined;
      if (light) {
        whole.emit('data', light.body);
        return blobs.parsingWith(light.blobs, () => whole.emit('end'));
      }
      if (length > 0) whole.emit('data', joined());
      whole.emit('end');
    });
  });
  server.__collectsBodies = true;
  return server;
}

module.exports = { install, collectRequestBodies };
