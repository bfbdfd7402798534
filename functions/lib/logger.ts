/**
 * The logger calls this project's modules make, in Powertools' shape (a message, then objects
 * of context): Powertools' Logger satisfies it on Lambda, and the local runtime passes its own.
 * Each module asks only for the levels it uses (`Pick<Log, ...>`), so a caller can hand in less.
 */
export interface Log {
  debug(message: string, ...extra: Record<string, unknown>[]): void;
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

/** What the classify stage and the model source log. */
export type StageLogger = Pick<Log, 'info' | 'warn' | 'error'>;
