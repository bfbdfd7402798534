/**
 * `npm start` with its home page, as its own process: the browser tests drive the page that
 * a user would open, served by the real pipeline and its embedded emulator.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../local/runner/mappings';

export interface RunningPipeline {
  /** The page's address, as printed on the `home on <url>` line. */
  url: string;
  /** The embedded emulator's address, as printed on the `kinesis <url>` line. */
  kinesis: string;
  child: ChildProcess;
  /** Everything the process printed so far (for failure messages). */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not ended within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const HOME_LINE = /home on (http:\/\/\S+)/;
const KINESIS_LINE = /kinesis (http:\/\/\S+)/;

/**
 * Spawns `tsx local/cli/main.ts --serve ...args` and resolves once it prints `home on <url>` and
 * `kinesis <url>`.
 * @throws Error with the process output when it exits first or prints no address in `timeoutMs`.
 */
export function startPipeline(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<RunningPipeline> {
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'local/cli/main.ts'), '--serve', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: 'ERROR', NODE_OPTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (graceMs = 20_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    if ((await Promise.race([exited, late])) === 'late') {
      child.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop(1000);
      reject(
        new Error(
          `npm start printed no "home on <url>" and "kinesis <url>" lines within ${timeoutMs / 1000} s; its output:\n${output}`,
        ),
      );
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const home = HOME_LINE.exec(output)?.[1];
      const kinesis = KINESIS_LINE.exec(output)?.[1];
      if (home && kinesis) {
        clearTimeout(timer);
        resolve({ url: home.replace(/\/$/, ''), kinesis, child, output: () => output, stop });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`npm start ended (${signal ?? `exit ${code}`}) before serving the home page; its output:\n${output}`));
    });
  });
}
