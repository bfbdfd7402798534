/**
 * Retry delays of the uplink: the shared capped exponential schedule (Stream Manager retries
 * at intervals of up to five minutes, forever), with half of each delay kept fixed so a retry
 * never comes sooner than half the schedule, and several devices coming back after the same
 * outage do not retry in step.
 */
import { backoffCeilingMs, type BackoffSettings } from '../../functions/lib/retry';

export type { BackoffSettings } from '../../functions/lib/retry';

/**
 * Delay before retry number `failures` (1 = after the first failure): a random value in
 * [d/2, d] with d = {@link backoffCeilingMs}.
 */
export function backoffDelayMs(failures: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const ceiling = backoffCeilingMs(failures, settings);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
