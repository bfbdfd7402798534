/**
 * Where a soak's steady part begins: memory is judged only once the pipeline's bounded
 * memories are full at the offered rate. Until then a rising resident set is a memory filling
 * toward its bound, not a leak.
 *
 * The aggregators' memories of counted frames take their full size at the start; the home's
 * memories of uncertain and rejected frame ids fill at about 1% of the rate, over hours, to
 * about 6 MB each, and are left in the steady part (see the README's soak section).
 */
import { DEDUP_MEMORY, WINDOWS_KEPT } from '../local/home';

/** The bounded memory that fills last at `framesPerSecond`, and when it is full (seconds of load). */
export function boundedMemoriesFull(
  framesPerSecond: number,
  windowSeconds: number,
  predictedShare = 1,
): { seconds: number; what: string } {
  const memories = [
    { seconds: WINDOWS_KEPT * windowSeconds, what: `the home's last ${WINDOWS_KEPT} metrics windows of ${windowSeconds} s` },
    {
      seconds: DEDUP_MEMORY / (framesPerSecond * predictedShare),
      what: `the home's last ${DEDUP_MEMORY.toLocaleString('en-US')} predicted frame ids`,
    },
  ];
  return memories.reduce((latest, m) => (m.seconds > latest.seconds ? m : latest));
}

/**
 * Seconds of load before memory is judged: the bounded memories full, and at least a minute
 * and a fifth of the run for each thread's heap to reach its working size.
 */
export function steadyFrom(loadSeconds: number, full: { seconds: number }): number {
  return Math.max(60, loadSeconds * 0.2, full.seconds);
}

/** Whole minutes of load a run needs for a minute of samples in its steady part. */
export function minutesToJudge(full: { seconds: number }): number {
  // L - max(60, 0.2 L, full) >= 60 holds from L = max(120, full + 60).
  return Math.ceil(Math.max(120, full.seconds + 60) / 60);
}
