/**
 * The runner's FIFO: order, length, and that a shifted item is let go at once (a record's
 * bytes must not stay alive until the array is next compacted).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Fifo } from '../../local/runner/fifo';

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

it('gives items back in order, across its compactions', () => {
  const fifo = new Fifo<number>();
  for (let i = 0; i < 3000; i += 1) fifo.push(i);
  const out: number[] = [];
  for (let i = 0; i < 2500; i += 1) out.push(fifo.shift() as number);
  fifo.push(3000);

  expect(out).toEqual(Array.from({ length: 2500 }, (_, i) => i));
  expect(fifo.length).toBe(501);
  expect(fifo.peek()).toBe(2500);
  expect(fifo.peek(500)).toBe(3000);
});

it('holds no reference to an item once shifted', async () => {
  const fifo = new Fifo<{ bytes: Uint8Array }>();
  const shifted = ((): WeakRef<object> => {
    const item = { bytes: new Uint8Array(1024) };
    fifo.push(item);
    fifo.push({ bytes: new Uint8Array(1) });
    fifo.shift();
    return new WeakRef(item);
  })();
  // A WeakRef keeps its target until the current job ends.
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();

  expect(shifted.deref()).toBeUndefined();
  expect(fifo.length).toBe(1);
});
