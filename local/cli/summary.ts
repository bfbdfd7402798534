/**
 * The end of `npm start`: the run's figures written to summary.json in the outputs folder and
 * printed as a short table, and the exit code (0 only when every frame is accounted for).
 */
import type { PublishSummary } from '../../functions/lib/camera-source/publish';
import { STREAMS } from '../../functions/lib/contracts';
import { isEarlierFrame } from '../earlier-records';
import type { LocalPipeline } from '../pipeline';
import { writeFileAtomic } from '../../functions/lib/state-file';
import { summaryLines as uplinkSummaryLines } from '../uplink/status';
import type { Options } from './options';

/** What the run did, besides what the pipeline counted. */
export interface RunFigures {
  /** What the camera source published (undefined when nothing was). */
  summary: PublishSummary | undefined;
  /** Records counted in camera-images itself (persisted or served runs), else undefined. */
  framesInStream: number | undefined;
  /** `performance.now()` and `Date.now()` at the start of publishing. */
  started: number;
  startedAt: number;
  cameraIds: string[];
}

/**
 * Writes summary.json, prints the summary (unless quiet) and returns the exit code: 1 when a
 * frame is unaccounted for, a batch was dead-lettered or the uplink lost records at exit.
 */
export function writeSummary(pipeline: LocalPipeline, options: Options, run: RunFigures): number {
  const { summary, framesInStream, started, startedAt, cameraIds } = run;
  const { home } = pipeline;
  const seconds = (performance.now() - started) / 1000;
  const counts = home.counts;
  const framesIn = framesInStream ?? summary?.published ?? counts.predicted + counts.rejected;
  const outputSpan = home.lastOutputAt > 0 ? (home.lastOutputAt - home.firstOutputAt) / 1000 : 0;
  // Publish start to the last frame's output arriving home: the end-to-end time of the run.
  const pipelineSeconds = home.lastOutputAt > startedAt ? (home.lastOutputAt - startedAt) / 1000 : seconds;
  const [p50, p99] = home.endToEnd.percentiles([50, 99]);
  // Against a shared endpoint only this run's frames count: earlier runs' are reported apart.
  const { earlier } = pipeline;
  const isEarlier = (frameId: string): boolean => (earlier ? isEarlierFrame(earlier, frameId) : false);
  let deadLetteredFrames = 0;
  let earlierDeadLettered = 0;
  for (const d of pipeline.runner.deadLetters) {
    if (!d.KinesisBatchInfo.streamArn.endsWith(`/${STREAMS.cameraImages}`)) continue;
    for (const r of d.records) {
      if (isEarlier(`${d.KinesisBatchInfo.shardId}-${r.sequenceNumber}`)) earlierDeadLettered += 1;
      else deadLetteredFrames += 1;
    }
  }
  const earlierFinished = counts.earlier.predicted + counts.earlier.rejected + earlierDeadLettered;
  const result = {
    frames_in: framesIn,
    predicted: counts.predicted,
    uncertain: counts.uncertain,
    rejected: counts.rejected,
    accuracy: counts.labelled > 0 ? Math.round((counts.correct / counts.labelled) * 1e5) / 1e5 : null,
    labelled: counts.labelled,
    frames_per_second: pipelineSeconds > 0 ? Math.round((counts.predicted + counts.rejected) / pipelineSeconds) : 0,
    seconds: Math.round(pipelineSeconds * 1000) / 1000,
    output_span_seconds: Math.round(outputSpan * 1000) / 1000,
    latency_p50_seconds: p50 ?? null,
    latency_p99_seconds: p99 ?? null,
    // Frames neither predicted, rejected nor held by the dead-letter file: lost.
    unaccounted: Math.max(0, framesIn - counts.predicted - counts.rejected - deadLetteredFrames),
    publish_failed: summary?.failed ?? 0,
    // Times the camera was asked to wait (its frames refused and sent again) by the bounded backlog.
    publish_throttled: summary?.throttled ?? 0,
    transport: pipeline.transport,
    dead_lettered: pipeline.runner.deadLetters.length,
    dead_lettered_frames: deadLetteredFrames,
    duplicates_dropped: counts.duplicates,
    unreadable_outputs: counts.unreadable,
    rejected_by_reason: counts.rejectedByReason,
    uncertain_by_reason: counts.uncertainByReason,
    // Shadow scoring over the run: frames both models scored, and how many they agreed on.
    shadow: [...home.shadowTotals.values()],
    metrics_windows: home.windowCount,
    // Records the embedded emulator deleted once every in-process reader had finished them.
    trimmed_records: pipeline.trimmer?.total ?? 0,
    model_versions: [...home.modelVersions],
    confidence: pipeline.handlerConfig().confidenceThreshold,
    cameras: cameraIds,
    endpoint: pipeline.endpoint,
    ...(earlier
      ? {
          // Records camera-images held before this run; those finished now were left unfinished
          // by an earlier run (or re-read with --from trim-horizon); the rest were skipped.
          earlier_records: earlier.records,
          earlier_finished: earlierFinished,
          earlier_skipped: Math.max(0, earlier.records - earlierFinished),
          state_file: pipeline.checkpointFile ?? null,
        }
      : {}),
    ...(pipeline.uplink ? { uplink: pipeline.uplink.status() } : {}),
  };
  writeFileAtomic(home.path('summary'), `${JSON.stringify(result, null, 2)}\n`);
  if (!options.quiet) {
    const pct = (n: number) => (framesIn > 0 ? ` (${((100 * n) / framesIn).toFixed(1)}%)` : '');
    console.log(
      [
        '',
        `frames in   ${framesIn}`,
        `predicted   ${counts.predicted}${pct(counts.predicted)}`,
        `uncertain   ${counts.uncertain}${pct(counts.uncertain)}  (sent home as PNG + JSON)`,
        `rejected    ${counts.rejected}${pct(counts.rejected)}`,
        `accuracy    ${result.accuracy === null ? '-' : `${(result.accuracy * 100).toFixed(2)}% of ${counts.labelled} labelled`}`,
        `throughput  ${result.frames_per_second} frames/s end to end (${result.seconds} s)`,
        `latency     p50 ${p50 === null || p50 === undefined ? '-' : `${(p50 * 1000).toFixed(0)} ms`}, p99 ${p99 === null || p99 === undefined ? '-' : `${(p99 * 1000).toFixed(0)} ms`} capture to scoring`,
        ...(earlier
          ? [
              `earlier     ${earlier.records} records from before this run: ${earlierFinished} finished now, ` +
                `${Math.max(0, earlier.records - earlierFinished)} skipped (not counted above)`,
            ]
          : []),
        `dead-letter ${result.dead_lettered} batches (${deadLetteredFrames} frames, see dead-letter.jsonl)   duplicates dropped ${counts.duplicates}   unaccounted ${result.unaccounted}`,
        ...(pipeline.trimmer
          ? [
              `emulator    ${pipeline.trimmer.total} finished records deleted (--retain-consumed ${options.retainConsumed} s); ` +
                `${pipeline.transport} path; camera throttled ${result.publish_throttled} times (backlog bound ${(options.maxBacklogBytes / 1024 / 1024).toFixed(0)} MB)`,
            ]
          : []),
        ...(pipeline.uplink ? uplinkSummaryLines(pipeline.uplink.status()) : []),
        ...[...home.shadowTotals.values()].map(
          (s) =>
            `shadow      ${s.candidate} agreed with ${s.current} on ${s.agree} of ${s.count} frames` +
            `${s.labelled > 0 ? ` (labelled ${s.labelled}: ${s.current_correct} vs ${s.candidate_correct} right)` : ''}`,
        ),
        `outputs     ${options.out}`,
      ].join('\n'),
    );
  }
  // Records an in-memory uplink could not send before exit are lost to the home: not a clean run.
  const uplinkLost = result.uplink
    ? Object.values(result.uplink.streams).reduce((n, s) => n + (s.dropped['not-sent-before-exit'] ?? 0), 0)
    : 0;
  return result.unaccounted === 0 && result.dead_lettered === 0 && uplinkLost === 0 ? 0 : 1;
}
