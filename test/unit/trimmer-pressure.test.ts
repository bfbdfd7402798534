/**
 * The trimmer and a bounded backlog: when the store comes under pressure between two regular
 * passes, what the consumers finished is deleted within a pressure check, not at the next
 * regular pass. Otherwise a camera refused at the bound waits while the pipeline, having
 * finished the backlog, has nothing left to read.
 */
import { ConsumedRecordTrimmer } from '../../local/emulator/trimmer';
import type { ConsumerPosition } from '../../local/runner';
import { waitUntil } from '../helpers/wait';

/** A store whose pressure the test sets, recording what it was asked to delete. */
function boundedStore() {
  const store = {
    pressure: false,
    checks: 0,
    trims: [] as Array<{ stream: string; shardId: string; upToExclusive: string }>,
    trim: async (stream: string, shardId: string, upToExclusive: string) => {
      store.trims.push({ stream, shardId, upToExclusive });
      return 1;
    },
    underPressure: async () => {
      store.checks += 1;
      return store.pressure;
    },
  };
  return store;
}

const finished = (sequenceNumber: string): { positions(): ConsumerPosition[] } => ({
  positions: () => [{ functionName: 'classify', stream: 'camera-images', shardId: 'shardId-000000000000', sequenceNumber }],
});

/** A started trimmer with a regular pass only every minute, stopped after `body` whatever happens. */
async function withTrimmer(
  retainSeconds: number,
  body: (store: ReturnType<typeof boundedStore>, trimmer: ConsumedRecordTrimmer) => Promise<void>,
): Promise<void> {
  const store = boundedStore();
  const trimmer = new ConsumedRecordTrimmer(store, finished('41'), { retainSeconds, intervalMs: 60_000 });
  trimmer.start();
  try {
    await body(store, trimmer);
  } finally {
    await trimmer.stop();
  }
}

describe('ConsumedRecordTrimmer under pressure', () => {
  it('deletes what was finished as soon as a check finds the store under pressure, long before the regular pass', async () => {
    // A deletion within seconds can only come from a check: the regular pass is a minute away.
    await withTrimmer(600, async (store, trimmer) => {
      await waitUntil(
        () => store.checks >= 2,
        'the trimmer to check the store between regular passes',
        10_000,
        () => `${store.checks} checks`,
      );
      expect(store.trims).toEqual([]);
      store.pressure = true;
      await waitUntil(
        () => store.trims.length > 0,
        'a deletion once the store is under pressure',
        10_000,
        () => `${store.checks} checks`,
      );
      expect(store.trims[0]).toEqual({ stream: 'camera-images', shardId: 'shardId-000000000000', upToExclusive: '42' });
      expect(trimmer.pressurePasses).toBeGreaterThan(0);
    });
  });

  it('checks the store between regular passes, and runs no pass while there is no pressure', async () => {
    await withTrimmer(0, async (store) => {
      await waitUntil(
        () => store.checks >= 5,
        'five pressure checks',
        10_000,
        () => `${store.checks} checks`,
      );
      // Retention 0 would delete at any pass: none ran, so only checks happened.
      expect(store.trims).toEqual([]);
    });
  });
});
