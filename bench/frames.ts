/**
 * The frames the benchmark feeds the pipeline, and the records that carry them:
 * - 28x28: the MNIST test set rendered exactly as the original camera source rendered it
 *   (inverted, 28x28 RGB PNG);
 * - 640x480: camera-like frames from training/camera-frames.ts.
 * Both are deterministic, so every run scores the same bytes.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../functions/lib/mnist';
import { encodePngRecord } from '../functions/lib/png-frame-record';
import { generateCameraFrames } from '../training/camera-frames';

export interface BenchFrame {
  png: Buffer;
  label: number | null;
}

export type FrameKind = '28' | '640';

/** The two encodings of a `camera-images` record: JSON with a base64 image, or the PNG with tEXt fields. */
export type RecordFormat = 'json' | 'png';

/** `count` MNIST test frames as the original rendered them (the test set cycled). */
export function mnistFrames(count: number): BenchFrame[] {
  const mnist = loadMnist('t10k');
  const frames: BenchFrame[] = [];
  for (let i = 0; i < count; i++) {
    const index = i % mnist.count;
    frames.push({ png: renderOriginalFrameSync(mnistImage(mnist, index)), label: mnist.labels[index] ?? null });
  }
  return frames;
}

/**
 * `count` 640x480 camera-like frames from the project's generator (training/camera-frames.ts,
 * seeded): a digit anywhere on gray or unevenly lit paper, black or blue pen or pencil,
 * blur, sensor noise, and some blank pages.
 */
export function cameraFrames640(count: number, seed = 640): BenchFrame[] {
  return generateCameraFrames(count, { seed, sizes: [[640, 480]] });
}

/** The frames of a kind. */
export function framesOf(kind: FrameKind, count: number): BenchFrame[] {
  return kind === '28' ? mnistFrames(count) : cameraFrames640(count);
}

/**
 * A frame's `camera-images` record body, built by concatenation from its base64 once the
 * base64 is known (the camera source's JSON.stringify gives the same bytes).
 */
export function frameJson(base64: string, camera: string, timestamp: string, label: number | null): string {
  const labelPart = label === null ? '' : `,"label":${label}`;
  return `{"image":"${base64}","camera":"${camera}","timestamp":"${timestamp}"${labelPart}}`;
}

/** A frame's `camera-images` record bytes in either format (`base64` is the PNG's, for JSON). */
export function frameRecordData(
  frame: BenchFrame,
  base64: string,
  camera: string,
  timestamp: string,
  format: RecordFormat,
): Buffer {
  if (format === 'png') return encodePngRecord(frame.png, { camera, timestamp, label: frame.label });
  return Buffer.from(frameJson(base64, camera, timestamp, frame.label), 'utf8');
}

/** Kinesis-shaped records of `frames`, as the event source mapping delivers them. */
export function kinesisRecords(
  frames: readonly BenchFrame[],
  camera: string,
  format: RecordFormat = 'json',
  shardId = 'shardId-000000000000',
): KinesisStreamRecord[] {
  const now = Date.now();
  const timestamp = new Date(now).toISOString();
  return frames.map((frame, i) => {
    const sequenceNumber = (49_650_000_000_000_000_000_000_000_000_000n + BigInt(i)).toString();
    const data = frameRecordData(frame, frame.png.toString('base64'), camera, timestamp, format).toString('base64');
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: camera,
        sequenceNumber,
        data,
        approximateArrivalTimestamp: now / 1000,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `${shardId}:${sequenceNumber}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/bench',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/camera-images',
    };
  });
}
