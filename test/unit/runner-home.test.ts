/**
 * The home side of a local run: file names from untrusted camera ids, de-duplication of
 * at-least-once deliveries, and resuming a folder without counting twice.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KinesisStreamEvent } from 'aws-lambda';
import { HomeOutputs, safeFileName } from '../../local/home';

function event(bodies: unknown[]): KinesisStreamEvent {
  return {
    Records: bodies.map((body, i) => ({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'k',
        sequenceNumber: String(i),
        data: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)).toString('base64'),
        approximateArrivalTimestamp: 0,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `shardId-000000000000:${i}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn',
    })),
  };
}

const prediction = (frame: string, extra: Record<string, unknown> = {}) => ({
  frame_id: frame,
  camera: 'Camera-a',
  device: 'dev',
  timestamp: '2026-01-01T00:00:00.000Z',
  received_at: '2026-01-01T00:00:00.100Z',
  scored_at: '2026-01-01T00:00:00.200Z',
  result_class: 3,
  result_probability: 0.95,
  prep_time: 0.001,
  predict_time: 0.001,
  model_version: '1.0.0',
  blank: false,
  label: 3,
  ...extra,
});

const uncertain = (frame: string, camera: string) => ({
  ...prediction(frame, { camera, result_probability: 0.4 }),
  image: Buffer.from('png bytes').toString('base64'),
  prepared_image: Array.from({ length: 28 }, () => Array.from({ length: 28 }, () => 0)),
  predictions: [0.4, 0.3, 0.1, 0.1, 0.1, 0, 0, 0, 0, 0],
  reason: 'low_confidence',
});

describe('safeFileName', () => {
  it.each([
    ['Camera-vm', 'Camera-vm'],
    ['../../etc/passwd', '__.._etc_passwd'],
    ['a/b\\c:d', 'a_b_c_d'],
    ['.hidden', '_hidden'],
    ['', '_'],
    ['x'.repeat(300), 'x'.repeat(80)],
    ['caméra\u0000\n', 'cam_ra__'],
  ])('%j -> %j', (input, expected) => {
    expect(safeFileName(input)).toBe(expected);
  });
});

describe('HomeOutputs', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'home-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes each frame once however often it is delivered, and keeps unreadable records', async () => {
    const home = new HomeOutputs(dir);
    const handlers = home.handlers();

    await handlers.predictions(event([prediction('f1'), prediction('f2', { label: 5 }), prediction('f1'), 'not json']));
    await handlers.predictions(event([prediction('f2')]));
    await handlers['uncertain-images'](event([uncertain('f2', '../evil'), uncertain('f2', '../evil')]));

    const lines = readFileSync(home.path('predictions'), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { frame_id: string }).frame_id)).toEqual(['f1', 'f2']);
    expect(home.counts).toMatchObject({ predicted: 2, uncertain: 1, labelled: 2, correct: 1, duplicates: 3, unreadable: 1 });
    expect(readdirSync(home.path('uncertain')).sort()).toEqual(['__evil_f2.json', '__evil_f2.png']);
    const tuple = JSON.parse(readFileSync(join(home.path('uncertain'), '__evil_f2.json'), 'utf8')) as Record<string, unknown>;
    expect(tuple.image).toBeUndefined();
    expect(tuple.image_file).toBe('__evil_f2.png');
    expect(readFileSync(join(home.path('uncertain'), '__evil_f2.png'), 'utf8')).toBe('png bytes');
  });

  it('starts empty unless resuming, and a resumed folder is not counted twice', async () => {
    const first = new HomeOutputs(dir);
    await first.handlers().predictions(event([prediction('f1')]));
    await first.handlers()['uncertain-images'](event([uncertain('f1', 'Camera-a')]));

    const resumed = new HomeOutputs(dir, { resume: true });
    await resumed.handlers().predictions(event([prediction('f1'), prediction('f3')]));
    const fresh = new HomeOutputs(dir);

    expect(resumed.counts).toMatchObject({ predicted: 2, uncertain: 1, duplicates: 1 });
    expect(fresh.counts.predicted).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['uncertain']);
  });

  it('remembers a bounded number of recent ids, so a long run stays flat in memory', async () => {
    const home = new HomeOutputs(dir, { dedupMemory: 2 });
    const { predictions } = home.handlers();

    await predictions(event([prediction('f1'), prediction('f2'), prediction('f3')]));
    await predictions(event([prediction('f3'), prediction('f1')]));

    // f3 is recent: a duplicate. f1 was forgotten: far older than any retry could repeat.
    expect(home.counts).toMatchObject({ predicted: 4, duplicates: 1 });
    expect([...home.ids().predicted]).toEqual(['f3', 'f1']);
  });
});
