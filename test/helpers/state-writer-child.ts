/**
 * A process that writes a state file over and over, printing each value once its write has
 * returned: killed at any instant, the file must still read as one of the values, at least
 * the last one printed. Also appends numbered lines durably, printing each after it returns.
 *
 *   node --import tsx state-writer-child.ts <state file> <lines file>
 */
import { appendDurable, writeStateFile } from '../../functions/lib/state-file';

const [stateFile, linesFile] = process.argv.slice(2);
if (!stateFile || !linesFile) throw new Error('usage: state-writer-child.ts <state file> <lines file>');
// A body of a few kB, so a kill can land in the middle of writing it.
const padding = 'x'.repeat(4096);
for (let n = 1; ; n += 1) {
  writeStateFile(stateFile, { n, padding });
  appendDurable(linesFile, `${JSON.stringify({ n, padding: padding.slice(0, 200) })}\n`);
  process.stdout.write(`${n}\n`);
}
