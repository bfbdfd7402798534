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
  for await (const chunk of body as AsyncIterable<Buffer | string>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** GetRecords through `client`, the records' data left as base64 text. */
export async function getRecordsRaw(client: KinesisClient, input: GetRecordsCommandInput): Promise<RawRecordsPage> {
  const command = new GetRecordsCommand(input);
  let page: RawRecordsPage | undefined;
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response as HttpResponseLike;
      if (response.statusCode !== 200) return result;
      const parsed = pageSchema.parse(JSON.parse((await readBody(response.body)).toString('utf8')));
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
