/**
 * Fixes of kinesalite 3.3.3 where it departs from Kinesis, installed before kinesalite loads.
 * Plain CommonJS because it runs inside the emulator's worker thread.
 *
 * - GetShardIterator AT_TIMESTAMP never answers when no record of the shard arrived at or
 *   after the timestamp (its lazy stream's `head` is never called on an empty match), so the
 *   client waits until its own timeout. Kinesis answers with an iterator at the end of the
 *   shard, from which records put later are read. The local runner asks for exactly that when
 *   it resumes a run that stopped before finishing any record of a shard.
 */
const { dirname, join } = require('node:path');

const KINESALITE = dirname(require.resolve('kinesalite'));

/** Replaces kinesalite's getShardIterator action in the module cache. Idempotent. */
function install() {
  const path = join(KINESALITE, 'actions', 'getShardIterator.js');
  const original = require(path);
  if (original.__fixed) return;
  const db = require(join(KINESALITE, 'db'));

  function getShardIterator(store, data, cb) {
    if (data.ShardIteratorType !== 'AT_TIMESTAMP' || data.Timestamp == null || data.Timestamp * 1000 > Date.now()) {
      return original(store, data, cb);
    }
    let shardIx;
    try {
      shardIx = db.resolveShardId(data.ShardId).shardIx;
    } catch {
      return original(store, data, cb); // its own error
    }
    let found = false;
    let answered = false;
    const answer = () => {
      if (answered) return;
      answered = true;
      // Nothing at or after the timestamp: the end of the shard, as Kinesis answers.
      if (found) original(store, data, cb);
      else original(store, { ...data, ShardIteratorType: 'LATEST', Timestamp: undefined }, cb);
    };
    store.getStream(data.StreamName, (err) => {
      if (err) return original(store, data, cb); // its own error
      const stream = store
        .getStreamDb(data.StreamName)
        .createReadStream({ gt: db.shardIxToHex(shardIx), lt: db.shardIxToHex(shardIx + 1) });
      stream.on('data', (item) => {
        if (item.value.ApproximateArrivalTimestamp >= data.Timestamp) {
          found = true;
          stream.destroy();
          answer();
        }
      });
      stream.on('error', () => answer());
      stream.on('end', answer);
      stream.on('close', answer);
    });
  }
  getShardIterator.__fixed = true;
  require.cache[path].exports = getShardIterator;
}

module.exports = { install };
