/**
 * `npm run test:repeat -- --times 20 --load 2 [jest arguments]`: runs the same jest selection
 * N times in a row, optionally with busy threads loading every core, and stops at the first
 * round that fails. A flaky test is a failing test; this is how the suite's stability under
 * load is measured rather than assumed.
 *
 *   npm run test:repeat -- --times 20 --load 2 test/integration
 *   npm run test:repeat -- --times 5 test/integration/resume.test.ts
 *   npm run test:repeat -- --times 20 -- --maxWorkers=2 test/integration/faults.test.ts
 *
 * jest's own options go after a second `--` (this script's options come before it).
 *
 * Each round's jest output goes to `<log-dir>/round-N.log`; the script prints one line per
 * round (passed, failed, seconds, load average) and a final summary, and exits 1 on a failure.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';

const MAX_TIMES = 100;
const MAX_LOAD_THREADS = 16;

interface Options {
  times: number;
  load: number;
  logDir: string;
  jestArgs: string[];
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      times: { type: 'string', default: '20' },
      load: { type: 'string', default: '0' },
      'log-dir': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('usage: npm run test:repeat -- [--times N] [--load THREADS] [--log-dir DIR] [jest arguments]');
    process.exit(0);
  }
  const times = Number(values.times);
  const load = Number(values.load);
  if (!Number.isInteger(times) || times < 1 || times > MAX_TIMES) {
    throw new Error(`--times must be an integer from 1 to ${MAX_TIMES} (got ${values.times})`);
  }
  if (!Number.isInteger(load) || load < 0 || load > MAX_LOAD_THREADS) {
    throw new Error(`--load must be an integer from 0 to ${MAX_LOAD_THREADS} busy threads (got ${values.load})`);
  }
  return { times, load, logDir: values['log-dir'] ?? join(tmpdir(), 'repeat-tests'), jestArgs: positionals };
}

/** Busy threads that keep cores occupied (each spins until terminated). */
function startLoad(threads: number): Worker[] {
  return Array.from({ length: threads }, () => new Worker('for (;;) { Math.sqrt(Math.random()); }', { eval: true }));
}

interface Round {
  passed: number;
  failed: number;
  seconds: number;
  exitCode: number;
}

async function runRound(index: number, options: Options): Promise<Round> {
  const results = join(options.logDir, `round-${index}.json`);
  const log = createWriteStream(join(options.logDir, `round-${index}.log`));
  const started = Date.now();
  const child = spawn('npx', ['jest', '--json', `--outputFile=${results}`, ...options.jestArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exitCode = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  const seconds = (Date.now() - started) / 1000;
  try {
    const report = JSON.parse(readFileSync(results, 'utf8')) as {
      numPassedTests: number;
      numFailedTests: number;
      numRuntimeErrorTestSuites: number;
    };
    return {
      passed: report.numPassedTests,
      failed: report.numFailedTests + report.numRuntimeErrorTestSuites,
      seconds,
      exitCode,
    };
  } catch (error: unknown) {
    log.write(`\nno readable jest results in ${results}: ${error instanceof Error ? error.message : String(error)}\n`);
    return { passed: 0, failed: 1, seconds, exitCode: exitCode || 1 };
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  rmSync(options.logDir, { recursive: true, force: true });
  mkdirSync(options.logDir, { recursive: true });
  const load = startLoad(options.load);
  console.log(
    `jest ${options.jestArgs.join(' ') || '(all projects)'}: ${options.times} rounds, ` +
      `${options.load} busy thread(s), logs in ${options.logDir}`,
  );
  let totalPassed = 0;
  let rounds = 0;
  try {
    for (let i = 1; i <= options.times; i += 1) {
      const round = await runRound(i, options);
      rounds = i;
      totalPassed += round.passed;
      console.log(
        `round ${i}/${options.times}: ${round.passed} passed, ${round.failed} failed, ` +
          `${round.seconds.toFixed(0)} s, load average ${(loadavg()[0] ?? 0).toFixed(1)}`,
      );
      if (round.failed > 0 || round.exitCode !== 0) {
        console.log(`round ${i} failed: see ${join(options.logDir, `round-${i}.log`)}`);
        return 1;
      }
    }
  } finally {
    await Promise.all(load.map((worker) => worker.terminate()));
  }
  console.log(`${rounds} rounds in a row without a failure (${totalPassed} test runs passed)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  },
);
