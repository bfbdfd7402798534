/**
 * Turns a PNG file into a `camera-images` PNG record: the same image with camera, timestamp
 * and label as tEXt chunks, ready for `aws kinesis put-record --data fileb://<out>`.
 *
 *   npx tsx scripts/png-record.ts digit.png --camera Cli-cam --label 7 --out frame.png
 *
 * The timestamp defaults to now. Fields the input already carries are replaced.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { frameFieldsSchema } from '../functions/lib/contracts';
import { encodePngRecord } from '../functions/lib/png-frame-record';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    camera: { type: 'string' },
    timestamp: { type: 'string' },
    label: { type: 'string' },
    out: { type: 'string' },
  },
});
try {
  const input = positionals[0];
  if (!input || !values.camera || !values.out)
    throw new Error('usage: png-record.ts IN.png --camera ID [--timestamp ISO] [--label D] --out OUT.png');
  const parsed = frameFieldsSchema.safeParse({
    camera: values.camera,
    timestamp: values.timestamp ?? new Date().toISOString(),
    ...(values.label !== undefined ? { label: Number(values.label) } : {}),
  });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const fields = parsed.data;
  writeFileSync(values.out, encodePngRecord(readFileSync(input), fields));
  console.log(`${values.out}: ${JSON.stringify(fields)}`);
} catch (error: unknown) {
  console.error(`png-record: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
