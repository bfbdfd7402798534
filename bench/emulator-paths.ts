/**
 * What one 640x480 frame costs to put into and read back from the embedded emulator, over HTTP
 * (the Kinesis API as external clients use it) and over the direct path (kinesalite's actions
 * called through a MessagePort, data as bytes), client and emulator on one thread so the CPU
 * time covers both sides. Also splits the emulator's side of an HTTP put: kinesalite's own way
 * (JSON.parse of the whole body, then its Blob validation, which decodes each record's base64
 * and encodes it again to compare) against the data taken from the raw body
 * (local/emulator/kinesalite-blobs.js) with only the rest parsed.
 *
 *   npx tsx bench/emulator-paths.ts [frames]     # default 160
 */
import { GetShardIteratorCommand, type KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { dirname, join } from 'node:path';
import { createKinesisClient } from '../functions/lib/kinesis';
import { DirectKinesisClient } from '../local/emulator/direct-client';
import { ensureStreams, KinesisEmulator } from '../local/emulator';
import { getRecordsRaw } from '../local/runner/get-records-raw';
import { framesOf } from './frames';

const PER_PUT = 8;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function measure(client: KinesisClient, stream: string, frames: Buffer[]): Promise<{ put: number; get: number }> {
  await ensureStreams(client, [{ name: stream, shards: 1 }]);
  let before = cpuMs();
  for (let i = 0; i < frames.length; i += PER_PUT) {
    const records = frames.slice(i, i + PER_PUT).map((Data, k) => ({ PartitionKey: `cam-${k}`, Data }));
    const out = await client.send(new PutRecordsCommand({ StreamName: stream, Records: records }));
    if (out.FailedRecordCount) throw new Error('put failed');
  }
  const put = (cpuMs() - before) / frames.length;
  const iterator = await client.send(
    new GetShardIteratorCommand({ StreamName: stream, ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
  );
  before = cpuMs();
  let next = iterator.ShardIterator;
  let read = 0;
  while (next && read < frames.length) {
    const page =
      client instanceof DirectKinesisClient
        ? await client.getRecordBuffers({ ShardIterator: next, Limit: 13 })
        : await getRecordsRaw(client, { ShardIterator: next, Limit: 13 });
    read += page.Records.length;
    next = page.NextShardIterator;
  }
  return { put, get: (cpuMs() - before) / frames.length };
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 160);
  const pool = framesOf('640', 16).map((f) => f.png);
  const frames = Array.from({ length: count }, (_, i) => pool[i % pool.length] as Buffer);
  const emulator = await KinesisEmulator.start({ port: 0, sameThread: true });
  const http = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
  const direct = new DirectKinesisClient(emulator.openDirectPort());
  try {
    await measure(http, 'warm-http', frames.slice(0, 16));
    await measure(direct, 'warm-direct', frames.slice(0, 16));
    const overHttp = await measure(http, 'http', frames);
    const overDirect = await measure(direct, 'direct', frames);
    // kinesalite's own parts of an HTTP put of PUT_RECORDS frames: JSON.parse and Blob validation.
    const kinesalite = dirname(require.resolve('kinesalite'));
    type CheckTypes = (data: unknown, types: unknown) => unknown;
    const validations = require(join(kinesalite, 'validations')) as {
      checkTypes: CheckTypes & { __original?: CheckTypes };
      checkValidations(data: unknown, types: unknown, custom: unknown, operation: string): void;
    };
    const originalCheckTypes = validations.checkTypes.__original;
    const putTypes = require(join(kinesalite, 'validations', 'putRecords')) as { types: unknown; custom: unknown };
    const body = Buffer.from(
      JSON.stringify({
        StreamName: 's',
        Records: frames.slice(0, PER_PUT).map((f, k) => ({ PartitionKey: `cam-${k}`, Data: f.toString('base64') })),
      }),
    );
    const blobs = require('../local/emulator/kinesalite-blobs.js') as {
      lighten(request: { headers: Record<string, string> }, body: Buffer): { body: Buffer; blobs: Buffer[] } | undefined;
      parsingWith(blobs: Buffer[], parse: () => void): void;
    };
    const request = {
      headers: { 'x-amz-target': 'Kinesis_20131202.PutRecords', 'content-type': 'application/x-amz-json-1.1' },
    };
    const check = (data: unknown) => {
      const typed = validations.checkTypes(data, putTypes.types);
      validations.checkValidations(typed, putTypes.types, putTypes.custom, 'PutRecords');
    };
    let parse = 0;
    let validate = 0;
    let fromBytes = 0;
    const rounds = Math.max(1, Math.floor(count / PER_PUT));
    for (let r = 0; r < rounds; r++) {
      // kinesalite's way (the emulator's type-check wrapper decodes once: the base64 is text here).
      let t = cpuMs();
      const data = JSON.parse(body.toString());
      parse += cpuMs() - t;
      t = cpuMs();
      const typed = (originalCheckTypes ?? validations.checkTypes)(data, putTypes.types);
      validations.checkValidations(typed, putTypes.types, putTypes.custom, 'PutRecords');
      validate += cpuMs() - t;
      // The emulator's way.
      t = cpuMs();
      const light = blobs.lighten(request, body);
      if (!light) throw new Error('the benchmark body was not taken from its bytes');
      blobs.parsingWith(light.blobs, () => check(JSON.parse(light.body.toString())));
      fromBytes += cpuMs() - t;
    }
    const perFrame = (ms: number) => (ms / (rounds * PER_PUT)).toFixed(2);
    const mean = frames.reduce((s, f) => s + f.length, 0) / frames.length / 1024;
    console.log(
      `${count} frames of 640x480 (mean PNG ${mean.toFixed(0)} kB), ${PER_PUT} per PutRecords; CPU ms per frame, client and emulator together:`,
    );
    console.log(`  HTTP    put ${overHttp.put.toFixed(2)}  get ${overHttp.get.toFixed(2)}`);
    console.log(`  direct  put ${overDirect.put.toFixed(2)}  get ${overDirect.get.toFixed(2)}`);
    console.log(
      `  the emulator's side of an HTTP put: kinesalite's own JSON.parse of the body ${perFrame(parse)} + Blob validation ${perFrame(validate)}; data taken from the raw body ${perFrame(fromBytes)}`,
    );
  } finally {
    direct.destroy();
    http.destroy();
    await emulator.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
