/**
 * Retry delays of the uplink: exponential from a base, capped (Stream Manager retries at
 * intervals of up to five minutes, forever). The jitter keeps half the delay fixed so a
 * retry never comes sooner than half the schedule, and several devices coming back after the
 * same outage do not retry in step.
 */
export interface BackoffSettings {
  baseMs: number;
  maxMs: number;
}

/**
 * Delay before retry number `failures` (1 = after the first failure): a random value in
 * [d/2, d] with d = min(maxMs, baseMs * 2^(failures-1)).
 */
export function backoffDelayMs(failures: number, settings: BackoffSettings, random: () => number = Math.random): number {
  if (failures < 1) return 0;
  // 2^40 ms is far past any cap: stops the exponent from overflowing to Infinity.
  const exponential = settings.baseMs * 2 ** Math.min(failures - 1, 40);
  const ceiling = Math.min(settings.maxMs, exponential);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
