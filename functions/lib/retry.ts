/**
 * Waiting between attempts: the one `sleep` and the one backoff schedule every retry loop
 * uses (stream writer, Stream Manager sink, uplink, camera source pacing).
 */

/** A capped exponential schedule: attempt n may wait up to min(maxMs, baseMs * 2^(n-1)). */
export interface BackoffSettings {
  baseMs: number;
  maxMs: number;
}

/**
 * The longest wait before retry number `attempt` (1 = after the first failure):
 * min(maxMs, baseMs * 2^(attempt-1)); 0 before any failure.
 */
export function backoffCeilingMs(attempt: number, settings: BackoffSettings): number {
  if (attempt < 1) return 0;
  // 2^40 ms is far past any cap: stops the exponent from overflowing to Infinity.
  return Math.min(settings.maxMs, settings.baseMs * 2 ** Math.min(attempt - 1, 40));
}

/**
 * Wait before retry number `attempt` with full jitter: a whole number of milliseconds drawn
 * uniformly from [0, {@link backoffCeilingMs}), so writers that failed together do not retry
 * in step. `random` returns values in [0, 1); tests pin it.
 */
export function backoffDelayMs(attempt: number, settings: BackoffSettings, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeilingMs(attempt, settings));
}

/**
 * Resolves after `ms` milliseconds, at once when `ms` <= 0, and early (never rejecting) when
 * `signal` aborts, so a loop that sleeps can stop promptly.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
