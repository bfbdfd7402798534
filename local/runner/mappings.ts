/**
 * The event source mappings, read from serverless.yml: the one place they are declared. The
 * framework resolves its own variable syntax (`${param:...}`, `${sls:stage}`, `!GetAtt`) with
 * `sls print --format json` (offline, a few seconds); the resolved result is cached, keyed by
 * a hash of serverless.yml, so later starts cost nothing.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

/** Repository root (this file lives in `<root>/local`). */
export const REPO_ROOT = resolve(__dirname, '..', '..');

/** Where resolved configurations are cached between runs. */
export const CACHE_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'edge-camera-classifier');

/** Where a failed batch's metadata goes: locally a JSON Lines file and an in-memory queue. */
export interface OnFailureDestination {
  /** The deployed destination's ARN (an SQS queue or SNS topic on AWS). */
  arn: string;
  type: string;
}

/** One `stream` event of one function, with Lambda's defaults filled in. */
export interface StreamMapping {
  /** Function key in serverless.yml, e.g. `classify`. */
  functionKey: string;
  /** Deployed function name, e.g. `edge-camera-classifier-dev-classify`. */
  functionName: string;
  /** `functions/classify.handler`: module path (from the repo root) and export name. */
  handler: string;
  /** Source stream base name, without the deployment prefix (e.g. `camera-images`). */
  stream: string;
  batchSize: number;
  /** MaximumBatchingWindowInSeconds. */
  batchWindowSeconds: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST' | 'AT_TIMESTAMP';
  startingPositionTimestamp: number | undefined;
  parallelizationFactor: number;
  /** FunctionResponseTypes includes ReportBatchItemFailures. */
  reportBatchItemFailures: boolean;
  bisectBatchOnFunctionError: boolean;
  /** -1 = retry until the record expires. */
  maximumRetryAttempts: number;
  /** -1 = no age limit. */
  maximumRecordAgeInSeconds: number;
  /** 0 = no tumbling window. */
  tumblingWindowInSeconds: number;
  onFailure: OnFailureDestination | undefined;
  timeoutSeconds: number;
  memorySize: number;
}

export interface StreamDefinition {
  /** Base name (no prefix). */
  name: string;
  shards: number;
}

export interface ServiceDefinition {
  service: string;
  stage: string;
  region: string;
  /** The deployed prefix, stripped from every name here. */
  streamPrefix: string;
  mappings: StreamMapping[];
  /** Kinesis streams declared in resources, with their shard counts. */
  streams: StreamDefinition[];
  /** provider.environment as resolved (functions' own environments merged per mapping by callers). */
  environment: Record<string, string>;
}

const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.string()]) });
const arnRef = z.union([z.string(), getAtt]);
const scalar = z.union([z.string(), z.number(), z.boolean()]);

const streamEventSchema = z.object({
  type: z.string().optional(),
  arn: arnRef,
  batchSize: z.coerce.number().int().min(1).max(10_000).default(100),
  batchWindow: z.coerce.number().min(0).max(300).default(0),
  startingPosition: z.enum(['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP']).default('TRIM_HORIZON'),
  startingPositionTimestamp: z.coerce.number().optional(),
  parallelizationFactor: z.coerce.number().int().min(1).max(10).default(1),
  functionResponseType: z.string().optional(),
  bisectBatchOnFunctionError: z.boolean().default(false),
  maximumRetryAttempts: z.coerce.number().int().min(-1).max(10_000).default(-1),
  maximumRecordAgeInSeconds: z.coerce.number().int().min(-1).max(604_800).default(-1),
  tumblingWindowInSeconds: z.coerce.number().int().min(0).max(900).default(0),
  enabled: z.boolean().default(true),
  destinations: z.object({ onFailure: z.union([arnRef, z.object({ arn: arnRef, type: z.string().optional() })]) }).optional(),
});

const printedSchema = z.object({
  service: z.union([z.string(), z.object({ name: z.string() })]),
  provider: z.object({
    stage: z.string().default('dev'),
    region: z.string().default('us-east-1'),
    timeout: z.number().default(6),
    memorySize: z.number().default(1024),
    environment: z.record(z.string(), scalar).default({}),
  }),
  functions: z.record(
    z.string(),
    z.object({
      handler: z.string(),
      name: z.string().optional(),
      timeout: z.number().optional(),
      memorySize: z.number().optional(),
      events: z.array(z.record(z.string(), z.unknown())).default([]),
    }),
  ),
  resources: z
    .object({
      Resources: z
        .record(z.string(), z.object({ Type: z.string(), Properties: z.record(z.string(), z.unknown()).optional() }))
        .default({}),
    })
    .default({ Resources: {} }),
});
type Printed = z.infer<typeof printedSchema>;

/** serverless.yml could not be resolved or declares something the runner cannot run. */
export class MappingConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MappingConfigError';
  }
}

/**
 * Turns the output of `sls print --format json` into the runner's mappings. Names are
 * returned without the deployment prefix (`STREAM_PREFIX` in provider.environment, else
 * `<service>-<stage>-`). Throws {@link MappingConfigError} on anything it cannot resolve.
 */
export function parseServiceDefinition(printed: unknown): ServiceDefinition {
  const parsed = printedSchema.safeParse(printed);
  if (!parsed.success) throw new MappingConfigError(`serverless.yml resolved to an unexpected shape: ${parsed.error.message}`);
  const config: Printed = parsed.data;
  const service = typeof config.service === 'string' ? config.service : config.service.name;
  const { stage, region } = config.provider;
  const envPrefix = config.provider.environment.STREAM_PREFIX;
  const streamPrefix = typeof envPrefix === 'string' ? envPrefix : `${service}-${stage}-`;
  const resources = config.resources.Resources;
  const strip = (name: string): string => (name.startsWith(streamPrefix) ? name.slice(streamPrefix.length) : name);

  const resolveName = (ref: z.infer<typeof arnRef>, what: string): string => {
    if (typeof ref === 'string') {
      // A literal ARN: the name is what follows the last '/' (streams) or ':' (queues).
      const name = ref.includes('/') ? ref.slice(ref.lastIndexOf('/') + 1) : ref.slice(ref.lastIndexOf(':') + 1);
      return name;
    }
    const [logicalId] = ref['Fn::GetAtt'];
    const resource = resources[logicalId];
    const props = resource?.Properties ?? {};
    const name = props.Name ?? props.QueueName ?? props.TopicName;
    if (typeof name !== 'string') throw new MappingConfigError(`${what}: resource ${logicalId} has no Name to resolve`);
    return name;
  };

  const mappings: StreamMapping[] = [];
  for (const [functionKey, fn] of Object.entries(config.functions)) {
    for (const event of fn.events) {
      if (!('stream' in event)) continue;
      const raw = event.stream;
      const parsedEvent = streamEventSchema.safeParse(typeof raw === 'string' ? { arn: raw } : raw);
      if (!parsedEvent.success) {
        throw new MappingConfigError(`function ${functionKey}: stream event: ${parsedEvent.error.message}`);
      }
      const e = parsedEvent.data;
      if (e.type !== undefined && e.type !== 'kinesis') continue;
      if (!e.enabled) continue;
      if (e.tumblingWindowInSeconds > 0 && e.parallelizationFactor !== 1) {
        throw new MappingConfigError(`function ${functionKey}: tumbling windows require parallelizationFactor 1`);
      }
      let onFailure: OnFailureDestination | undefined;
      const dest = e.destinations?.onFailure;
      if (dest !== undefined) {
        const ref = typeof dest === 'object' && 'arn' in dest ? dest.arn : dest;
        const type = typeof dest === 'object' && 'arn' in dest ? (dest.type ?? 'sqs') : 'sqs';
        const name = resolveName(ref, `function ${functionKey} onFailure`);
        const arn = typeof ref === 'string' ? ref : `arn:aws:${type}:${region}:000000000000:${name}`;
        onFailure = { arn, type };
      }
      mappings.push({
        functionKey,
        functionName: fn.name ?? `${service}-${stage}-${functionKey}`,
        handler: fn.handler,
        stream: strip(resolveName(e.arn, `function ${functionKey} stream`)),
        batchSize: e.batchSize,
        batchWindowSeconds: e.batchWindow,
        startingPosition: e.startingPosition,
        startingPositionTimestamp: e.startingPositionTimestamp,
        parallelizationFactor: e.parallelizationFactor,
        reportBatchItemFailures: e.functionResponseType === 'ReportBatchItemFailures',
        bisectBatchOnFunctionError: e.bisectBatchOnFunctionError,
        maximumRetryAttempts: e.maximumRetryAttempts,
        maximumRecordAgeInSeconds: e.maximumRecordAgeInSeconds,
        tumblingWindowInSeconds: e.tumblingWindowInSeconds,
        onFailure,
        timeoutSeconds: fn.timeout ?? config.provider.timeout,
        memorySize: fn.memorySize ?? config.provider.memorySize,
      });
    }
  }

  const streams: StreamDefinition[] = [];
  for (const resource of Object.values(resources)) {
    if (resource.Type !== 'AWS::Kinesis::Stream') continue;
    const name = resource.Properties?.Name;
    const shards = Number(resource.Properties?.ShardCount ?? 1);
    if (typeof name === 'string')
      streams.push({ name: strip(name), shards: Number.isInteger(shards) && shards > 0 ? shards : 1 });
  }

  const environment: Record<string, string> = {};
  for (const [key, value] of Object.entries(config.provider.environment)) environment[key] = String(value);
  return { service, stage, region, streamPrefix, mappings, streams, environment };
}

const cachedSchema = z.object({ hash: z.string(), printed: z.unknown() });

/**
 * Resolves serverless.yml with the framework (`sls print --format json`, offline) and parses
 * its mappings. The printed JSON is cached under {@link CACHE_DIR} keyed by the file's
 * SHA-256 (and the stage), so an unchanged file costs a read. Throws {@link MappingConfigError} when the
 * framework fails or the result cannot be parsed.
 */
export async function loadServiceDefinition(
  options: { serverlessYml?: string; cacheDir?: string; useCache?: boolean; stage?: string; onResolve?: () => void } = {},
): Promise<ServiceDefinition> {
  const ymlPath = options.serverlessYml ?? join(REPO_ROOT, 'serverless.yml');
  const cacheDir = options.cacheDir ?? CACHE_DIR;
  const source = readFileSync(ymlPath);
  const stage = options.stage ?? 'dev';
  const hash = createHash('sha256').update(source).update(`\0stage=${stage}`).digest('hex');
  const cacheFile = join(cacheDir, `sls-print-${stage.replace(/[^A-Za-z0-9-]/g, '_')}-${hash.slice(0, 16)}.json`);
  if (options.useCache !== false && existsSync(cacheFile)) {
    const cached = cachedSchema.safeParse(JSON.parse(readFileSync(cacheFile, 'utf8')));
    if (cached.success && cached.data.hash === hash) return parseServiceDefinition(cached.data.printed);
  }
  options.onResolve?.();
  const printed = await printServerless(resolve(ymlPath, '..'), stage);
  const definition = parseServiceDefinition(printed);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ hash, printed }));
  renameSync(tmp, cacheFile);
  return definition;
}

async function printServerless(serviceDir: string, stage: string): Promise<unknown> {
  const sls = join(REPO_ROOT, 'node_modules', '.bin', 'sls');
  try {
    const { stdout } = await promisify(execFile)(sls, ['print', '--format', 'json', '--stage', stage], {
      cwd: serviceDir,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', SLS_DEPRECATION_DISABLE: '*' },
    });
    const start = stdout.indexOf('{');
    if (start < 0) throw new MappingConfigError('sls print wrote no JSON');
    return JSON.parse(stdout.slice(start)) as unknown;
  } catch (error: unknown) {
    if (error instanceof MappingConfigError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new MappingConfigError(`could not resolve serverless.yml with "sls print": ${message}`);
  }
}

/** Local changes to the declared mappings (CLI flags and environment). */
export interface MappingOverrides {
  /** Replaces tumblingWindowInSeconds of every windowed mapping. */
  windowSeconds?: number;
  /** Replaces parallelizationFactor of every mapping without a tumbling window. */
  parallelizationFactor?: number;
  /** Replaces the shard count of the stream named here (base name). */
  shards?: Record<string, number>;
}

/** Applies {@link MappingOverrides}; returns a new definition and leaves the input alone. */
export function applyOverrides(definition: ServiceDefinition, overrides: MappingOverrides): ServiceDefinition {
  const mappings = definition.mappings.map((m) => {
    const next = { ...m };
    if (overrides.windowSeconds !== undefined && m.tumblingWindowInSeconds > 0) {
      next.tumblingWindowInSeconds = overrides.windowSeconds;
    }
    if (overrides.parallelizationFactor !== undefined && m.tumblingWindowInSeconds === 0) {
      next.parallelizationFactor = overrides.parallelizationFactor;
    }
    return next;
  });
  const streams = definition.streams.map((s) => ({ ...s, shards: overrides.shards?.[s.name] ?? s.shards }));
  return { ...definition, mappings, streams };
}
