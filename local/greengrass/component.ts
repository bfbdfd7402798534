/**
 * The Greengrass component's entry point: connects to Stream Manager (port from
 * STREAM_MANAGER_SERVER_PORT, token from AWS_CONTAINER_AUTHORIZATION_TOKEN, both set by
 * Greengrass), hosts the handlers over it (see host.ts) until SIGTERM, then writes the
 * checkpoints and exits.
 *
 *   tsx local/greengrass/component.ts --state DIR --export-prefix PREFIX [--stage STAGE]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadServiceDefinition } from '../runner/mappings';
import { startStreamManagerHost } from './host';
import { connectStreamManager } from './stream-manager';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = 'usage: tsx local/greengrass/component.ts --state DIR --export-prefix PREFIX [--stage local]';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { state: { type: 'string' }, 'export-prefix': { type: 'string' }, stage: { type: 'string' } },
    strict: true,
  });
  if (!values.state || values['export-prefix'] === undefined) {
    console.error(USAGE);
    return 2;
  }
  const client = await connectStreamManager({ quiet: false });
  const definition = await loadServiceDefinition({ stage: values.stage ?? 'local' });
  const host = await startStreamManagerHost({
    client,
    definition,
    stateDir: resolve(values.state),
    exportPrefix: values['export-prefix'],
    onGap: (stream, expected, got) =>
      console.error(
        `stream manager dropped ${stream} messages ${expected}..${got - 1} before they were read (stream full or past its time to live)`,
      ),
  });
  console.error(
    `hosting ${definition.mappings.map((m) => m.functionKey).join(', ')} over Stream Manager on port ${process.env.STREAM_MANAGER_SERVER_PORT ?? 8088}`,
  );
  await new Promise<void>((done) => {
    process.once('SIGTERM', done);
    process.once('SIGINT', done);
  });
  await host.stop();
  client.close();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
