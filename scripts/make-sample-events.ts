/**
 * Regenerates events/classify.json: an AWS-shaped KinesisStreamEvent from `camera-images`
 * holding one of each case the classify stage must handle, and events/classify-png-records.json:
 * the same stream carrying PNG records (the PNG itself, fields in tEXt chunks). Deterministic:
 * run it again and the files are byte-identical.
 *
 *   npx tsx scripts/make-sample-events.ts
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../functions/lib/mnist';
import { pngChunk } from '../functions/lib/png';
import { encodePngRecord } from '../functions/lib/png-frame-record';

const REGION = 'us-east-1';
// The account id AWS's documentation uses for examples.
const ACCOUNT = '123456789012';
const STREAM_ARN = `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/edge-camera-classifier-dev-camera-images`;
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/edge-camera-classifier-dev-classify-${REGION}-lambdaRole`;
const SHARD = 'shardId-000000000000';
const FIRST_SEQUENCE = 49659580453262040838183519227452711853474233516389318658n;
const ARRIVAL = Date.parse('2026-11-27T15:00:00.250Z') / 1000;

const mnist = loadMnist('t10k');
const digit = (index: number) => renderOriginalFrameSync(mnistImage(mnist, index)).toString('base64');
const blankPage = renderOriginalFrameSync(new Uint8Array(784)).toString('base64');
const truncatedPng = renderOriginalFrameSync(mnistImage(mnist, 4)).subarray(0, 60).toString('base64');

/** Each case: what it shows, and the record's data as it arrives on the stream. */
const cases: { note: string; key: string; data: string }[] = [
  {
    note: 'good frame, a 7',
    key: 'Camera-edge1',
    data: JSON.stringify({ image: digit(0), camera: 'Camera-edge1', timestamp: '2026-11-27T15:00:00.000Z', label: 7 }),
  },
  {
    note: 'good frame, a 2',
    key: 'Camera-edge1',
    data: JSON.stringify({ image: digit(1), camera: 'Camera-edge1', timestamp: '2026-11-27T15:00:00.040Z', label: 2 }),
  },
  {
    note: 'good frame, a 1, no label',
    key: 'Camera-edge2',
    data: JSON.stringify({ image: digit(2), camera: 'Camera-edge2', timestamp: '2026-11-27T15:00:00.041Z' }),
  },
  {
    note: 'blank page: scored, low confidence, sent home',
    key: 'Camera-edge1',
    data: JSON.stringify({ image: blankPage, camera: 'Camera-edge1', timestamp: '2026-11-27T15:00:00.080Z' }),
  },
  {
    note: 'Test camera: sent home however certain',
    key: 'Test-edge1',
    data: JSON.stringify({ image: digit(3), camera: 'Test-edge1', timestamp: '2026-11-27T15:00:00.090Z', label: 0 }),
  },
  {
    note: 'bad PNG: truncated after 60 bytes',
    key: 'Camera-edge2',
    data: JSON.stringify({ image: truncatedPng, camera: 'Camera-edge2', timestamp: '2026-11-27T15:00:00.120Z' }),
  },
  { note: 'bad JSON: cut off mid-record', key: 'Camera-edge2', data: `{"image": "${digit(5).slice(0, 24)}` },
];

/** PNG records: each case's data is the record's bytes. */
const pngCases: { note: string; key: string; data: Buffer }[] = [
  {
    note: 'good frame as a PNG record, a 7',
    key: 'Camera-edge1',
    data: encodePngRecord(renderOriginalFrameSync(mnistImage(mnist, 0)), {
      camera: 'Camera-edge1',
      timestamp: '2026-11-27T15:00:00.000Z',
      label: 7,
    }),
  },
  {
    note: 'Test camera PNG record: sent home however certain',
    key: 'Test-edge1',
    data: encodePngRecord(renderOriginalFrameSync(mnistImage(mnist, 3)), {
      camera: 'Test-edge1',
      timestamp: '2026-11-27T15:00:00.090Z',
      label: 0,
    }),
  },
  {
    note: 'PNG record without a timestamp chunk: rejected',
    key: 'Camera-edge2',
    data: (() => {
      const png = renderOriginalFrameSync(mnistImage(mnist, 2));
      const camera = pngChunk('tEXt', Buffer.from('camera\u0000Camera-edge2', 'latin1'));
      return Buffer.concat([png.subarray(0, 33), camera, png.subarray(33)]);
    })(),
  },
];

function eventOf(data: readonly { key: string; data: Buffer }[]): KinesisStreamEvent {
  const records: KinesisStreamRecord[] = data.map((c, i) => {
    const sequenceNumber = (FIRST_SEQUENCE + BigInt(i) * 1_000_000_000_000_000_000n).toString();
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: c.key,
        sequenceNumber,
        data: c.data.toString('base64'),
        approximateArrivalTimestamp: Math.round((ARRIVAL + i * 0.01) * 1000) / 1000,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `${SHARD}:${sequenceNumber}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: ROLE_ARN,
      awsRegion: REGION,
      eventSourceARN: STREAM_ARN,
    };
  });
  return { Records: records };
}

for (const [file, list] of [
  ['classify.json', cases.map((c) => ({ ...c, data: Buffer.from(c.data, 'utf8') }))],
  ['classify-png-records.json', pngCases],
] as const) {
  const path = join(__dirname, '..', 'events', file);
  writeFileSync(path, `${JSON.stringify(eventOf(list), null, 2)}\n`);
  console.log(`wrote ${path}:`);
  list.forEach((c, i) => {
    console.log(`  ${i}: ${c.note}`);
  });
}
