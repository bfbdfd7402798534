/**
 * A bound on how many decoded pixels a batch holds at once. A batch's frames are prepared
 * concurrently, and a PNG a few hundred kilobytes long may declare up to the pixel cap
 * (16.7 million 16-bit RGBA pixels inflate to 128 MiB): without a bound, a batch of such
 * records keeps every decoded frame in memory at the same time.
 */

/** Width x height a PNG's header declares, or 0 when the bytes do not start like a PNG. */
export function declaredPixels(png: Uint8Array): number {
  // Signature (8 bytes), IHDR length (4) and type (4), then width and height (4 + 4).
  if (png.length < 24 || png[12] !== 0x49 || png[13] !== 0x48 || png[14] !== 0x44 || png[15] !== 0x52) return 0;
  const view = new DataView(png.buffer, png.byteOffset, 24);
  return view.getUint32(16) * view.getUint32(20);
}

/**
 * A weighted semaphore over pixels: `run(pixels, task)` waits until `pixels` fit the budget
 * beside the tasks already running, then runs the task. Waiters start in arrival order; a
 * task larger than the whole budget runs when nothing else does.
 */
export class PixelBudget {
  private inFlight = 0;
  private readonly waiting: Array<{ pixels: number; start: () => void }> = [];

  constructor(readonly maxPixels: number) {}

  /** Pixels held by running tasks. */
  get used(): number {
    return this.inFlight;
  }

  async run<T>(pixels: number, task: () => Promise<T>): Promise<T> {
    const weight = Math.min(Math.max(0, pixels), this.maxPixels);
    if (this.waiting.length > 0 || this.inFlight + weight > this.maxPixels) {
      await new Promise<void>((start) => this.waiting.push({ pixels: weight, start }));
    } else {
      this.inFlight += weight;
    }
    try {
      return await task();
    } finally {
      this.inFlight -= weight;
      this.wake();
    }
  }

  private wake(): void {
    for (let next = this.waiting[0]; next && this.inFlight + next.pixels <= this.maxPixels; next = this.waiting[0]) {
      this.waiting.shift();
      this.inFlight += next.pixels;
      next.start();
    }
  }
}
