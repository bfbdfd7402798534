/**
 * Deletes records from kinesalite's store once every in-process consumer has finished them.
 *
 * Why: kinesalite keeps each record for the stream's retention (24 h) and only drops older ones
 * lazily, when GetRecords passes over them. A local pipeline running for hours (`--serve` with a
 * camera) would keep every frame it ever saw, several times over (camera-images, uncertain
 * images, predictions), until the process runs out of memory. The local pipeline knows every
 * consumer of its streams and their checkpoints, so it can tell the store which records nobody
 * still needs; this module does the deleting. Plain CommonJS because it runs inside the
 * emulator's worker thread, where no TypeScript loader is registered.
 *
 * Records live in a sub-level per stream under the key `<shardIx as 8 hex digits>/<sequence
 * number>` (kinesalite's db/index.js and actions/getRecords.js). Deleting a shard's prefix below
 * a sequence number is what kinesalite's own retention does, so every action keeps working:
 * TRIM_HORIZON starts at the first record left, AFTER_SEQUENCE_NUMBER works for a deleted
 * record too (it only computes the next number). The number of records deleted per shard is
 * kept in the same sub-level under `~trimmed/<shardIx hex>`, written in the same batch as the
 * deletions (atomic in LevelDB), so a persisted stream still knows how many records it held
 * after a restart; `~` sorts after every shard prefix, outside any range kinesalite reads.
 */
const { dirname, join } = require('node:path');

const KINESALITE_DB = join(dirname(require.resolve('kinesalite')), 'db');
/** Keeps count of the bytes each stream holds (for its backlog bound). */
const direct = require('./kinesalite-direct.js');
const SHARD_ID = /^shardId-(\d{12})$/;
const DIGITS = /^\d+$/;
const TRIMMED_PREFIX = '~trimmed/';
/** Keys deleted per batch: bounds the memory and the pause of one step. */
const CHUNK = 5000;

/**
 * Calls the kinesalite factory and returns its server together with its store, which
 * kinesalite creates inside the factory and does not expose. `db.create` is wrapped only for
 * the duration of the call (calling whatever `db.create` is installed, other wrappers included),
 * so several emulators in one thread each get their own store.
 */
function createServer(kinesalite, options) {
  const db = require(KINESALITE_DB);
  const create = db.create;
  let store;
  db.create = function () {
    store = create.apply(this, arguments);
    return store;
  };
  try {
    const server = kinesalite(options);
    if (!store) throw new Error('kinesalite did not create its store through db.create');
    return { server, store };
  } finally {
    db.create = create;
  }
}

function callback(resolve, reject) {
  return (error, value) => (error ? reject(error) : resolve(value));
}

function collect(stream) {
  return new Promise((resolve, reject) => {
    const items = [];
    stream.on('data', (item) => items.push(item));
    stream.once('error', reject);
    stream.once('end', () => resolve(items));
  });
}

function getStream(store, name) {
  return new Promise((resolve, reject) => store.getStream(name, callback(resolve, reject)));
}

/** Trims of one store run one after another: each reads and rewrites the trimmed counts. */
const queues = new WeakMap();
function serialised(store, task) {
  const previous = queues.get(store) || Promise.resolve();
  const next = previous.then(task, task);
  queues.set(
    store,
    next.catch(() => undefined),
  );
  return next;
}

/**
 * Deletes the records of `stream`'s shard `shardId` whose sequence number is below
 * `upToExclusive` (a decimal string; compared as BigInt). Resolves with the number deleted.
 * Rejects on a malformed shard id or sequence number, or a stream or shard that does not exist.
 */
function trim(store, stream, shardId, upToExclusive) {
  return serialised(store, async () => {
    const match = SHARD_ID.exec(String(shardId));
    if (!match) throw new Error(`not a shard id: ${JSON.stringify(shardId)}`);
    if (typeof upToExclusive !== 'string' || !DIGITS.test(upToExclusive)) {
      throw new Error(`not a sequence number: ${JSON.stringify(upToExclusive)}`);
    }
    const shardIx = Number(match[1]);
    const description = await getStream(store, stream);
    if (shardIx >= description.Shards.length) throw new Error(`stream ${stream} has no shard ${shardId}`);
    const limit = BigInt(upToExclusive);
    const { shardIxToHex } = require(KINESALITE_DB);
    const prefix = shardIxToHex(shardIx) + '/';
    const range = { gte: prefix, lt: shardIxToHex(shardIx + 1), limit: CHUNK }; // the shard's keys, as GetRecords reads them
    const countKey = TRIMMED_PREFIX + shardIxToHex(shardIx);
    const streamDb = store.getStreamDb(stream);
    let deleted = 0;
    for (;;) {
      // Every sequence number kinesalite makes has 56 digits, so the keys come in numeric order:
      // take them from the oldest until the first one at or past the bound (compared as BigInt,
      // so a bound of any length means its number).
      const items = await collect(streamDb.createReadStream(range));
      const doomed = [];
      let bytes = 0;
      let reached = false;
      for (const { key, value } of items) {
        const seq = String(key).slice(prefix.length);
        if (!DIGITS.test(seq) || BigInt(seq) >= limit) {
          reached = true;
          break;
        }
        doomed.push(key);
        bytes += value ? direct.dataBytes(value.Data) : 0;
      }
      if (doomed.length > 0) {
        const before = await trimmedInShard(streamDb, countKey);
        const ops = doomed.map((key) => ({ type: 'del', key }));
        ops.push({ type: 'put', key: countKey, value: { records: before + doomed.length } });
        await new Promise((resolve, reject) => streamDb.batch(ops, callback(resolve, reject)));
        direct.released(store, stream, bytes, doomed.length);
        deleted += doomed.length;
      }
      if (reached || items.length < CHUNK) return deleted;
    }
  });
}

function trimmedInShard(streamDb, countKey) {
  return new Promise((resolve, reject) =>
    streamDb.get(countKey, (error, value) => {
      if (error && error.name === 'NotFoundError') return resolve(0);
      if (error) return reject(error);
      resolve(value && Number.isSafeInteger(value.records) ? value.records : 0);
    }),
  );
}

/** Records deleted by `trim` from `stream` so far, all shards (0 for an unknown stream). */
function trimmedCount(store, stream) {
  return serialised(store, async () => {
    const streamDb = store.getStreamDb(stream);
    const items = await collect(streamDb.createReadStream({ gte: TRIMMED_PREFIX, lt: '~trimmed0' }));
    return items.reduce(
      (sum, item) => sum + (item.value && Number.isSafeInteger(item.value.records) ? item.value.records : 0),
      0,
    );
  });
}

module.exports = { createServer, trim, trimmedCount };
