/**
 * When the home's event stream tells the page about the edge's uplink: at once when the link
 * changes state (down, or up again), and while records wait at the edge every few seconds so
 * the page's backlog figures move. Each event stream checks the status once a second; reading
 * it is a few in-memory sums, so an idle link costs nothing on the wire.
 */
import type { UplinkStatus } from '../local/uplink/status';

/** How often an event stream looks at the uplink's status. */
export const UPLINK_CHECK_MS = 1000;
/** How often the status is sent while the backlog holds records and the link state is unchanged. */
export const UPLINK_BACKLOG_EVENT_MS = 3000;

/** What the last `uplink` event of a stream said, and when it was sent (ms). */
export interface UplinkEventMark {
  link: UplinkStatus['link'];
  records: number;
  at: number;
}

/**
 * Whether `current` is worth an `uplink` event, given the last one sent on this stream
 * (undefined before any): the first check of a stream (so a page that read GET /api/uplink
 * just before a change is set right), the link state changed, the backlog emptied, or it
 * holds records and {@link UPLINK_BACKLOG_EVENT_MS} passed since the last event.
 */
export function uplinkEventDue(last: UplinkEventMark | undefined, current: UplinkStatus, now: number): boolean {
  if (last === undefined) return true;
  if (current.link !== last.link) return true;
  if (current.backlog.records === 0) return last.records > 0;
  return now - last.at >= UPLINK_BACKLOG_EVENT_MS;
}
