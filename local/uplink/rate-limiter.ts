/**
 * A byte budget over time (token bucket) for the uplink's bandwidth cap. It starts empty and
 * fills at the cap's rate up to `capacityBytes`, so the bytes it lets through from its start
 * to any moment never exceed rate x elapsed + capacity, and from a cold start never exceed
 * rate x elapsed: the cap is an upper bound, not an average.
 */
export class ByteRateLimiter {
  private tokens = 0;
  private last: number;

  /**
   * @param bytesPerSecond the cap; 0 or Infinity means no cap
   * @param capacityBytes most bytes saved up while idle (default one second's worth)
   * @param now clock in ms (injectable for tests)
   */
  constructor(
    readonly bytesPerSecond: number,
    readonly capacityBytes: number = bytesPerSecond,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = now();
  }

  /** True when there is no cap. */
  get unlimited(): boolean {
    return !(this.bytesPerSecond > 0 && Number.isFinite(this.bytesPerSecond));
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.capacityBytes, this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond);
    this.last = now;
  }

  /**
   * Milliseconds until `bytes` may be sent (0 = now). A request larger than the capacity
   * waits for a full bucket and then goes into debt, which later sends repay.
   */
  delayMs(bytes: number): number {
    if (this.unlimited) return 0;
    this.refill();
    const needed = Math.min(bytes, this.capacityBytes);
    if (this.tokens >= needed) return 0;
    return Math.ceil(((needed - this.tokens) / this.bytesPerSecond) * 1000);
  }

  /** Spends `bytes` (call when `delayMs` returned 0). */
  take(bytes: number): void {
    if (this.unlimited) return;
    this.refill();
    this.tokens -= bytes;
  }
}

/** Bytes per second of a cap in kilobits per second (Stream Manager's unit). */
export function kbpsToBytesPerSecond(kbps: number): number {
  return (kbps * 1000) / 8;
}
