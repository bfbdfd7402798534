/**
 * `npm start`: the whole pipeline on this machine. Starts the embedded Kinesis emulator on
 * 127.0.0.1, creates the streams, runs the real handlers with the mappings of serverless.yml,
 * replays the MNIST test set through it with a progress bar, prints each metrics window, and
 * writes what was sent home into the output folder, ending with a summary.
 *
 *   npm start                              replay the 10,000 MNIST test frames once
 *   npm start -- --count 500 --camera Test every frame of a Test camera goes home
 *   npm start -- --serve                   keep serving on 127.0.0.1:4567 until Ctrl-C
 *   npm start -- --endpoint http://127.0.0.1:4566   use another emulator (or AWS)
 *
 * Every flag has an environment variable; flags win over variables, variables over defaults.
 */
import { framesFrom } from '../../functions/lib/camera-source/frames';
import { type PublishSummary, publishFrames } from '../../functions/lib/camera-source/publish';
import { STREAMS } from '../../functions/lib/contracts';
import { renderMetricsTable } from '../../functions/lib/metrics/table';
import { KinesisStreamWriter } from '../../functions/lib/stream-writer';
import { checkHomeAccess, type RunningHome, startHomeServer } from '../../home/serve';
import { HomeStore } from '../../home/store';
import { LocalPipeline } from '../pipeline';
import { StateFileError } from '../../functions/lib/state-file';
import type { UplinkSettings } from '../uplink/settings';
import { cameraIds as cameraIdsOf, share, shared } from './camera-sharing';
import { helpText, MNIST_TEST_FRAMES, type Options, parseOptions, UsageError } from './options';
import { bar, Progress } from './progress-bar';
import { writeSummary } from './summary';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes `threads.json` (role -> OS thread ids) into the output folder when it changed. */
let lastThreadRoles = '';
function writeThreadRoles(pipeline: LocalPipeline, out: string): void {
  const text = `${JSON.stringify(pipeline.threadRoles())}\n`;
  if (text === lastThreadRoles) return;
  lastThreadRoles = text;
  writeFileSync(join(out, 'threads.json'), text);
}

// The SDK warns that releases after January 2027 need Node 22; this project pins its SDK
// version (package.json), so the warning would only clutter every local run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The pipeline with the options of the command line (and the home's readers when it is served). */
function startPipeline(
  options: Options,
  parallelism: number | undefined,
  homeStore: HomeStore | undefined,
  printWindow: (text: string) => void,
  uplinkLog: (line: string) => void,
): Promise<LocalPipeline> {
  return LocalPipeline.start({
    ...(options.endpoint ? { endpoint: options.endpoint, stateDir: options.state, from: options.from } : { port: options.port }),
    ...(options.persist ? { persistDir: options.persist } : {}),
    ...(options.retainConsumed !== undefined ? { retainConsumedSeconds: options.retainConsumed } : {}),
    transport: options.transport,
    maxBacklogBytes: options.maxBacklogBytes,
    outDir: options.out,
    ...(options.confidence !== undefined ? { confidence: options.confidence } : {}),
    ...(options.window !== undefined ? { windowSeconds: options.window } : {}),
    ...(options.shards !== undefined ? { shards: options.shards } : {}),
    ...(parallelism !== undefined ? { parallelism } : {}),
    isolation: options.inProcess ? 'in-process' : 'worker',
    env: {
      CAMERA: options.camera,
      DELAY: String(options.delay),
      REPEAT: String(options.repeat),
      SOURCE: options.source,
      ...(options.sampleRate !== undefined ? { SAMPLE_CERTAIN_RATE: String(options.sampleRate) } : {}),
      ...(options.sampleCap !== undefined ? { SAMPLE_CAP_PER_MINUTE: String(options.sampleCap) } : {}),
      ...(options.cameraRules !== undefined ? { CAMERA_RULES: options.cameraRules } : {}),
    },
    onWindow: (merged) => printWindow(`\n${renderMetricsTable(merged)}\n`),
    onResolve: () => console.error('reading the mappings from serverless.yml (sls print; cached after this run)...'),
    ...(homeStore ? { homeStore } : {}),
    ...(options.uplink ? { uplink: { settings: options.uplink, log: uplinkLog } } : {}),
  });
}

async function main(): Promise<number> {
  const options: Options = parseOptions(process.argv.slice(2));
  // Lambda keeps one partition key's records in order, so concurrency needs several keys:
  // with N cameras, N batches of one shard can be classified at once.
  const parallelism = options.parallelism ?? (options.cameras > 1 ? Math.min(options.cameras, 10) : undefined);
  let cameraIds: string[];
  try {
    cameraIds = cameraIdsOf(options.camera, options.cameras);
  } catch (error: unknown) {
    throw new UsageError(`--camera: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (options.help) {
    console.log(helpText());
    return 0;
  }
  const interactive = !options.quiet && process.stderr.isTTY === true;
  let progress: Progress | undefined;
  const printWindow = (text: string): void => {
    if (options.quiet) return;
    if (progress) progress.around(() => console.log(text));
    else console.log(text);
  };
  // The uplink's down / up lines are printed even with --quiet: they are news, not progress.
  const uplinkLog = (line: string): void => {
    if (progress) progress.around(() => console.error(line));
    else console.error(line);
  };

  if (options.home) {
    const refused = checkHomeAccess(options.homeHost, options.token);
    if (refused) throw new UsageError(refused);
  }
  // Opened first: a data folder another home is using stops the run before anything starts.
  const homeStore = options.home ? new HomeStore(options.data, { retention: options.retention }) : undefined;
  let pipeline: LocalPipeline;
  try {
    pipeline = await startPipeline(options, parallelism, homeStore, printWindow, uplinkLog);
  } catch (error: unknown) {
    homeStore?.close();
    throw error;
  }
  let homeServer: RunningHome | undefined;
  if (homeStore) {
    try {
      homeServer = await startHomeServer(homeStore, {
        host: options.homeHost,
        port: options.homePort,
        ...(options.token ? { token: options.token } : {}),
        source: { endpoint: pipeline.endpoint, prefix: '' },
        ...(pipeline.uplink ? { uplinkStatus: pipeline.uplink.status.bind(pipeline.uplink) } : {}),
      });
    } catch (error: unknown) {
      await pipeline.stop();
      homeStore.close();
      if ((error as { code?: unknown }).code === 'EADDRINUSE') {
        throw new UsageError(
          `the home port ${options.homePort} is taken: stop what holds it, or pass --home-port (0 picks a free one) or --no-home`,
        );
      }
      throw error;
    }
    console.log(`home on ${homeServer.url}`);
  }
  const { home } = pipeline;
  const classify = pipeline.mapping('classify');
  if (pipeline.earlier && pipeline.earlier.records > 0) {
    console.error(
      options.from === 'trim-horizon'
        ? `warning: --from trim-horizon: the ${pipeline.earlier.records} records already in ${STREAMS.cameraImages} will be ` +
            'classified again and their outputs written again to the shared output streams'
        : `${pipeline.earlier.records} records already in ${STREAMS.cameraImages} from earlier runs: resuming from the ` +
            `checkpoints in ${pipeline.checkpointFile ?? 'memory'} (those behind them are not scored again)`,
    );
  }
  console.error(
    `kinesis ${pipeline.endpoint}${pipeline.emulator ? ' (embedded kinesalite, loopback only)' : ''}; ` +
      `outputs in ${options.out}; classify batch ${classify?.batchSize ?? '?'} x${classify?.parallelizationFactor ?? 1}, ` +
      `metrics window ${pipeline.mapping('aggregate-metrics')?.tumblingWindowInSeconds ?? '?'} s`,
  );
  if (pipeline.uplink) {
    const u = options.uplink as UplinkSettings;
    console.error(
      `uplink to ${u.endpoint}${u.streamPrefix ? ` (prefix ${u.streamPrefix})` : ''}: ${u.streams.join(', ')}; backlog up to ` +
        `${(u.maxBytes / 1024 / 1024).toFixed(0)} MB ${options.persist ? 'on disk' : 'in memory'}, ${u.policy} when full` +
        `${u.kbps > 0 ? `, ${u.kbps} kbit/s` : ''}; status in ${options.out}/uplink.json`,
    );
  }

  const stop = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals += 1;
    if (signals > 1) process.exit(130); // a second Ctrl-C does not wait
    console.error('\nstopping (Ctrl-C again to quit at once)...');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const publish = !options.serve || options.count !== undefined;
  const expected = publish
    ? (options.count ?? (options.source === 'mnist' && options.repeat > 0 ? MNIST_TEST_FRAMES * options.repeat : undefined))
    : undefined;
  let published = 0;
  progress = new Progress(interactive, () => {
    const arrived = home.counts.predicted + home.counts.rejected;
    const trimmed = pipeline.trimmer ? `  trimmed ${pipeline.trimmer.total}` : '';
    return `${bar(arrived, expected)}  published ${published}  uncertain ${home.counts.uncertain}  rejected ${home.counts.rejected}${trimmed}`;
  });
  progress.start();

  const started = performance.now();
  const startedAt = Date.now();
  let summary: PublishSummary | undefined;
  let framesInStream: number | undefined;
  try {
    if (options.serve) {
      progress.around(() =>
        console.error(
          `serving on ${pipeline.endpoint}: put PNG frames into "${STREAMS.cameraImages}" and read ` +
            `${[STREAMS.predictions, STREAMS.uncertainImages, STREAMS.rejectedImages, STREAMS.metrics].join(', ')}; Ctrl-C stops`,
        ),
      );
    }
    if (publish) {
      const writer = new KinesisStreamWriter(pipeline.client);
      const frames = shared(framesFrom(options.source, options.repeat));
      const perCamera = cameraIds.map(() => 0);
      const summaries = await Promise.all(
        cameraIds.map((camera, i) =>
          publishFrames(frames, writer, {
            camera,
            stream: STREAMS.cameraImages,
            recordFormat: options.recordFormat,
            delay: options.delay,
            ...(options.count !== undefined ? { count: share(options.count, cameraIds.length, i) } : {}),
            rate: options.rate / cameraIds.length,
            // The pipeline's bounded backlog throttles the camera until it catches up: wait for it.
            maxThrottledSeconds: Number.POSITIVE_INFINITY,
            signal: stop.signal,
            onProgress: (p) => {
              perCamera[i] = p.published;
              published = perCamera.reduce((a, b) => a + b, 0);
            },
          }),
        ),
      );
      summary = summaries.reduce((total, s) => ({
        ...total,
        published: total.published + s.published,
        failed: total.failed + s.failed,
        throttled: total.throttled + s.throttled,
        labelled: total.labelled + s.labelled,
      }));
      published = summary.published;
    }
    if (options.serve) {
      // Which thread runs what, for per-thread CPU figures (bench/threads.ts): containers start
      // on first use, so the file follows them.
      const threads = setInterval(() => writeThreadRoles(pipeline, options.out), 1000);
      threads.unref();
      writeThreadRoles(pipeline, options.out);
      stop.signal.addEventListener('abort', () => clearInterval(threads), { once: true });
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    // Let what is in the streams finish (bounded after Ctrl-C), then close the last window.
    await pipeline.drain(stop.signal.aborted ? 15_000 : 600_000).catch((error: unknown) => {
      console.error(`\nnot everything finished: ${error instanceof Error ? error.message : String(error)}`);
    });
    // A resumed run's input includes what earlier runs published into the persisted stream,
    // and a served one's what other clients put: count the stream itself.
    if (options.persist || (options.serve && pipeline.emulator)) {
      framesInStream = await pipeline.countRecords(STREAMS.cameraImages);
    }
    if (pipeline.uplink && pipeline.uplink.backlog.records > 0) {
      // Persisted, the backlog waits on disk for the next start; in memory it would be lost.
      const owed = await pipeline.uplink.drain(stop.signal.aborted || options.persist ? 10_000 : 60_000, stop.signal);
      if (owed > 0) {
        progress.around(() =>
          console.error(
            options.persist
              ? `uplink: ${owed} records not yet acknowledged by the home; kept in ${options.persist}/uplink, sent on the next start`
              : `uplink: ${owed} records not acknowledged by the home are dropped with this process (listed in uplink-dropped.jsonl); --persist keeps them`,
          ),
        );
      }
    }
  } finally {
    progress.stop();
    await homeServer?.close();
    await pipeline.stop();
    homeStore?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  return writeSummary(pipeline, options, { summary, framesInStream, started, startedAt, cameraIds });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError || (error instanceof TypeError && /Unknown option|argument/.test(error.message))) {
      console.error(`${error.message}\n\n${helpText()}`);
      process.exitCode = 2;
      return;
    }
    if (error instanceof StateFileError) {
      console.error(error.message);
      process.exitCode = 1;
      return;
    }
    if ((error as { code?: unknown }).code === 'EADDRINUSE') {
      console.error(`${(error as Error).message}\nanother process holds the port: stop it, or pass --port (0 picks a free one)`);
      process.exitCode = 1;
      return;
    }
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
