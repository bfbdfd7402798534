/**
 * Record factories for the classify stage: `camera-images` records as Lambda delivers them,
 * frame bodies, and PNG files of every shape a camera (or an attacker) can send, built byte
 * by byte where sharp would refuse to write them.
 */
import { deflateSync } from 'node:zlib';
import type { KinesisStreamRecord } from 'aws-lambda';
import sharp from 'sharp';
import { loadMnist, mnistImage } from '../../functions/lib/mnist';

export const SHARD_ID = 'shardId-000000000000';
let sequence = 49659580453262040838183519227452711853474233516389318000n;

/** A `camera-images` record as the event source mapping delivers it. */
export function cameraRecord(data: string | Uint8Array, partitionKey = 'Camera-edge1'): KinesisStreamRecord {
  sequence += 1000n;
  const sequenceNumber = sequence.toString();
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey,
      sequenceNumber,
      data: Buffer.from(data).toString('base64'),
      approximateArrivalTimestamp: Date.now() / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `${SHARD_ID}:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::123456789012:role/classify',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/camera-images',
  };
}

/** The frame id classify gives a record made by {@link cameraRecord}. */
export const frameIdOf = (record: KinesisStreamRecord): string => `${SHARD_ID}-${record.kinesis.sequenceNumber}`;

/** A frame body: the PNG as base64 with a camera and a capture time a minute ago. */
export function frameBody(png: Uint8Array, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: Buffer.from(png).toString('base64'),
    camera: 'Camera-edge1',
    timestamp: new Date(Date.now() - 60_000).toISOString(),
    ...fields,
  };
}

/** `ihdr`: an IHDR body. */
export { PNG_SIGNATURE, ihdrBody as ihdr, pngChunk } from '../../functions/lib/png';
import { PNG_SIGNATURE } from '../../functions/lib/png';

/** A PNG from its chunks (signature added). */
export function pngOf(...chunks: Buffer[]): Buffer {
  return Buffer.concat([PNG_SIGNATURE, ...chunks]);
}

/** Offsets of each chunk of a PNG: type, start of the length field, body length. */
export function chunksOf(png: Buffer): Array<{ type: string; offset: number; length: number }> {
  const out: Array<{ type: string; offset: number; length: number }> = [];
  for (let offset = 8; offset + 12 <= png.length; ) {
    const length = png.readUInt32BE(offset);
    out.push({ type: png.toString('latin1', offset + 4, offset + 8), offset, length });
    offset += 12 + length;
  }
  return out;
}

const mnist = loadMnist('t10k');

/** MNIST test digit `index` as a black-on-white grey image (0 = black), with its label. */
export function digit(index: number): { grey: Uint8Array; label: number } {
  const raw = mnistImage(mnist, index);
  return { grey: Uint8Array.from(raw, (v) => 255 - v), label: mnist.labels[index] as number };
}

/** Digit `index` scaled up and placed on white paper of `width` x `height` grey pixels. */
export async function digitOnPaper(index: number, width: number, height: number, scale: number): Promise<Uint8Array> {
  const { grey } = digit(index);
  const size = 28 * scale;
  const big = await sharp(Buffer.from(grey), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(size, size, { kernel: 'cubic' })
    .toColourspace('b-w') // plain .raw() of grey input gives 3 channels
    .raw()
    .toBuffer();
  const out = new Uint8Array(width * height).fill(255);
  const x0 = Math.floor((width - size) / 2);
  const y0 = Math.floor((height - size) / 2);
  for (let y = 0; y < size; y++) out.set(big.subarray(y * size, (y + 1) * size), (y0 + y) * width + x0);
  return out;
}

/** Raw 8-bit samples (any channel count) as one zlib stream of filter-0 rows. */
export function filteredRows(data: Uint8Array, width: number, height: number, bytesPerPixel: number): Buffer {
  const stride = width * bytesPerPixel;
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y++) rows.push(Buffer.from([0]), Buffer.from(data.subarray(y * stride, (y + 1) * stride)));
  return deflateSync(Buffer.concat(rows));
}

/** The first bytes of files that are not PNG, as cameras misconfigured to send them would. */
export const NOT_PNG = {
  jpeg: () =>
    sharp({ create: { width: 16, height: 16, channels: 3, background: '#fff' } })
      .jpeg()
      .toBuffer(),
  gif: () =>
    sharp({ create: { width: 16, height: 16, channels: 3, background: '#fff' } })
      .gif()
      .toBuffer(),
  webp: () =>
    sharp({ create: { width: 16, height: 16, channels: 3, background: '#fff' } })
      .webp()
      .toBuffer(),
  svg: async () =>
    Buffer.from(
      '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text y="20">7</text></svg>',
    ),
  text: async () => Buffer.from('seven, written in words rather than drawn'),
} as const;
