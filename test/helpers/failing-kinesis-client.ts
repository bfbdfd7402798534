/**
 * Fault injection on a real Kinesis client: PutRecords calls go to the real emulator, except
 * the entries (or whole calls) a rule picks, which come back failed exactly as Kinesis reports
 * them: the call succeeds, the entry carries an ErrorCode and FailedRecordCount counts it.
 */
import {
  type KinesisClient,
  PutRecordsCommand,
  type PutRecordsCommandOutput,
  type PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis';

export interface EntryInfo {
  stream: string;
  partitionKey: string;
  data: Buffer;
  /** 1-based index of the PutRecords call through this wrapper. */
  call: number;
  /** How many times an identical entry (stream, key, data) was sent before this one. */
  timesSeenBefore: number;
}

export interface FaultRules {
  /** Return an error code to fail this entry (e.g. 'ProvisionedThroughputExceededException'). */
  failEntry?: (entry: EntryInfo) => string | undefined;
  /** Return an Error to make the whole call throw before reaching the emulator. */
  failCall?: (call: { stream: string; call: number; entries: number }) => Error | undefined;
}

export interface PutRecordsCallLog {
  stream: string;
  entries: number;
  failedEntries: number;
  threw: boolean;
}

export interface FailingKinesisClient {
  client: KinesisClient;
  calls: PutRecordsCallLog[];
}

/**
 * Wraps `client.send` in place (the client is still the real one for every other command).
 * Returns the same client and a log of PutRecords calls.
 */
export function withPutRecordsFaults(client: KinesisClient, rules: FaultRules): FailingKinesisClient {
  const calls: PutRecordsCallLog[] = [];
  const seen = new Map<string, number>();
  const original = client.send.bind(client) as (command: unknown) => Promise<unknown>;
  const send = async (command: unknown): Promise<unknown> => {
    if (!(command instanceof PutRecordsCommand)) return original(command);
    const stream = command.input.StreamName ?? '';
    const entries = command.input.Records ?? [];
    const callNumber = calls.length + 1;
    const callError = rules.failCall?.({ stream, call: callNumber, entries: entries.length });
    if (callError) {
      calls.push({ stream, entries: entries.length, failedEntries: entries.length, threw: true });
      throw callError;
    }
    const verdicts = entries.map((entry) => {
      const data = Buffer.from(entry.Data ?? new Uint8Array());
      const key = `${stream}\u0000${entry.PartitionKey}\u0000${data.toString('base64')}`;
      const timesSeenBefore = seen.get(key) ?? 0;
      seen.set(key, timesSeenBefore + 1);
      return rules.failEntry?.({ stream, partitionKey: entry.PartitionKey ?? '', data, call: callNumber, timesSeenBefore });
    });
    const passing = entries.filter((_, i) => verdicts[i] === undefined);
    let passed: PutRecordsResultEntry[] = [];
    let base: Partial<PutRecordsCommandOutput> = {};
    if (passing.length > 0) {
      try {
        const response = (await original(
          new PutRecordsCommand({ ...command.input, Records: passing }),
        )) as PutRecordsCommandOutput;
        passed = response.Records ?? [];
        base = response;
      } catch (error: unknown) {
        calls.push({ stream, entries: entries.length, failedEntries: entries.length, threw: true });
        throw error;
      }
    }
    let next = 0;
    const records: PutRecordsResultEntry[] = verdicts.map((code) =>
      code === undefined ? (passed[next++] as PutRecordsResultEntry) : { ErrorCode: code, ErrorMessage: `injected ${code}` },
    );
    const failed = verdicts.filter((v) => v !== undefined).length;
    calls.push({ stream, entries: entries.length, failedEntries: failed, threw: false });
    return { ...base, $metadata: base.$metadata ?? {}, FailedRecordCount: failed, Records: records };
  };
  (client as unknown as { send: typeof send }).send = send;
  return { client, calls };
}
