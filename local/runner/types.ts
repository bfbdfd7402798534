/** The runner's contracts (handlers, mappings, options, reports) and its internal records. */
import type { Log } from '../../functions/lib/logger';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { Context, KinesisStreamRecord } from 'aws-lambda';
import type { StreamMapping } from './mappings';

/** What an in-process handler looks like: any Lambda handler for Kinesis events. */
export type StreamHandler = (event: never, context: Context, callback: never) => unknown;

/**
 * Marks a handler that takes each event record's `kinesis.data` as bytes (a Uint8Array) and
 * makes it the base64 text itself, where the function runs (the worker-thread pool does): the
 * runner then hands over the bytes read from the direct path without making a string of them.
 */
export const TAKES_RECORD_BYTES: unique symbol = Symbol('takes record data as bytes');

/** Whether `handler` is marked with {@link TAKES_RECORD_BYTES}. */
export function takesRecordBytes(handler: StreamHandler): boolean {
  return (handler as unknown as Record<symbol, unknown>)[TAKES_RECORD_BYTES] === true;
}

/** The mapping settings the runner needs (a {@link StreamMapping} carries them all). */
export type RunnerMapping = Pick<
  StreamMapping,
  | 'functionName'
  | 'stream'
  | 'batchSize'
  | 'batchWindowSeconds'
  | 'startingPosition'
  | 'parallelizationFactor'
  | 'reportBatchItemFailures'
  | 'bisectBatchOnFunctionError'
  | 'maximumRetryAttempts'
  | 'maximumRecordAgeInSeconds'
  | 'tumblingWindowInSeconds'
  | 'onFailure'
  | 'timeoutSeconds'
> &
  Partial<Pick<StreamMapping, 'startingPositionTimestamp' | 'memorySize'>>;

/** The on-failure record, as Lambda sends it to an SQS/SNS destination for a Kinesis source. */
export interface DeadLetterRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: 'RetryAttemptsExhausted' | 'RecordAgeExceeded';
    approximateInvokeCount: number;
  };
  responseContext: { statusCode: number; executedVersion: string; functionError?: string };
  version: '1.0';
  timestamp: string;
  KinesisBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
    batchSize: number;
    streamArn: string;
  };
  /** Local additions: where it would go on AWS, why the last attempt failed, the window. */
  destinationArn?: string;
  errorMessage?: string;
  window?: { start: string; end: string };
  /** Local addition: the records themselves, so nothing is lost when the emulator is in memory. */
  records: Array<{ sequenceNumber: string; partitionKey: string; data: string }>;
}

/** What the runner logs (the project's one logger shape, functions/lib/logger.ts). */
export type RunnerLogger = Pick<Log, 'debug' | 'warn'>;

/** Invocation outcome, for progress displays and tests. */
export interface InvocationReport {
  functionName: string;
  shardId: string;
  records: number;
  outcome: 'success' | 'partial' | 'error';
  /** Wall time of the handler call. */
  durationMs: number;
  error?: string;
  window?: { start: string; end: string; final: boolean; early: boolean };
}

export interface RunnerOptions {
  client: KinesisClient;
  /** Prepended to each mapping's base stream name ('' locally). */
  streamPrefix?: string;
  region?: string;
  /** Persist checkpoints (and window state) here; unset keeps them in memory. */
  checkpointFile?: string;
  /** Append on-failure records here as JSON Lines; they are also kept in `deadLetters`. */
  deadLetterFile?: string;
  /** First retry delay; doubles per attempt up to 2 s. Default 100 ms. */
  retryBaseDelayMs?: number;
  /** Longest sleep between polls of an idle shard. Default 200 ms. */
  maxIdlePollMs?: number;
  /** Records buffered per shard ahead of the handler. Default max(10,000, 2 x batch size). */
  maxBufferedRecords?: number;
  /**
   * Bytes of record data buffered per shard ahead of the handler (fetched, not yet finished),
   * so a backlog of large frames is read a few megabytes at a time. Default 64 MiB.
   */
  maxBufferedBytes?: number;
  logger?: RunnerLogger;
  onInvocation?: (report: InvocationReport) => void;
  /**
   * Where a consumer with no checkpoint starts: the mapping's `startingPosition` (default);
   * `run-start`, this run's start (`LATEST`, resolved before {@link EventSourceMappingRunner.start}
   * resolves, so nothing put after it is missed, and saved with the checkpoints as an
   * `AT_TIMESTAMP` so a restart before the first finished record resumes there); or
   * `trim-horizon`, the oldest record.
   */
  firstPosition?: 'mapping' | 'run-start' | 'trim-horizon';
}

export interface Entry {
  seq: string;
  arrivalMs: number;
  fetchedAt: number;
  partitionKey: string;
  /** The record's data: base64 text (read over HTTP) or bytes (read over the direct path). */
  data: string | Buffer;
  record: KinesisStreamRecord;
  bytes: number;
  done: boolean;
  /** Start of the tumbling window (ms) this record belongs to; 0 without windows. */
  windowStart: number;
}

export type WindowState = Record<string, unknown>;

export interface OpenWindow {
  start: number;
  end: number;
  state: WindowState;
}

/** Where one consumer (a mapping on one shard) stands. */
export interface ConsumerPosition {
  functionName: string;
  stream: string;
  shardId: string;
  /** The last record finished (the checkpoint); undefined until the first one is. */
  sequenceNumber: string | undefined;
}

/** Work item of a lane: a contiguous slice of records and how often it has been retried. */
export interface Attempt {
  entries: Entry[];
  retries: number;
}
