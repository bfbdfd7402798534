/**
 * The local pipeline with trimming at its most eager (records deleted as soon as every reader
 * in the process has finished them, a pass every 20 ms while frames flow): nothing is lost.
 * Every frame that went in ends up predicted or rejected exactly once, and afterwards the
 * streams hold nothing, with every record counted as trimmed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { STREAMS } from '../../functions/lib/contracts';
import { loadMnist, mnistImage, renderOriginalFrameSync } from '../../functions/lib/mnist';
import { LocalPipeline, OUTPUT_STREAMS } from '../../local/pipeline';
import { writeCentroidModel } from '../helpers/centroid-model';
import { streamReader } from '../helpers/stream-reader';

const PER_ROUND = 150;

let pipeline: LocalPipeline;
let outDir: string;
let modelDir: string;

beforeAll(async () => {
  modelDir = writeCentroidModel(3000);
  outDir = mkdtempSync(join(tmpdir(), 'trim-out-'));
  pipeline = await LocalPipeline.start({
    port: 0,
    outDir,
    windowSeconds: 1,
    retainConsumedSeconds: 0,
    trimIntervalMs: 20,
    isolation: 'in-process',
    env: { MODEL_DIR: modelDir, TEST_CAMERA_PREFIX: 'Test', AWS_REGION: 'us-east-1', LOG_LEVEL: 'ERROR' },
    logger: { debug: () => undefined, warn: () => undefined },
  });
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
  rmSync(outDir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});

/** Puts `PER_ROUND` MNIST frames (a third from a Test camera, so uncertain images flow too) and two bad records; returns their frame ids. */
async function publishRound(round: number): Promise<string[]> {
  const mnist = loadMnist('t10k');
  const records = Array.from({ length: PER_ROUND }, (_, k) => {
    const i = round * PER_ROUND + k;
    const body = {
      image: renderOriginalFrameSync(mnistImage(mnist, i)).toString('base64'),
      camera: i % 3 === 0 ? 'Test-trim' : 'Camera-trim',
      timestamp: new Date().toISOString(),
      label: mnist.labels[i],
    };
    return { PartitionKey: body.camera, Data: Buffer.from(JSON.stringify(body)) };
  });
  records.push({ PartitionKey: 'bad', Data: Buffer.from('{"image": ') }, { PartitionKey: 'bad', Data: Buffer.from('null') });
  const out = await pipeline.client.send(new PutRecordsCommand({ StreamName: STREAMS.cameraImages, Records: records }));
  expect(out.FailedRecordCount).toBe(0);
  return (out.Records ?? []).map((r) => `${r.ShardId}-${r.SequenceNumber}`);
}

it('loses nothing while finished records are deleted from the emulator as the frames flow', async () => {
  // Prepare
  const trimmer = pipeline.trimmer;
  expect(trimmer).toBeDefined();

  // Act: two rounds, each drained and trimmed, the second on streams already trimmed.
  const inputs: string[] = [];
  for (const round of [0, 1]) {
    inputs.push(...(await publishRound(round)));
    await pipeline.drain(240_000);
    await trimmer?.trimNow();
  }

  // Assess: every frame in exactly one place at home.
  const ids = pipeline.home.ids();
  for (const id of inputs) expect(Number(ids.predicted.has(id)) + Number(ids.rejected.has(id))).toBe(1);
  expect(ids.predicted.size + ids.rejected.size).toBe(inputs.length);
  expect(pipeline.home.counts.rejected).toBe(4);
  expect(pipeline.home.counts.uncertain).toBeGreaterThanOrEqual(2 * Math.ceil(PER_ROUND / 3));
  expect(pipeline.runner.deadLetters).toEqual([]);

  // Every record was finished by all its readers, so every stream is empty now, and the input
  // is still counted whole.
  const reader = streamReader(pipeline.client);
  for (const stream of [STREAMS.cameraImages, ...OUTPUT_STREAMS])
    expect({ stream, left: (await reader.readAll(stream)).length }).toEqual({ stream, left: 0 });
  expect(trimmer?.trimmed.get(STREAMS.cameraImages)).toBe(inputs.length);
  expect(trimmer?.trimmed.get(STREAMS.predictions)).toBe(ids.predicted.size);
  expect(await pipeline.countRecords(STREAMS.cameraImages)).toBe(inputs.length);
}, 300_000);
