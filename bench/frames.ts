/**
 * The frames the benchmark feeds the pipeline, and the records that carry them:
 * - 28x28: the MNIST test set rendered exactly as the original camera source rendered it
 *   (inverted, 28x28 RGB PNG);
 * - 640x480: camera-like frames, a digit drawn at a random place and size on gray, unevenly
 *   lit paper with blur, sensor noise and sometimes coloured ink, as RGB PNG.
 * Both are deterministic, so every run scores the same bytes.
 */
import type { KinesisStreamRecord } from 'aws-lambda';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../functions/lib/mnist';
import { encodePng } from '../functions/lib/png';
import { addNoise, fromMnist, gaussianBlur, placeOnCanvas, unevenBackground, warp } from '../training/augment';
import { Rng } from '../training/rng';

export interface BenchFrame {
  png: Buffer;
  label: number | null;
}

export type FrameKind = '28' | '640';

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
 * `count` 640x480 camera-like frames (seeded): a test-set digit 80-220 pixels tall, rotated
 * a little, anywhere on the page; gray paper 150-245 with a light gradient and vignetting;
 * blur; sensor noise (sigma 2-8); a third in blue or red ink.
 */
export function cameraFrames640(count: number, seed = 640): BenchFrame[] {
  const mnist = loadMnist('t10k');
  const rng = new Rng(seed);
  const frames: BenchFrame[] = [];
  const width = 640;
  const height = 480;
  for (let i = 0; i < count; i++) {
    const index = (i * 7919) % mnist.count;
    const side = Math.round(rng.uniform(80, 220));
    const digit = warp(fromMnist(mnistImage(mnist, index)), { angle: rng.uniform(-10, 10), scale: side / 28 }, { width: side, height: side });
    const x = rng.int(width - side);
    const y = rng.int(height - side);
    let page = placeOnCanvas(digit, width, height, x, y, 255);
    const paper = rng.uniform(150, 245);
    page = unevenBackground(page, {
      paper,
      ink: rng.uniform(10, Math.max(10, paper - 90)),
      gradient: rng.uniform(0, 0.3),
      gradientAngle: rng.uniform(0, 360),
      vignette: rng.uniform(0, 0.25),
    });
    page = gaussianBlur(page, rng.uniform(0.4, 1.2));
    page = addNoise(page, rng.uniform(2, 8), rng);
    // Coloured ink: the gray level goes to one channel more than the others.
    const tint = rng.int(3); // 0: gray, 1: blue ink, 2: red ink
    const rgb = new Uint8Array(width * height * 3);
    for (let p = 0; p < width * height; p++) {
      const v = page.data[p] as number;
      const dark = 255 - v;
      rgb[p * 3] = tint === 1 ? Math.max(0, v - dark * 0.2) : v;
      rgb[p * 3 + 1] = tint === 0 ? v : Math.max(0, v - dark * 0.1);
      rgb[p * 3 + 2] = tint === 2 ? Math.max(0, v - dark * 0.2) : tint === 1 ? Math.min(255, v + dark * 0.4) : v;
    }
    frames.push({ png: encodePng(rgb, width, height, 3), label: mnist.labels[index] ?? null });
  }
  return frames;
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

/** Kinesis-shaped records of `frames`, as the event source mapping delivers them. */
export function kinesisRecords(frames: readonly BenchFrame[], camera: string, shardId = 'shardId-000000000000'): KinesisStreamRecord[] {
  const now = Date.now();
  const timestamp = new Date(now).toISOString();
  return frames.map((frame, i) => {
    const sequenceNumber = (49_650_000_000_000_000_000_000_000_000_000n + BigInt(i)).toString();
    const data = Buffer.from(frameJson(frame.png.toString('base64'), camera, timestamp, frame.label), 'utf8').toString('base64');
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
