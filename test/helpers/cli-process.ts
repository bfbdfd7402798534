/**
 * `npm start` as its own process (node + tsx directly, so a kill reaches the pipeline itself),
 * and waiting for conditions on it with a bound and a message.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../local/runner/mappings';

export interface CliProcess {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed). */
  exited: Promise<number | null>;
  /** Standard output and error so far. */
  output: () => string;
}

/** Starts `local/cli/main.ts` with `args`; `env` is added to this process's environment. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'local/cli/main.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'ERROR', NODE_OPTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Non-empty lines of a file (none when it does not exist yet). */
export const fileLines = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];

/**
 * Polls `condition` until it holds; throws `what` (with the process output) after `timeoutMs`
 * or when the process ends first.
 */
export async function waitFor(cli: CliProcess, condition: () => boolean, what: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (cli.child.exitCode !== null) throw new Error(`the pipeline ended before ${what}:\n${cli.output()}`);
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s:\n${cli.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Runs the CLI to its end; resolves with its exit code and output. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const cli = startCli(args, env);
  const code = await cli.exited;
  return { code, output: cli.output() };
}
