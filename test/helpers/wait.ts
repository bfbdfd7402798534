/**
 * Waiting in tests: for a condition, never for a time, and never without a bound. A wait that
 * runs out fails with what it waited for and what it saw, not with jest's bare test timeout
 * (CI runs on a loaded machine, so bounds are generous: they catch a hang, not a slow run).
 */

/** How often a condition is looked at again. */
const POLL_MS = 20;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `condition` until it holds. After `timeoutMs` it fails with `waiting for <what>` and
 * what `seen` describes of the state at that moment.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  seen: () => string = () => '',
): Promise<void> {
  await waitForValue(async () => ((await condition()) ? true : undefined), what, timeoutMs, seen);
}

/**
 * Polls `check` until it gives a value other than `undefined` and resolves with it. After
 * `timeoutMs` it fails with `waiting for <what>` and what `seen` describes.
 */
export async function waitForValue<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs: number,
  seen: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const state = seen();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state === '' ? '' : `; seen: ${state}`}`);
    }
    await pause(POLL_MS);
  }
}

/**
 * Resolves as `promise` does, or fails after `timeoutMs` with `waiting for <what>` and what
 * `seen` describes: for a single read that may never answer (an event stream gone quiet).
 */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs: number, seen: () => string = () => ''): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        const state = seen();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${state === '' ? '' : `; seen: ${state}`}`));
      },
      Math.max(0, timeoutMs),
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
