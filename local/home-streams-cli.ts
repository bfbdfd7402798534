/**
 * `npm run home-streams -- [--streams-port 4568] [--persist DIR] [--stream-prefix P]`: the
 * home streams alone (see home-streams.ts), until Ctrl-C or SIGTERM.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_HOME_STREAMS_PORT, startHomeStreams } from './home-streams';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE =
  'usage: npm run home-streams -- [--streams-port P (default 4568, 0 = any free)] [--persist DIR] [--stream-prefix P]';

async function main(): Promise<number> {
  let values: { 'streams-port'?: string; persist?: string; 'stream-prefix'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        'streams-port': { type: 'string' },
        persist: { type: 'string' },
        'stream-prefix': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error: unknown) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const port = values['streams-port'] === undefined ? DEFAULT_HOME_STREAMS_PORT : Number(values['streams-port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--streams-port must be an integer from 0 to 65535, got ${JSON.stringify(values['streams-port'])}\n${USAGE}`);
    return 2;
  }
  const prefix = values['stream-prefix'] ?? '';
  if (!/^[A-Za-z0-9._-]*$/.test(prefix)) {
    console.error(`--stream-prefix may hold letters, digits, ".", "_" and "-" only, got ${JSON.stringify(prefix)}`);
    return 2;
  }
  const home = await startHomeStreams({
    port,
    streamPrefix: prefix,
    ...(values.persist ? { persistDir: resolve(values.persist) } : {}),
  });
  console.log(`home streams on ${home.endpoint}`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await home.stop();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const code = (error as { code?: unknown }).code;
    console.error(
      code === 'EADDRINUSE'
        ? `${(error as Error).message}: another process holds the port; pass --streams-port (0 picks a free one)`
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error),
    );
    process.exitCode = 1;
  },
);
