import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cameraFrameSchema } from '../../functions/lib/contracts';
import { folderFrames, labelFromFileName, mnistFrames } from '../../functions/lib/camera-source/frames';
import { cameraId, publishFrames } from '../../functions/lib/camera-source/publish';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { readPngChunks } from '../../functions/lib/png';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { checkFrame } from '../../functions/lib/validate-frame';
import { createLambdaContext } from '../../local/runner/lambda-context';
import { withPutRecordsFaults } from '../helpers/failing-kinesis-client';
import { startKinesalite, type TestKinesis } from '../helpers/kinesalite';

let kinesis: TestKinesis;
let streams = 0;
const newStream = async () => {
  const name = `camera-images-${++streams}`;
  await kinesis.createStreams([name]);
  return name;
};
const readFrames = async (stream: string) =>
  (await kinesis.readAll(stream)).map((r) => ({
    key: r.partitionKey,
    frame: cameraFrameSchema.parse(JSON.parse(r.data.toString('utf8'))),
  }));

let folder: string;
beforeAll(async () => {
  kinesis = await startKinesalite();
  folder = mkdtempSync(join(tmpdir(), 'camera-source-'));
  const mnist = loadMnist('t10k');
  writeFileSync(join(folder, '7_first.png'), renderOriginalFrameSync(mnistImage(mnist, 0)));
  writeFileSync(join(folder, '2-second.png'), renderOriginalFrameSync(mnistImage(mnist, 1)));
  writeFileSync(join(folder, 'unlabelled.PNG'), renderOriginalFrameSync(mnistImage(mnist, 2)));
  writeFileSync(join(folder, 'notes.txt'), 'not a frame');
});
afterAll(async () => {
  await kinesis.close();
  rmSync(folder, { recursive: true, force: true });
});

describe('camera ids and labels', () => {
  it('is the camera parameter, a dash and the host, made safe', () => {
    expect(cameraId('Camera', 'edge-7.local')).toBe('Camera-edge-7.local');
    expect(cameraId('Test', 'my host/1')).toBe('Test-my-host-1');
    expect(() => cameraId('c'.repeat(64), 'h'.repeat(80))).toThrow('camera id');
  });

  it.each([
    ['7.png', 7],
    ['3_0001.png', 3],
    ['0-scan.png', 0],
    ['12_x.png', undefined],
    ['frame.png', undefined],
  ])('reads the label of %s', (name, label) => {
    expect(labelFromFileName(name)).toBe(label);
  });
});

describe('publishFrames against kinesalite', () => {
  it('publishes MNIST frames rendered as the original, with labels and the camera as partition key', async () => {
    const stream = await newStream();
    const writer = new KinesisStreamWriter(kinesis.client);
    const summary = await publishFrames(mnistFrames(1), writer, { camera: 'Camera-edge1', stream, count: 25 });

    expect(summary).toMatchObject({ published: 25, failed: 0, labelled: 25, stopped: 'count_reached' });
    const stored = await readFrames(stream);
    const mnist = loadMnist('t10k');
    expect(stored).toHaveLength(25);
    stored.forEach(({ key, frame }, i) => {
      expect(key).toBe('Camera-edge1');
      expect(frame.camera).toBe('Camera-edge1');
      expect(frame.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(frame.label).toBe(mnist.labels[i]);
      expect(Buffer.from(frame.image, 'base64').equals(renderOriginalFrameSync(mnistImage(mnist, i)))).toBe(true);
    });
  });

  it('publishes PNG records that the classify stage reads back field for field', async () => {
    const stream = await newStream();
    const writer = new KinesisStreamWriter(kinesis.client);
    const summary = await publishFrames(mnistFrames(1), writer, {
      camera: 'Camera-edge1',
      stream,
      count: 5,
      recordFormat: 'png',
    });

    expect(summary).toMatchObject({ published: 5, failed: 0 });
    const mnist = loadMnist('t10k');
    const stored = await kinesis.readAll(stream);
    expect(stored).toHaveLength(5);
    stored.forEach((record, i) => {
      const check = checkFrame(record.data, { nowMs: Date.now(), maxFutureSkewSeconds: 300 });
      expect(check).toMatchObject({ ok: true, frame: { camera: 'Camera-edge1', label: mnist.labels[i] } });
      if (check.ok)
        expect(readPngChunks(check.png).idat).toEqual(readPngChunks(renderOriginalFrameSync(mnistImage(mnist, i))).idat);
    });
  });

  it('publishes a folder of PNGs, repeated, labelled from the file names', async () => {
    const stream = await newStream();
    const summary = await publishFrames(folderFrames(folder, 2), new KinesisStreamWriter(kinesis.client), {
      camera: 'Camera-folder',
      stream,
    });

    expect(summary).toMatchObject({ published: 6, labelled: 4, stopped: 'source_ended' });
    const stored = await readFrames(stream);
    expect(stored.map((s) => s.frame.label)).toEqual([2, 7, undefined, 2, 7, undefined]);
    expect(Buffer.from(stored[2]?.frame.image ?? '', 'base64').equals(readFileSync(join(folder, 'unlabelled.PNG')))).toBe(true);
  });

  it('repeats forever when repeat is 0, until the count', async () => {
    const stream = await newStream();
    const summary = await publishFrames(folderFrames(folder, 0), new KinesisStreamWriter(kinesis.client), {
      camera: 'Camera-loop',
      stream,
      count: 11,
    });
    expect(summary).toMatchObject({ published: 11, stopped: 'count_reached' });
  });

  it('sends one frame per call with a delay, and paces batches under a rate limit', async () => {
    const stream = await newStream();
    const delayed = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {});
    await publishFrames(mnistFrames(1), new KinesisStreamWriter(delayed.client), {
      camera: 'Camera-d',
      stream,
      count: 3,
      delay: 0.01,
    });
    expect(delayed.calls.map((c) => c.entries)).toEqual([1, 1, 1]);

    const paced = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {});
    await publishFrames(mnistFrames(1), new KinesisStreamWriter(paced.client), {
      camera: 'Camera-r',
      stream,
      count: 12,
      rate: 40,
    });
    // 40 frames/s is sent as batches of 4 (ten per second).
    expect(paced.calls.map((c) => c.entries)).toEqual([4, 4, 4]);
    expect(await kinesis.readAll(stream)).toHaveLength(15);
  });

  it('counts frames the writer could not write after its retries', async () => {
    const stream = await newStream();
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {
      failEntry: (e) => (e.data.includes('"label":1') ? 'ProvisionedThroughputExceededException' : undefined),
    });
    const summary = await publishFrames(
      mnistFrames(1),
      new KinesisStreamWriter(faulty.client, { maxAttempts: 2, baseDelayMs: 1 }),
      {
        camera: 'Camera-f',
        stream,
        count: 30,
        maxThrottledSeconds: 0,
      },
    );
    const ones = Array.from(loadMnist('t10k').labels.subarray(0, 30)).filter((l) => l === 1).length;
    expect(ones).toBeGreaterThan(0);
    expect(summary).toMatchObject({ published: 30 - ones, failed: ones });
    expect(await kinesis.readAll(stream)).toHaveLength(30 - ones);
  });

  it('waits while the stream throttles frames, sends them again and counts the refusals, losing none', async () => {
    // Prepare: every frame labelled 1 is refused three times before it lands
    const stream = await newStream();
    const faulty = withPutRecordsFaults(createKinesisClient({ endpoint: kinesis.endpoint }), {
      failEntry: (e) =>
        e.data.includes('"label":1') && e.timesSeenBefore < 3 ? 'ProvisionedThroughputExceededException' : undefined,
    });

    // Act
    const summary = await publishFrames(
      mnistFrames(1),
      new KinesisStreamWriter(faulty.client, { maxAttempts: 1, baseDelayMs: 1 }),
      { camera: 'Camera-t', stream, count: 30 },
    );

    // Assess
    const ones = Array.from(loadMnist('t10k').labels.subarray(0, 30)).filter((l) => l === 1).length;
    expect(ones).toBeGreaterThan(0);
    expect(summary).toMatchObject({ published: 30, failed: 0, throttled: 3 * ones });
    expect(await kinesis.readAll(stream)).toHaveLength(30);
  });
});

describe('camera-source handler', () => {
  it('publishes what events/camera-source.json asks for and returns a summary', async () => {
    await kinesis.createStreams(['camera-images']);
    process.env.KINESIS_ENDPOINT = kinesis.endpoint;
    process.env.DEVICE_ID = 'edge-test';
    process.env.LOG_LEVEL = 'SILENT';
    const { handler } = await import('../../functions/camera-source');
    const event: unknown = JSON.parse(readFileSync(join(__dirname, '../../events/camera-source.json'), 'utf8'));

    const summary = await handler(event, createLambdaContext({ functionName: 'camera-source' }));

    expect(summary).toMatchObject({ camera: 'Camera-edge-test', stream: 'camera-images', published: 20, failed: 0 });
    const stored = await readFrames('camera-images');
    expect(stored).toHaveLength(20);
    expect(stored.every((s) => s.frame.camera === 'Camera-edge-test')).toBe(true);
  });
});
