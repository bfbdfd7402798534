/**
 * What the uplink reports: a plain JSON object (for the summary, a status file and the home
 * page) and the one-line messages printed when the link goes down or comes back.
 */
import type { DropReason } from './backlog';

export interface UplinkStreamStatus {
  /** Records waiting for the home's acknowledgement. */
  records: number;
  bytes: number;
  /** Seconds the oldest waiting record has waited; null when none waits. */
  oldest_age_seconds: number | null;
  /** Acknowledged by the home since this process started. */
  sent_records: number;
  sent_bytes: number;
  /** Dropped since the backlog was created (persisted with it), by reason. */
  dropped: Partial<Record<DropReason, number>>;
}

export interface UplinkStatus {
  /** The home endpoint ("aws" for the regional AWS endpoint). */
  endpoint: string;
  stream_prefix: string;
  /** "up" after a successful send, "down" after a failed one, "unknown" before either. */
  link: 'up' | 'down' | 'unknown';
  /** ISO time the link entered that state. */
  link_since: string;
  last_success: string | null;
  last_error: { at: string; message: string } | null;
  /** Failed attempts in a row, and when the next one is due (ISO), while down. */
  consecutive_failures: number;
  next_attempt_at: string | null;
  backlog: { records: number; bytes: number; max_bytes: number; policy: string; persisted: boolean };
  /** Per forwarded stream (base names), highest priority first. */
  streams: Record<string, UplinkStreamStatus>;
  /** Records the uplink's reader skipped as already forwarded (same frame_id). */
  duplicates_skipped: number;
  /** Bytes put on the link (attempts included), and the cap in kilobits/s (0 = none). */
  bytes_attempted: number;
  kbps: number;
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Total records dropped, all streams and reasons. */
export function droppedTotal(status: UplinkStatus): number {
  let n = 0;
  for (const s of Object.values(status.streams)) for (const count of Object.values(s.dropped)) n += count ?? 0;
  return n;
}

/** "uplink down: ..." line, printed once when the link goes down. */
export function downLine(status: UplinkStatus): string {
  const retry = status.next_attempt_at ? `, next try ${status.next_attempt_at}` : '';
  return `uplink down: ${status.last_error?.message ?? 'unknown error'}; keeping ${status.backlog.records} records (${mb(status.backlog.bytes)}) at the edge${retry}`;
}

/** "uplink up again ..." line, printed once when a send succeeds after the link was down. */
export function upLine(status: UplinkStatus, downSeconds: number): string {
  return `uplink up again after ${downSeconds.toFixed(1)} s down; ${status.backlog.records} records (${mb(status.backlog.bytes)}) still to send`;
}

/** The summary's lines about the uplink. */
export function summaryLines(status: UplinkStatus): string[] {
  const sent = Object.entries(status.streams)
    .map(([stream, s]) => `${stream} ${s.sent_records}`)
    .join(', ');
  const waiting = Object.entries(status.streams)
    .filter(([, s]) => s.records > 0)
    .map(([stream, s]) => `${stream} ${s.records} (oldest ${s.oldest_age_seconds?.toFixed(0)} s)`)
    .join(', ');
  const dropped = Object.entries(status.streams)
    .flatMap(([stream, s]) =>
      Object.entries(s.dropped)
        .filter(([, n]) => (n ?? 0) > 0)
        .map(([reason, n]) => `${stream} ${n} ${reason}`),
    )
    .join(', ');
  return [
    `uplink      ${status.endpoint}${status.stream_prefix ? ` (prefix ${status.stream_prefix})` : ''}: link ${status.link}, sent ${sent}`,
    `            backlog ${status.backlog.records} records (${mb(status.backlog.bytes)} of ${mb(status.backlog.max_bytes)}${waiting ? `: ${waiting}` : ''}), dropped ${droppedTotal(status)}${dropped ? ` (${dropped})` : ''}`,
    ...(status.last_error ? [`            last error ${status.last_error.at}: ${status.last_error.message}`] : []),
  ];
}
