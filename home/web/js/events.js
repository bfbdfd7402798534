// One EventSource for the whole page (GET /api/events); views subscribe by event name.
// The browser reconnects by itself; views refetch what they show when the stream comes back.
import { useEffect, useRef } from 'preact/hooks';

const EVENT_NAMES = ['window', 'frames', 'label', 'rejected', 'dataset', 'retrain', 'models', 'uplink', 'retention'];
const bus = new EventTarget();
let source = null;

/** Opens the stream once; `onState` hears 'live', 'reconnecting' or 'closed'. */
export function connectEvents(onState) {
  if (source) return;
  source = new EventSource('/api/events');
  for (const name of EVENT_NAMES) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // a malformed event is dropped, the next one repairs the view
      }
      bus.dispatchEvent(new CustomEvent(name, { detail: data }));
    });
  }
  let opened = false;
  source.addEventListener('open', () => {
    onState('live');
    // Only a reconnection means events may have been missed; the first open does not.
    if (opened) bus.dispatchEvent(new CustomEvent('reconnected'));
    opened = true;
  });
  source.addEventListener('error', () => onState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'));
}

/** Calls the latest `handler` with each `name` event's data while the component is mounted. */
export function useServerEvent(name, handler) {
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => {
    const listener = (event) => latest.current(event.detail);
    bus.addEventListener(name, listener);
    return () => bus.removeEventListener(name, listener);
  }, [name]);
}
