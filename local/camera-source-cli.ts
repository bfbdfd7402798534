/**
 * The camera source from a terminal: publishes MNIST test frames (or a folder of PNGs) into
 * `camera-images` on a running emulator (default http://127.0.0.1:4567, what `npm start --
 * --serve` listens on) or on AWS (`--endpoint aws`).
 *
 *   npx tsx local/camera-source-cli.ts --count 100
 *   npx tsx local/camera-source-cli.ts --camera Test --delay 0.5 --repeat 0
 *   npx tsx local/camera-source-cli.ts --folder ./my-frames --rate 50
 *
 * Every flag has an environment variable (see `--help`); the summary is printed as JSON.
 */
import { parseArgs } from 'node:util';
import { framesFrom } from '../functions/lib/camera-source/frames';
import { cameraId, publishFrames } from '../functions/lib/camera-source/publish';
import { loadConfig, streamName } from '../functions/lib/config';
import { createKinesisClient } from '../functions/lib/kinesis';
import { KinesisStreamWriter } from '../functions/lib/stream-writer';

const HELP = `usage: camera-source-cli [options]
  --camera ID          camera parameter; the id is ID-<host>   (CAMERA, default Camera)
  --delay S            seconds between frames                  (DELAY, default 0)
  --repeat N           passes over the source, 0 = forever     (REPEAT, default 1)
  --count N            stop after N frames                     (COUNT, default: all)
  --rate R             at most R frames per second, 0 = no cap (RATE, default 0)
  --folder DIR         publish DIR/*.png instead of MNIST      (SOURCE, default mnist)
  --record-format F    json (base64 image) or png (tEXt fields) (RECORD_FORMAT, default json)
  --endpoint URL       Kinesis endpoint, or "aws"              (KINESIS_ENDPOINT, default http://127.0.0.1:4567)
  --stream-prefix P    stream name prefix                      (STREAM_PREFIX, default none)
  --quiet              no progress on stderr`;

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new Error(`--${name} must be a non-negative number, got ${JSON.stringify(value)}`);
  return parsed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      camera: { type: 'string' },
      delay: { type: 'string' },
      repeat: { type: 'string' },
      count: { type: 'string' },
      rate: { type: 'string' },
      folder: { type: 'string' },
      'record-format': { type: 'string' },
      endpoint: { type: 'string' },
      'stream-prefix': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const endpointFlag = values.endpoint ?? process.env.KINESIS_ENDPOINT ?? 'http://127.0.0.1:4567';
  const config = loadConfig({
    ...process.env,
    KINESIS_ENDPOINT: endpointFlag === 'aws' ? '' : endpointFlag,
    CAMERA: values.camera ?? process.env.CAMERA,
    DELAY: values.delay ?? process.env.DELAY,
    REPEAT: values.repeat ?? process.env.REPEAT,
    SOURCE: values.folder ?? process.env.SOURCE,
    RECORD_FORMAT: values['record-format'] ?? process.env.RECORD_FORMAT,
    STREAM_PREFIX: values['stream-prefix'] ?? process.env.STREAM_PREFIX,
  });
  const count = numberFlag('count', values.count ?? process.env.COUNT);
  const rate = numberFlag('rate', values.rate ?? process.env.RATE);
  const client = createKinesisClient({ endpoint: config.kinesisEndpoint, region: config.region });
  const writer = new KinesisStreamWriter(client, { maxAttempts: config.writeMaxAttempts, baseDelayMs: config.writeBaseDelayMs });
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  let lastPrint = 0;
  try {
    const summary = await publishFrames(framesFrom(config.source, config.repeat), writer, {
      camera: cameraId(config.camera, config.deviceId),
      stream: streamName('cameraImages', config.streamPrefix),
      recordFormat: config.recordFormat,
      delay: config.delay,
      count: count === undefined ? undefined : Math.floor(count),
      rate,
      signal: stop.signal,
      onProgress: ({ published, failed }) => {
        const now = Date.now();
        if (values.quiet || now - lastPrint < 1000) return;
        lastPrint = now;
        process.stderr.write(`published ${published}${failed ? `, failed ${failed}` : ''}\n`);
      },
    });
    console.log(JSON.stringify({ ...summary, endpoint: config.kinesisEndpoint ?? 'aws', source: config.source }));
    if (summary.failed > 0) process.exitCode = 1;
  } finally {
    client.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(`camera-source: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
