/** One frame source replayed by several cameras (`--cameras N`): their ids, who publishes how many frames. */
import { cameraId } from '../../functions/lib/camera-source/publish';

/**
 * The run's camera ids: `<camera>-<host>`, or with several cameras `<camera>-1..N-<host>`.
 *
 * @throws Error when `camera` is not a valid camera parameter.
 */
export function cameraIds(camera: string, cameras: number): string[] {
  if (cameras <= 1) return [cameraId(camera)];
  return Array.from({ length: cameras }, (_, i) => cameraId(`${camera}-${i + 1}`));
}

/** Camera `i`'s part of `total` frames split over `n` cameras. */
export function share(total: number, n: number, i: number): number {
  return Math.floor(total / n) + (i < total % n ? 1 : 0);
}

/**
 * One source read by several cameras: each frame goes to exactly one of them, and a camera
 * that stops (its count reached) does not end the source for the others.
 */
export function shared<T>(source: AsyncGenerator<T>): AsyncIterable<T> {
  const iterator: AsyncIterator<T> = {
    next: () => source.next(),
    return: async () => ({ done: true, value: undefined }),
  };
  return { [Symbol.asyncIterator]: () => iterator };
}
