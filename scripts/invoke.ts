/**
 * `npm run invoke -- <function> <event> [--print] [more sls options]`
 *
 * Runs one handler on one sample event through `sls invoke local` (the bundle serverless-esbuild
 * builds, with the environment serverless.yml declares), on the `local` stage, whose streams
 * carry their base names (`predictions`, ...), as the local pipeline's do.
 *
 * Where the handler's outputs go:
 *   - KINESIS_ENDPOINT set: that endpoint (an emulator, or AWS itself with `https://...`);
 *   - else, a Kinesis emulator answering on 127.0.0.1:$KINESIS_PORT (default 4567, the port of
 *     `npm start -- --serve`): there;
 *   - else, or with --print: printed as JSON lines (the handlers' console sink).
 * The handler's response (e.g. `{ "batchItemFailures": [...] }`) is printed last.
 *
 * `<event>` is a file name in events/ (with or without .json) or a path.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { isAbsolute, join, relative } from 'node:path';

const ROOT = join(__dirname, '..');
const DEFAULT_PORT = 4567;

const USAGE =
  'usage: npm run invoke -- <function> <event> [--print] [sls options]\n' +
  '  e.g. npm run invoke -- classify camera-images-batch';

/** Thrown for a command line that cannot be run; the message is for the user. */
export class InvokeUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvokeUsageError';
  }
}

export interface InvokeArgs {
  functionName: string;
  /** Path of the event file, relative to the repository when inside it. */
  eventPath: string;
  /** Print the outputs even when an emulator is up. */
  print: boolean;
  /** Passed on to `sls invoke local` unchanged. */
  slsArgs: string[];
}

/**
 * Parses the command line. Throws InvokeUsageError when the function or event is missing, or
 * the event file does not exist.
 */
export function parseInvokeArgs(argv: readonly string[], root: string = ROOT): InvokeArgs {
  const positional: string[] = [];
  const slsArgs: string[] = [];
  let print = false;
  for (const arg of argv) {
    if (arg === '--print') print = true;
    else if (arg.startsWith('-') || positional.length >= 2) slsArgs.push(arg);
    else positional.push(arg);
  }
  const [functionName, event] = positional;
  if (!functionName || !event) throw new InvokeUsageError(USAGE);
  const candidates = isAbsolute(event)
    ? [event]
    : [join(root, 'events', event), join(root, 'events', `${event}.json`), join(root, event)];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found)
    throw new InvokeUsageError(`no event file "${event}" (looked for ${candidates.map((c) => relative(root, c)).join(', ')})`);
  const eventPath = found.startsWith(root) ? relative(root, found) : found;
  return { functionName, eventPath, print, slsArgs };
}

/**
 * Resolves true when a Kinesis API answers at `endpoint`: a ListStreams call gets either a
 * stream list or a Kinesis error document (`__type`), within `timeoutMs`. Anything else
 * (nothing listening, another kind of server) resolves false.
 */
export function kinesisAnswers(endpoint: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      endpoint,
      {
        method: 'POST',
        timeout: timeoutMs,
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'X-Amz-Target': 'Kinesis_20131202.ListStreams',
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve(/"(StreamNames|__type)"/.test(body)));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end('{}');
  });
}

/** Decides where outputs go; returns the endpoint, or undefined to print them. */
export async function chooseEndpoint(env: NodeJS.ProcessEnv, print: boolean): Promise<string | undefined> {
  if (print) return undefined;
  if (env.KINESIS_ENDPOINT) return env.KINESIS_ENDPOINT;
  const port = Number(env.KINESIS_PORT ?? DEFAULT_PORT);
  const local = `http://127.0.0.1:${port}`;
  return (await kinesisAnswers(local)) ? local : undefined;
}

async function main(argv: string[]): Promise<number> {
  const args = parseInvokeArgs(argv);
  const endpoint = await chooseEndpoint(process.env, args.print);
  const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
  delete env.KINESIS_ENDPOINT;
  if (endpoint) env.KINESIS_ENDPOINT = endpoint;
  // The bundle runs from .esbuild/, where the model loader's repository fallback does not
  // reach: point it at the repository's models/ unless told otherwise.
  env.MODEL_DIR ??= join(ROOT, 'models');
  // Its own bundle folder, so invocations running side by side (or beside a package) do not
  // empty each other's. Under node_modules so the bundle still resolves the project's
  // packages by walking up; removed when done (the plugin keeps it after an invoke).
  const ownWorkFolder = env.ESBUILD_WORK_FOLDER === undefined;
  env.ESBUILD_WORK_FOLDER ??= join('node_modules', '.cache', 'sls-esbuild', `invoke-${process.pid}`);
  const workFolder = join(ROOT, env.ESBUILD_WORK_FOLDER);
  process.stderr.write(endpoint ? `outputs -> ${endpoint}\n` : 'outputs -> printed (no Kinesis endpoint)\n');
  const sls = join(ROOT, 'node_modules', '.bin', 'sls');
  const child = spawn(
    sls,
    ['invoke', 'local', '--stage', 'local', '-f', args.functionName, '-p', args.eventPath, ...args.slsArgs],
    { cwd: ROOT, env, stdio: 'inherit' },
  );
  const exitCode = await new Promise<number>((resolve) => {
    child.on('close', (code) => resolve(code ?? 1));
    child.on('error', (error) => {
      process.stderr.write(`could not run ${sls}: ${error.message}\n`);
      resolve(1);
    });
  });
  if (ownWorkFolder) rmSync(workFolder, { recursive: true, force: true });
  return exitCode;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
