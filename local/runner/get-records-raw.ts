/**
 * GetRecords for the local runner and home readers, with each record's data left as the
 * base64 text the service sent instead of decoded bytes.
 *
 * Why: the SDK checks every record's base64 with a regular expression and decodes it, and
 * the runner then encodes it straight back to base64 for the Lambda event. For a 640x480
 * frame (816 kB of base64) that round trip cost more main-thread time than everything else
 * the runner does. The request still goes through the SDK (signing, retries, errors, the
 * endpoint and credentials of the client), so it runs against AWS exactly as against the
 * emulator: only a successful response's body is read here, and the SDK is handed a body
 * without the records to parse.
 */
import { Readable } from 'node:stream';
import { GetRecordsCommand, type GetRecordsCommandInput, type KinesisClient } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import { DirectKinesisClient } from '../emulator/direct-client';

/** One record as GetRecords returns it, data still base64. */
export interface RawRecord {
  SequenceNumber: string;
  PartitionKey: string;
  /** The record's data, base64 as on the wire (what a Lambda event carries). */
  Data: string;
  /** Seconds since the epoch, with fractions. */
  ApproximateArrivalTimestamp?: number;
}

export interface RawRecordsPage {
  Records: RawRecord[];
  NextShardIterator?: string;
  MillisBehindLatest?: number;
}

const pageSchema = z.object({
  Records: z.array(
    z.object({
      SequenceNumber: z.string(),
      PartitionKey: z.string(),
      Data: z.string(),
      ApproximateArrivalTimestamp: z.number().optional(),
    }),
  ),
  NextShardIterator: z.string().nullish(),
  MillisBehindLatest: z.number().optional(),
});

interface HttpResponseLike {
  statusCode: number;
  headers: Record<string, string>;
  body: unknown;
}

async function readBody(body: unknown): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer | string>)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** `"Data":"`: where a record's base64 starts in a GetRecords body. */
const DATA_FIELD = Buffer.from('"Data":"', 'latin1');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bodies smaller than this are parsed whole: the split below only pays for large records. */
const SPLIT_FROM_BYTES = 256 * 1024;

/**
 * Parses a GetRecords body. A large body is parsed without first becoming one string: each
 * record's base64 is cut out of the bytes into its own string and the rest (keys, iterators,
 * partition keys) is parsed as JSON with an index in its place.
 *
 * Why: V8 allocates strings over ~128 kB in their own memory, which costs about 3 ms per
 * 800 kB here (bench/large-strings.ts); a 10 MB body of 640x480 frames as one string, then
 * parsed into its records' strings, cost the runner's thread two such allocations per frame.
 * The bytes between the quotes of `"Data":"` are base64, which JSON never escapes; anything
 * else (a backslash inside, a field where none was expected, an index used twice) falls back
 * to parsing the whole body, so the result is always what JSON.parse gives.
 */
export function parseGetRecordsBody(body: Buffer): unknown {
  const whole = (): unknown => JSON.parse(body.toString('utf8'));
  if (body.length < SPLIT_FROM_BYTES) return whole();
  const parts: Buffer[] = [];
  const data: string[] = [];
  let from = 0;
  for (let at = body.indexOf(DATA_FIELD, from); at >= 0; at = body.indexOf(DATA_FIELD, from)) {
    const start = at + DATA_FIELD.length;
    const end = body.indexOf(QUOTE, start);
    if (end < 0 || body.subarray(start, end).includes(BACKSLASH)) return whole();
    parts.push(body.subarray(from, at), Buffer.from(`"Data":${data.length}`, 'latin1'));
    data.push(body.toString('latin1', start, end));
    from = end + 1;
  }
  if (data.length === 0) return whole();
  parts.push(body.subarray(from));
  let skeleton: unknown;
  try {
    skeleton = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    return whole();
  }
  const records = (skeleton as { Records?: unknown } | null)?.Records;
  if (!Array.isArray(records) || records.length !== data.length) return whole();
  for (const [i, record] of records.entries()) {
    if (typeof record !== 'object' || record === null || (record as { Data?: unknown }).Data !== i) return whole();
    (record as { Data: string }).Data = data[i] as string;
  }
  return skeleton;
}

/** GetRecords through `client`, the records' data left as base64 text. */
export async function getRecordsRaw(client: KinesisClient, input: GetRecordsCommandInput): Promise<RawRecordsPage> {
  // The embedded emulator's direct path has no body to read: its records come as bytes.
  if (client instanceof DirectKinesisClient) return client.getRecordsBase64(input);
  const command = new GetRecordsCommand(input);
  let page: RawRecordsPage | undefined;
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response as HttpResponseLike;
      if (response.statusCode !== 200) return result;
      const parsed = pageSchema.parse(parseGetRecordsBody(await readBody(response.body)));
      page = {
        Records: parsed.Records,
        ...(parsed.NextShardIterator ? { NextShardIterator: parsed.NextShardIterator } : {}),
        ...(parsed.MillisBehindLatest !== undefined ? { MillisBehindLatest: parsed.MillisBehindLatest } : {}),
      };
      // The SDK still parses a response: give it the page without its records.
      const rest = Buffer.from(JSON.stringify({ ...page, Records: [] }), 'utf8');
      response.body = Readable.from([rest]);
      response.headers['content-length'] = String(rest.length);
      return result;
    },
    // Inside the SDK's deserializer: this sees the raw response before it is parsed.
    { step: 'deserialize', priority: 'low', name: 'getRecordsRawBody' },
  );
  const output = await client.send(command);
  if (!page) throw new Error('GetRecords answered without a readable body');
  // What the SDK parsed (iterator, lag) is authoritative for the fields it kept.
  return {
    Records: page.Records,
    ...(output.NextShardIterator ? { NextShardIterator: output.NextShardIterator } : {}),
    ...(output.MillisBehindLatest !== undefined ? { MillisBehindLatest: output.MillisBehindLatest } : {}),
  };
}
