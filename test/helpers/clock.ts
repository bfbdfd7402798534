/**
 * A clock the test moves, for tests whose subject is time read from `Date` (windows, record
 * ages) while the emulator, the SDK and the runner keep polling with real timers. The emulator
 * must run on the test's thread (`sameThread: true`) to stamp arrivals with this clock.
 */

/** Everything but Date stays real. */
const REAL = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

/**
 * Fakes `Date` only, starting at `now`. Frozen unless `advance` (then it runs on with real
 * time from there); `jest.setSystemTime` moves it. Undo with `jest.useRealTimers()`.
 */
export function fakeDate(now: number = Date.now(), advance = false): void {
  jest.useFakeTimers({ now, advanceTimers: advance, doNotFake: [...REAL] });
}
