/**
 * The emulator's direct path and its backlog bound, installed on kinesalite before it loads.
 * Plain CommonJS because it runs inside the emulator's worker thread, where no TypeScript
 * loader is registered.
 *
 * Direct path: the pipeline's own readers and writers live in the same process as the
 * emulator, so they call kinesalite's actions through a MessagePort instead of HTTP. A call is
 * `{id, action, data}`; kinesalite's own validations and actions run on it exactly as for an
 * HTTP request, so the answers and errors are the same, but record data travels as bytes:
 * PutRecords takes each record's data as a Uint8Array and GetRecords answers with all the
 * page's data packed in one ArrayBuffer, transferred (not copied) to the caller. No JSON, no
 * base64 and no large strings on either side.
 *
 * Why: every frame crossed the emulator five times as JSON over HTTP; its base64 became a large
 * string several times over, which cost more CPU than classifying it (README, Measured figures).
 *
 * Records are kept as Buffers in the in-memory store whichever path put them (base64 text, as
 * kinesalite keeps them, in a persisted one); GetRecords over HTTP writes a Buffer's data as
 * base64, so external clients see exactly what they saw before.
 *
 * Backlog bound: a stream given a byte limit ({@link setLimits}) refuses PutRecords entries
 * with ProvisionedThroughputExceededException while the records it holds (not yet deleted by
 * the trimmer) exceed it: Kinesis's own signal to slow down, on both paths alike, counted per
 * stream.
 */
const { dirname, join } = require('node:path');
const { jsonTarget } = require('./kinesalite-blobs.js');

const KINESALITE = dirname(require.resolve('kinesalite'));
const ACTIONS = join(KINESALITE, 'actions');
const THROTTLED = 'ProvisionedThroughputExceededException';

/** Per store: bytes held and entries refused per stream, and the limits. */
const accounts = new WeakMap();
function accountOf(store) {
  let account = accounts.get(store);
  if (!account) {
    account = {
      held: new Map(),
      records: new Map(),
      throttled: new Map(),
      limits: new Map(),
      persisted: false,
      ports: new Set(),
      active: 0,
    };
    accounts.set(store, account);
  }
  return account;
}

/** Bytes of a record's data as stored: a Buffer, or base64 text (decoded length). */
function dataBytes(data) {
  if (typeof data !== 'string') return data ? data.length : 0;
  const padding = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return (data.length / 4) * 3 - padding;
}

/**
 * The PutRecords answer refusing all `count` entries when `stream` is over its limit (and
 * counts them), or undefined when the stream may take them.
 */
function refusal(account, stream, count) {
  const limit = account.limits.get(stream);
  const held = account.held.get(stream) || 0;
  if (limit === undefined || held < limit) return undefined;
  account.throttled.set(stream, (account.throttled.get(stream) || 0) + count);
  const message = `Rate exceeded for stream ${stream}: the local backlog holds ${Math.round(held / 1048576)} MB (limit ${Math.round(limit / 1048576)} MB)`;
  const entry = { ErrorCode: THROTTLED, ErrorMessage: message };
  return { FailedRecordCount: count, Records: Array.from({ length: count }, () => entry) };
}

const PUT_RECORDS_TARGET = 'Kinesis_20131202.PutRecords';
const PARTITION_KEY = Buffer.from('"PartitionKey":');
const DATA = Buffer.from('"Data":');

/** Occurrences of `needle` in `body`. */
function occurrences(body, needle) {
  let count = 0;
  for (let at = body.indexOf(needle); at !== -1; at = body.indexOf(needle, at + needle.length)) count += 1;
  return count;
}

/**
 * A check for HTTP PutRecords requests to a stream over its backlog limit, answered without
 * parsing the body: `(request, body)` gives the JSON text of the refusal, the same answer
 * kinesalite's own path would give, or undefined to handle the request as usual.
 *
 * Why: a refused 640x480 frame cost the emulator as much as a stored one (JSON.parse of its
 * base64 and kinesalite's Blob validation, ~8 ms), so a camera pressing on a full backlog
 * spent the CPU the pipeline needed to drain it. The stream name and the entry count are found
 * in the raw bytes: in JSON as the SDKs and the AWS CLI write it, a record's base64 cannot hold
 * a quote and a quote inside a partition key is escaped, so these keys match only as keys.
 * Anything else (other spellings, CBOR, a count that does not add up) takes the usual path.
 */
function earlyRefusal(store) {
  const account = accountOf(store);
  const names = new Map();
  return (request, body) => {
    if (account.limits.size === 0 || !request.headers.authorization || jsonTarget(request) !== PUT_RECORDS_TARGET)
      return undefined;
    for (const [stream, limit] of account.limits) {
      if ((account.held.get(stream) || 0) < limit) continue;
      if (!names.has(stream)) names.set(stream, Buffer.from(`"StreamName":${JSON.stringify(stream)}`));
      const name = names.get(stream);
      const at = body.indexOf(name);
      if (at === -1 || body.indexOf(name, at + 1) !== -1) continue;
      const count = occurrences(body, PARTITION_KEY);
      if (count < 1 || count > 500 || occurrences(body, DATA) !== count) return undefined;
      return JSON.stringify(refusal(account, stream, count));
    }
    return undefined;
  };
}

/** Record data as the store keeps it: bytes in memory, base64 text in a persisted store. */
function storedForm(account, data) {
  if (account.persisted) return Buffer.isBuffer(data) ? data.toString('base64') : data;
  return typeof data === 'string' ? Buffer.from(data, 'base64') : data;
}

function replaceAction(name, wrap) {
  const path = join(ACTIONS, `${name}.js`);
  const original = require(path);
  if (original.__direct) return;
  const wrapped = wrap(original);
  wrapped.__direct = true;
  wrapped.__original = original;
  require.cache[path].exports = wrapped;
}

/**
 * Wraps kinesalite's record actions (idempotent; before kinesalite's index.js loads, which
 * keeps the actions it finds then): PutRecords and PutRecord count the bytes they store and
 * refuse entries over a stream's limit; GetRecords over HTTP writes Buffer data as base64.
 */
function install() {
  replaceAction('putRecords', (original) => (store, data, cb) => {
    const account = accountOf(store);
    const refused = refusal(account, data.StreamName, data.Records.length);
    if (refused) return cb(null, refused);
    let bytes = 0;
    for (const record of data.Records) {
      // In memory, data is kept as bytes whichever path wrote it: a third smaller than its
      // base64 text, and no large string for the collector (HTTP reads encode it again).
      record.Data = storedForm(account, record.Data);
      bytes += dataBytes(record.Data);
    }
    original(store, data, (error, result) => {
      if (!error) {
        account.held.set(data.StreamName, (account.held.get(data.StreamName) || 0) + bytes);
        account.records.set(
          data.StreamName,
          (account.records.get(data.StreamName) || 0) + data.Records.length - (result?.FailedRecordCount || 0),
        );
      }
      cb(error, result);
    });
  });
  replaceAction('putRecord', (original) => (store, data, cb) => {
    const account = accountOf(store);
    data.Data = storedForm(account, data.Data);
    original(store, data, (error, result) => {
      if (!error) {
        account.held.set(data.StreamName, (account.held.get(data.StreamName) || 0) + dataBytes(data.Data));
        account.records.set(data.StreamName, (account.records.get(data.StreamName) || 0) + 1);
      }
      cb(error, result);
    });
  });
  replaceAction(
    'getRecords',
    (original) => (store, data, cb) =>
      original(store, data, (error, result) => {
        if (!error && result) {
          for (const record of result.Records) if (typeof record.Data !== 'string') record.Data = record.Data.toString('base64');
        }
        cb(error, result);
      }),
  );
  replaceAction(
    'deleteStream',
    (original) => (store, data, cb) =>
      original(store, data, (error, result) => {
        if (!error) {
          accountOf(store).held.delete(data.StreamName);
          accountOf(store).records.delete(data.StreamName);
        }
        cb(error, result);
      }),
  );
}

/** Sets the byte limits of streams (`{name: bytes}`) and whether the store is persisted. */
function setLimits(store, limits, persisted) {
  const account = accountOf(store);
  account.persisted = persisted === true;
  for (const [name, bytes] of Object.entries(limits || {})) account.limits.set(name, bytes);
}

/** The trimmer deleted `count` records of `bytes` of data: they are no longer held. */
function released(store, stream, bytes, count) {
  const account = accountOf(store);
  account.held.set(stream, Math.max(0, (account.held.get(stream) || 0) - bytes));
  account.records.set(stream, Math.max(0, (account.records.get(stream) || 0) - count));
}

/** Bytes held, limit and entries refused, per stream with a limit or records. */
function stats(store) {
  const account = accountOf(store);
  const out = {};
  for (const name of new Set([...account.held.keys(), ...account.limits.keys()])) {
    out[name] = {
      heldBytes: account.held.get(name) || 0,
      heldRecords: account.records.get(name) || 0,
      throttledRecords: account.throttled.get(name) || 0,
      ...(account.limits.has(name) ? { limitBytes: account.limits.get(name) } : {}),
    };
  }
  return out;
}

/** The operations the direct path serves: the ones the pipeline's readers and writers use. */
const OPERATIONS = new Set([
  'CreateStream',
  'DescribeStream',
  'DescribeStreamSummary',
  'ListShards',
  'ListStreams',
  'GetShardIterator',
  'GetRecords',
  'PutRecords',
  'PutRecord',
]);

function asBuffer(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return value;
}

/**
 * Answers direct calls on `port` with kinesalite's validations and actions on `store`.
 * Replies `{id, result}` or `{id, error: {name, message, statusCode}}`.
 */
function serve(port, store) {
  const validations = require(join(KINESALITE, 'validations'));
  const account = accountOf(store);
  account.ports.add(port);
  port.once('close', () => account.ports.delete(port));
  const answer = (id, error, result, transfer) => {
    account.active -= 1;
    if (error) {
      const body = error.body || {};
      port.postMessage({
        id,
        error: {
          name: body.__type || error.name || 'InternalFailure',
          message: body.message || error.message || String(error),
          statusCode: error.statusCode || 500,
        },
      });
    } else {
      port.postMessage({ id, result }, transfer || []);
    }
  };
  port.on('message', (message) => {
    const { id, operation } = message || {};
    let data = message?.data;
    account.active += 1;
    try {
      if (!OPERATIONS.has(operation))
        throw Object.assign(new Error(`unknown operation ${operation}`), { name: 'UnknownOperationException', statusCode: 400 });
      const action = validations.toLowerFirst(operation);
      // Data as Buffers, which kinesalite's Blob check takes as they are; the put actions keep
      // them in the store's form (base64 text in a persisted store).
      if (operation === 'PutRecords' && data && Array.isArray(data.Records)) {
        data = { ...data, Records: data.Records.map((r) => ({ ...r, Data: asBuffer(r.Data) })) };
      } else if (operation === 'PutRecord' && data) {
        data = { ...data, Data: asBuffer(data.Data) };
      }
      const types = require(join(KINESALITE, 'validations', action));
      data = validations.checkTypes(data, types.types);
      validations.checkValidations(data, types.types, types.custom, operation);
      const run = require(join(ACTIONS, `${action}.js`));
      const act = action === 'getRecords' ? run.__original || run : run;
      act(store, data, (error, result) => {
        if (error) return answer(id, error);
        if (action !== 'getRecords') return answer(id, null, result);
        // All the page's data in one buffer, handed over without a copy.
        let total = 0;
        for (const record of result.Records) total += dataBytes(record.Data);
        const packed = Buffer.allocUnsafeSlow(total);
        let offset = 0;
        const records = result.Records.map((record) => {
          const start = offset;
          if (typeof record.Data === 'string') offset += packed.write(record.Data, offset, 'base64');
          else offset += record.Data.copy(packed, offset);
          return {
            SequenceNumber: record.SequenceNumber,
            PartitionKey: record.PartitionKey,
            ApproximateArrivalTimestamp: record.ApproximateArrivalTimestamp,
            start,
            end: offset,
          };
        });
        answer(
          id,
          null,
          {
            Records: records,
            data: packed.buffer,
            NextShardIterator: result.NextShardIterator,
            MillisBehindLatest: result.MillisBehindLatest,
          },
          [packed.buffer],
        );
      });
    } catch (error) {
      answer(id, error);
    }
  });
}

/**
 * Stops serving the direct path (before the store closes): closes every port, so their callers
 * see the emulator gone. Returns the number of calls still in flight, which the caller waits for.
 */
function closePorts(store) {
  const account = accountOf(store);
  for (const port of account.ports) port.close();
  account.ports.clear();
  return account.active;
}

/** Direct calls in flight on `store`. */
function activeCalls(store) {
  return accountOf(store).active;
}

module.exports = { install, serve, earlyRefusal, setLimits, released, stats, dataBytes, closePorts, activeCalls };
