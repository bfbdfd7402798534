/**
 * A held-out run of hostile input: kinds of bad and strange records that the test suite does
 * not use (other PNG damage, other encodings, other camera ids, other seeds), put into
 * camera-images of the whole local pipeline (embedded emulator, the real handlers and runner),
 * then balanced: every record must come out predicted or rejected, no invocation may fail, no
 * output may break its contract. Prints a table of what became of each kind.
 *
 *   npx tsx scripts/held-out-bad-inputs.ts [--seed N] [--copies N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deflateSync } from 'node:zlib';
import { PNG_SIGNATURE, encodePng, ihdrBody, pngChunk } from '../functions/lib/png';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { KINESIS_LIMITS } from '../functions/lib/kinesis-records';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../functions/lib/mnist';
import { LocalPipeline } from '../local/pipeline';
import { balance, readStreams } from '../test/helpers/accounting';
import { streamReader } from '../test/helpers/stream-reader';
import { seededRandom } from '../training/rng';

const { values } = parseArgs({ options: { seed: { type: 'string' }, copies: { type: 'string' } } });
const SEED = Number(values.seed ?? 7919);
const COPIES = Number(values.copies ?? 3);

/** Seeded draws (mulberry32), so a run repeats exactly. */
const rng = seededRandom;
const random = rng(SEED);
const int = (n: number): number => Math.floor(random() * n);

const mnist = loadMnist('t10k');
const digitPng = (): Buffer => renderOriginalFrameSync(mnistImage(mnist, 5000 + int(5000)));
const now = () => new Date(Date.now() - 1000).toISOString();
const body = (fields: Record<string, unknown>): Buffer =>
  Buffer.from(JSON.stringify({ camera: 'Held-out', timestamp: now(), ...fields }));
const frame = (png: Uint8Array, fields: Record<string, unknown> = {}): Buffer =>
  body({ image: Buffer.from(png).toString('base64'), ...fields });

const chunk = pngChunk;
const SIG = PNG_SIGNATURE;
const header = (width: number, height: number, depth: number, colour: number, interlace = 0): Buffer =>
  chunk('IHDR', ihdrBody(width, height, depth, colour, interlace));
const IEND = chunk('IEND', new Uint8Array(0));
/** Splits a PNG into its chunks (after the signature). */
function chunks(png: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 8; o + 12 <= png.length; ) {
    const len = png.readUInt32BE(o);
    out.push(png.subarray(o, o + 12 + len));
    o += 12 + len;
  }
  return out;
}
/** Filter-0 rows of `rowBytes` bytes each, all `fill`. */
const rows = (height: number, rowBytes: number, fill = 0, filter = 0): Buffer => {
  const raw = Buffer.alloc(height * (rowBytes + 1), fill);
  for (let y = 0; y < height; y++) raw[y * (rowBytes + 1)] = filter;
  return raw;
};

type Expect = 'predicted' | 'rejected' | 'either';
interface Kind {
  kind: string;
  expect: Expect;
  make: () => Buffer;
}

const kinds: Kind[] = [
  // PNG structure
  {
    kind: 'zero-width IHDR',
    expect: 'rejected',
    make: () => frame(Buffer.concat([SIG, header(0, 28, 8, 0), chunk('IDAT', deflateSync(rows(28, 0))), IEND])),
  },
  { kind: '1x1 grey pixel', expect: 'predicted', make: () => frame(encodePng(new Uint8Array([0]), 1, 1, 1)) },
  { kind: '2x2 all ink', expect: 'predicted', make: () => frame(encodePng(new Uint8Array(4), 2, 2, 1)) },
  {
    kind: '16,000,000 x 1 strip (under the pixel cap)',
    expect: 'either',
    make: () =>
      frame(Buffer.concat([SIG, header(16_000_000, 1, 8, 0), chunk('IDAT', deflateSync(rows(1, 16_000_000, 255))), IEND])),
  },
  {
    kind: '1 x 16,000,000 column',
    expect: 'either',
    make: () =>
      frame(Buffer.concat([SIG, header(1, 16_000_000, 1, 0), chunk('IDAT', deflateSync(rows(16_000_000, 1, 0xff))), IEND])),
  },
  {
    kind: 'legal-size bomb: 4096x4096 16-bit RGBA, blank',
    expect: 'predicted',
    make: () =>
      frame(
        Buffer.concat([SIG, header(4096, 4096, 16, 6), chunk('IDAT', deflateSync(rows(4096, 4096 * 8, 0), { level: 9 })), IEND]),
      ),
  },
  {
    kind: 'zlib stream inflating past the declared size',
    expect: 'rejected',
    make: () => frame(Buffer.concat([SIG, header(28, 28, 8, 0), chunk('IDAT', deflateSync(rows(2800, 28, 255))), IEND])),
  },
  {
    kind: 'row filter byte 5',
    expect: 'rejected',
    make: () => frame(Buffer.concat([SIG, header(28, 28, 8, 0), chunk('IDAT', deflateSync(rows(28, 28, 255, 5))), IEND])),
  },
  {
    kind: 'unknown critical chunk',
    expect: 'rejected',
    make: () => {
      const c = chunks(digitPng());
      return frame(Buffer.concat([SIG, c[0] as Buffer, chunk('ZZZZ', Buffer.from('x')), ...c.slice(1)]));
    },
  },
  {
    kind: 'two IHDR chunks',
    expect: 'rejected',
    make: () => {
      const c = chunks(digitPng());
      return frame(Buffer.concat([SIG, c[0] as Buffer, ...c]));
    },
  },
  {
    kind: 'IDAT split into 1-byte chunks',
    expect: 'predicted',
    make: () => {
      const c = chunks(digitPng());
      const idat = (c[1] as Buffer).subarray(8, (c[1] as Buffer).length - 4);
      return frame(Buffer.concat([SIG, c[0] as Buffer, ...Array.from(idat, (b) => chunk('IDAT', Buffer.from([b]))), IEND]));
    },
  },
  {
    kind: 'IDAT chunks interrupted by tEXt',
    expect: 'rejected',
    make: () => {
      const c = chunks(digitPng());
      const idat = (c[1] as Buffer).subarray(8, (c[1] as Buffer).length - 4);
      const half = idat.length >> 1;
      return frame(
        Buffer.concat([
          SIG,
          c[0] as Buffer,
          chunk('IDAT', idat.subarray(0, half)),
          chunk('tEXt', Buffer.from('a\0b')),
          chunk('IDAT', idat.subarray(half)),
          IEND,
        ]),
      );
    },
  },
  {
    kind: 'palette index past the palette',
    expect: 'predicted',
    make: () =>
      frame(
        Buffer.concat([
          SIG,
          header(8, 8, 8, 3),
          chunk('PLTE', Buffer.from([0, 0, 0, 255, 255, 255])),
          chunk('IDAT', deflateSync(rows(8, 8, 200))),
          IEND,
        ]),
      ),
  },
  {
    kind: 'palette image without PLTE',
    expect: 'rejected',
    make: () => frame(Buffer.concat([SIG, header(8, 8, 8, 3), chunk('IDAT', deflateSync(rows(8, 8, 0))), IEND])),
  },
  {
    kind: '16-bit palette (invalid depth)',
    expect: 'rejected',
    make: () =>
      frame(
        Buffer.concat([
          SIG,
          header(8, 8, 16, 3),
          chunk('PLTE', Buffer.from([0, 0, 0])),
          chunk('IDAT', deflateSync(rows(8, 16, 0))),
          IEND,
        ]),
      ),
  },
  {
    kind: 'interlaced 3x3 (empty Adam7 passes)',
    expect: 'predicted',
    make: () => {
      const raw: number[] = [];
      for (const [w, h] of [
        [1, 1],
        [0, 0],
        [1, 1],
        [1, 1],
        [2, 1],
        [1, 2],
        [3, 1],
      ] as const)
        for (let y = 0; y < h && w > 0; y++) raw.push(0, ...Array(w).fill(0));
      return frame(Buffer.concat([SIG, header(3, 3, 8, 0, 1), chunk('IDAT', deflateSync(Buffer.from(raw))), IEND]));
    },
  },
  {
    kind: 'APNG (animation chunks)',
    expect: 'predicted',
    make: () => {
      const c = chunks(digitPng());
      const actl = Buffer.alloc(8);
      actl.writeUInt32BE(1, 0);
      return frame(Buffer.concat([SIG, c[0] as Buffer, chunk('acTL', actl), ...c.slice(1)]));
    },
  },
  {
    kind: 'random byte flips in a real PNG',
    expect: 'either',
    make: () => {
      const p = Buffer.from(digitPng());
      for (let k = 0; k < 1 + int(4); k++) p[int(p.length)] = int(256);
      return frame(p);
    },
  },
  {
    kind: 'random bytes with a PNG signature',
    expect: 'rejected',
    make: () => frame(Buffer.concat([SIG, Buffer.from(Array.from({ length: 64 + int(400) }, () => int(256)))])),
  },
  {
    kind: 'double base64 (base64 of base64)',
    expect: 'rejected',
    make: () => body({ image: Buffer.from(digitPng().toString('base64')).toString('base64') }),
  },
  { kind: 'URL-safe base64 alphabet', expect: 'predicted', make: () => body({ image: digitPng().toString('base64url') }) },
  { kind: 'BMP file', expect: 'rejected', make: () => frame(Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])) },
  { kind: 'TIFF file', expect: 'rejected', make: () => frame(Buffer.from([0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0, 0, 0])) },
  { kind: 'HTML error page', expect: 'rejected', make: () => frame(Buffer.from('<html><body>502 Bad Gateway</body></html>')) },
  // JSON and fields
  {
    kind: 'UTF-8 BOM before the JSON',
    expect: 'either',
    make: () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), frame(digitPng())]),
  },
  { kind: 'UTF-16LE JSON', expect: 'rejected', make: () => Buffer.from(frame(digitPng()).toString('utf8'), 'utf16le') },
  { kind: 'JSON true / 42 / {}', expect: 'rejected', make: () => Buffer.from(['true', '42', '{}'][int(3)] as string) },
  {
    kind: 'duplicate camera key, the last one unsafe',
    expect: 'rejected',
    make: () =>
      Buffer.from(`{"camera":"Held-out","image":"${digitPng().toString('base64')}","timestamp":"${now()}","camera":"../x"}`),
  },
  {
    kind: '__proto__ and constructor fields',
    expect: 'predicted',
    make: () =>
      Buffer.from(
        `{"__proto__":{"camera":"../x","polluted":true},"constructor":{"prototype":{"x":1}},"image":"${digitPng().toString('base64')}","camera":"Held-out","timestamp":"${now()}"}`,
      ),
  },
  {
    kind: 'extra field nested 3,000 deep',
    expect: 'predicted',
    make: () =>
      Buffer.from(
        `{"deep":${'['.repeat(3000)}${']'.repeat(3000)},"image":"${digitPng().toString('base64')}","camera":"Held-out","timestamp":"${now()}"}`,
      ),
  },
  { kind: 'extra field of 900 kB', expect: 'predicted', make: () => frame(digitPng(), { note: 'n'.repeat(900_000) }) },
  {
    kind: 'label 7.0, -0 and 1e0',
    expect: 'predicted',
    make: () =>
      Buffer.from(
        `{"image":"${digitPng().toString('base64')}","camera":"Held-out","timestamp":"${now()}","label":${['7.0', '-0', '1e0'][int(3)]}}`,
      ),
  },
  { kind: 'label NaN as a string / null', expect: 'rejected', make: () => frame(digitPng(), { label: [null, 'NaN'][int(2)] }) },
  // Timestamps
  { kind: 'leap second 23:59:60', expect: 'either', make: () => frame(digitPng(), { timestamp: '2025-12-31T23:59:60Z' }) },
  { kind: 'year 0000', expect: 'either', make: () => frame(digitPng(), { timestamp: '0000-01-01T00:00:00Z' }) },
  { kind: 'extended year +275760', expect: 'rejected', make: () => frame(digitPng(), { timestamp: '+275760-09-13T00:00:00Z' }) },
  {
    kind: 'nanosecond precision',
    expect: 'either',
    make: () => frame(digitPng(), { timestamp: '2026-01-02T03:04:05.123456789Z' }),
  },
  { kind: 'lower-case t and z', expect: 'either', make: () => frame(digitPng(), { timestamp: '2026-01-02t03:04:05z' }) },
  {
    kind: 'epoch milliseconds as a string',
    expect: 'rejected',
    make: () => frame(digitPng(), { timestamp: String(Date.now()) }),
  },
  {
    kind: 'one hour ahead (past the skew)',
    expect: 'rejected',
    make: () => frame(digitPng(), { timestamp: new Date(Date.now() + 3_600_000).toISOString() }),
  },
  // Camera ids
  { kind: 'Cyrillic homoglyph camera id', expect: 'rejected', make: () => frame(digitPng(), { camera: '\u0421amera-1' }) },
  {
    kind: 'right-to-left override in camera id',
    expect: 'rejected',
    make: () => frame(digitPng(), { camera: 'cam\u202egpj.exe' }),
  },
  { kind: 'zero-width space in camera id', expect: 'rejected', make: () => frame(digitPng(), { camera: 'Cam\u200bera' }) },
  { kind: 'camera id starting with a dash', expect: 'rejected', make: () => frame(digitPng(), { camera: '-rf' }) },
  {
    kind: 'camera id of exactly 128 characters',
    expect: 'predicted',
    make: () => frame(digitPng(), { camera: `T${'e'.repeat(127)}` }),
  },
  {
    kind: 'ARN-like camera id with : @ +',
    expect: 'predicted',
    make: () => frame(digitPng(), { camera: 'arn:aws:iot:cam@site+1' }),
  },
  { kind: 'Windows device name CON', expect: 'predicted', make: () => frame(digitPng(), { camera: 'CON' }) },
  {
    kind: 'Test camera, blank frame',
    expect: 'predicted',
    make: () => frame(encodePng(new Uint8Array(64 * 64).fill(200), 64, 64, 1), { camera: 'Test-held-out' }),
  },
  // Raw bytes
  { kind: 'random bytes', expect: 'rejected', make: () => Buffer.from(Array.from({ length: 1 + int(2000) }, () => int(256))) },
  { kind: 'a single byte', expect: 'rejected', make: () => Buffer.from([int(256)]) },
];

async function main(): Promise<number> {
  const outDir = mkdtempSync(join(tmpdir(), 'held-out-'));
  let errors = 0;
  const pipeline = await LocalPipeline.start({
    port: 0,
    outDir,
    env: { LOG_LEVEL: 'ERROR' },
    logger: {
      debug: () => undefined,
      warn: (message, context) => console.error(`runner: ${message} ${JSON.stringify(context ?? {})}`),
    },
    onInvocation: (report) => {
      if (report.outcome !== 'success') {
        errors += 1;
        console.error(`invocation ${report.functionName} ${report.outcome}: ${report.error ?? ''}`);
      }
    },
  });
  const records: Array<{ kind: string; expect: Expect; data: Buffer }> = [];
  for (let copy = 0; copy < COPIES; copy++)
    for (const k of kinds) records.push({ kind: k.kind, expect: k.expect, data: k.make() });
  const tooBig = records.filter((r) => r.data.length > KINESIS_LIMITS.maxRecordBytes);
  if (tooBig.length > 0) throw new Error(`records over 1 MiB cannot go through Kinesis: ${tooBig.map((r) => r.kind).join(', ')}`);
  const began = performance.now();
  try {
    // Shuffled, in PutRecords calls of at most 4 MB, each record keyed by its kind.
    records.sort(() => random() - 0.5);
    for (let i = 0; i < records.length; ) {
      const batch: typeof records = [];
      let bytes = 0;
      while (i < records.length && batch.length < 500 && bytes + (records[i] as { data: Buffer }).data.length < 4 * 1024 * 1024) {
        bytes += (records[i] as { data: Buffer }).data.length;
        batch.push(records[i++] as (typeof records)[number]);
      }
      const out = await pipeline.client.send(
        new PutRecordsCommand({
          StreamName: 'camera-images',
          Records: batch.map((r) => ({ PartitionKey: `${r.kind.slice(0, 200)}`, Data: r.data })),
        }),
      );
      if (out.FailedRecordCount) throw new Error(`${out.FailedRecordCount} records were not accepted by the emulator`);
    }
    await pipeline.drain(600_000);

    // The ledger.
    const contents = await readStreams(pipeline.client);
    const ledger = balance(contents);
    const kindOf = new Map(
      (await streamReader(pipeline.client).readAll('camera-images')).map((r) => [
        `${r.shardId}-${r.sequenceNumber}`,
        r.partitionKey,
      ]),
    );
    const predicted = new Set(contents.predictions.map((p) => p.frame_id));
    const rejectedReason = new Map(contents.rejected.map((r) => [r.frame_id, r.reason]));
    const table = new Map<string, Map<string, number>>();
    for (const [id, kind] of kindOf) {
      const outcome = predicted.has(id) ? 'predicted' : (rejectedReason.get(id) ?? 'MISSING');
      const row = table.get(kind) ?? new Map<string, number>();
      row.set(outcome, (row.get(outcome) ?? 0) + 1);
      table.set(kind, row);
    }
    const surprises: string[] = [];
    console.log('\nkind                                              outcome');
    for (const k of kinds) {
      const row = table.get(k.kind.slice(0, 200)) ?? new Map<string, number>();
      const text = [...row.entries()].map(([o, n]) => `${o} x${n}`).join(', ');
      const ok = [...row.keys()].every(
        (o) => o !== 'MISSING' && (k.expect === 'either' || (k.expect === 'predicted') === (o === 'predicted')),
      );
      if (!ok) surprises.push(k.kind);
      console.log(`${ok ? ' ' : '!'} ${k.kind.padEnd(48)} ${text}`);
    }
    const rss = process.resourceUsage().maxRSS / 1024;
    console.log(
      [
        '',
        `records in ${ledger.framesIn} (${kinds.length} kinds x ${COPIES}, seed ${SEED}) = predicted ${ledger.predicted} + rejected ${ledger.rejected}; ` +
          `uncertain ${ledger.uncertain}; missing ${ledger.missing.length}; unreadable outputs ${contents.unreadable}; failed invocations ${errors}; ` +
          `dead-lettered ${pipeline.runner.deadLetters.length}; home unreadable ${pipeline.home.counts.unreadable}`,
        `unexpected outcomes: ${surprises.length === 0 ? 'none' : surprises.join('; ')}`,
        `peak RSS of this process (pipeline + emulator) ${rss.toFixed(0)} MB; ${((performance.now() - began) / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
    const balanced =
      ledger.missing.length === 0 &&
      ledger.predictedAndRejected.length === 0 &&
      ledger.uncertainNotPredicted.length === 0 &&
      ledger.predicted + ledger.rejected === ledger.framesIn &&
      ledger.framesIn === records.length &&
      contents.unreadable === 0 &&
      pipeline.home.counts.unreadable === 0 &&
      pipeline.runner.deadLetters.length === 0 &&
      errors === 0;
    return balanced ? 0 : 1;
  } finally {
    await pipeline.stop();
    rmSync(outDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
