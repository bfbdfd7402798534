/**
 * A home store that keeps growing and pruning: each round stores 100 new frames, labels two
 * of them (printing their keys once the label log is fsynced: acknowledged), then prunes to
 * its bound by compaction. Killed at any instant, the folder must open as one whole store.
 *
 *   node --import tsx compacting-home-child.ts <data folder> <max bytes> <first record index>
 */
import { HomeStore } from '../../home/store';
import { uncertainRecord } from './home-fixtures';

const [dir, maxBytesText, firstText] = process.argv.slice(2);
if (!dir || !maxBytesText || !firstText) throw new Error('usage: compacting-home-child.ts <dir> <max bytes> <first index>');
const store = new HomeStore(dir, { retention: { keepDays: null, maxBytes: Number(maxBytesText) } });

async function run(): Promise<void> {
  let next = Number(firstText);
  process.stdout.write('ready\n');
  for (;;) {
    const batch = Array.from({ length: 100 }, (_, i) => uncertainRecord(next + i));
    next += batch.length;
    store.addFrames(batch);
    const keys = [batch[3]?.frame_id as string, batch[50]?.frame_id as string];
    store.label(keys, 'accept');
    process.stdout.write(`labelled ${keys.join(' ')}\n`);
    const prune = await store.enforceRetention({ framesPerStep: 40 });
    process.stdout.write(`pruned ${prune?.pruned ?? 0}\n`);
  }
}

void run();
