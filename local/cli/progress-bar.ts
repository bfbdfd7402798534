/** The progress line of `npm start`: frames home out of those expected, redrawn in place on stderr. */

/** A one-line progress bar on stderr (only when stderr is a terminal, unless forced). */
export class Progress {
  private last = '';
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly enabled: boolean,
    private readonly render: () => string,
  ) {}
  start(): void {
    if (!this.enabled) return;
    this.timer = setInterval(() => this.draw(), 200);
  }
  draw(): void {
    if (!this.enabled) return;
    const line = this.render();
    if (line === this.last) return;
    this.last = line;
    process.stderr.write(`\r${line}\u001b[K`);
  }
  /** Clears the bar so other output can be printed, then redraws it. */
  around(print: () => void): void {
    if (this.enabled && this.last) process.stderr.write('\r\u001b[K');
    print();
    this.last = '';
    this.draw();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.enabled) {
      this.draw();
      process.stderr.write('\n');
    }
  }
}

/** `[####....] done/total pct%`, or a plain count when the total is unknown. */
export function bar(done: number, total: number | undefined, width = 30): string {
  if (total === undefined || total <= 0) return `${done} frames`;
  const share = Math.min(1, done / total);
  const filled = Math.round(share * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${(share * 100).toFixed(0)}%`;
}
