// Refetches driven by server events: at 2,000 frames/s events arrive many times a second, so
// a debounce would never fire; a throttle refetches at most once per interval and once more
// after the last event, so the view ends up current.

/** `fn` at most once per `ms`, with a trailing call when events came in between. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (wait <= 0 && timer === null) {
      last = Date.now();
      fn();
      return;
    }
    if (timer !== null) return;
    timer = setTimeout(
      () => {
        timer = null;
        last = Date.now();
        fn();
      },
      Math.max(wait, 0),
    );
  };
}
