/**
 * The deployable stack, proven offline: runs `npm run package` with no AWS credentials (and
 * non-default parameters, so their wiring shows) and checks the CloudFormation it generates
 * and the artifacts it zips: every stream mapping's settings, encryption, one least-privilege
 * role per function, the parameters in the environment, and each function plus its layers
 * under Lambda's 250 MB unzipped / 5 layer limits. Finally each packaged function is run from
 * its own zip and layers alone, outside the repository, on its sample event.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { STREAMS } from '../../functions/lib/contracts';
import { registryState } from '../../functions/lib/model-registry-file';
import { extractZip, listZip, unzippedSize } from '../helpers/zip';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

/** Lambda's limits for a function's code plus its layers. */
const MAX_UNZIPPED_BYTES = 262_144_000; // 250 MB as AWS counts it
const MAX_LAYERS = 5;

const STAGE = 'ci';
const PREFIX = `edge-camera-classifier-${STAGE}-`;
/** Every value differs from its default, so a parameter that is not wired cannot pass. */
const PARAMS = {
  confidence: '0.85',
  testCameraPrefix: 'QA',
  sampleCertainRate: '0.05',
  sampleCapPerMinute: '30',
  cameraRules: '{"Dock-*":{"sampleRate":0.2,"confidence":0.9}}',
  parallelism: '4',
  metricsWindowSeconds: '30',
  cameraShards: '2',
  outputShards: '3',
  metricsShards: '2',
  retentionHours: '48',
  classifyBatchSize: '50',
  classifyBatchingWindowSeconds: '2',
  metricsBatchSize: '500',
  metricsBatchingWindowSeconds: '3',
  maxRetryAttempts: '5',
  maxRecordAgeSeconds: '7200',
  logLevel: 'DEBUG',
  logRetentionDays: '7',
  classifyMemorySize: '1536',
  classifyTimeoutSeconds: '90',
} as const;

const FUNCTIONS = {
  classify: { logicalId: 'ClassifyLambdaFunction', event: 'classify.json' },
  'aggregate-metrics': { logicalId: 'AggregateDashmetricsLambdaFunction', event: 'aggregate-metrics-first.json' },
  'camera-source': { logicalId: 'CameraDashsourceLambdaFunction', event: 'camera-source.json' },
} as const;
type FunctionKey = keyof typeof FUNCTIONS;

const STREAM_RESOURCES = {
  CameraImagesStream: { name: STREAMS.cameraImages, shards: PARAMS.cameraShards },
  PredictionsStream: { name: STREAMS.predictions, shards: PARAMS.outputShards },
  UncertainImagesStream: { name: STREAMS.uncertainImages, shards: PARAMS.outputShards },
  RejectedImagesStream: { name: STREAMS.rejectedImages, shards: PARAMS.outputShards },
  MetricsStream: { name: STREAMS.metrics, shards: PARAMS.metricsShards },
  ShadowScoresStream: { name: STREAMS.shadowScores, shards: PARAMS.outputShards },
} as const;

const CONSUMER_ACTIONS = [
  'kinesis:DescribeStream',
  'kinesis:DescribeStreamSummary',
  'kinesis:GetRecords',
  'kinesis:GetShardIterator',
  'kinesis:ListShards',
];

/**
 * Every grant each function's role may hold, as "action on resource" (a logical id, or * ).
 * The role must hold exactly these: one more is a privilege nobody reviewed, one fewer
 * breaks the function on AWS.
 */
const EXPECTED_GRANTS: Record<FunctionKey, string[]> = {
  classify: [
    ...CONSUMER_ACTIONS.map((a) => `${a} on CameraImagesStream`),
    'kinesis:ListStreams on *',
    'kinesis:PutRecords on PredictionsStream',
    'kinesis:PutRecords on UncertainImagesStream',
    'kinesis:PutRecords on RejectedImagesStream',
    'kinesis:PutRecords on ShadowScoresStream',
    'sqs:SendMessage on ClassifyDeadLetterQueue',
    'logs:CreateLogStream on ClassifyLogGroup',
    'logs:PutLogEvents on ClassifyLogGroup',
  ],
  'aggregate-metrics': [
    ...CONSUMER_ACTIONS.map((a) => `${a} on PredictionsStream`),
    ...CONSUMER_ACTIONS.map((a) => `${a} on RejectedImagesStream`),
    ...CONSUMER_ACTIONS.map((a) => `${a} on ShadowScoresStream`),
    'kinesis:ListStreams on *',
    'kinesis:PutRecords on MetricsStream',
    'sqs:SendMessage on MetricsDeadLetterQueue',
    'logs:CreateLogStream on AggregateDashmetricsLogGroup',
    'logs:PutLogEvents on AggregateDashmetricsLogGroup',
  ],
  'camera-source': [
    'kinesis:PutRecords on CameraImagesStream',
    'logs:CreateLogStream on CameraDashsourceLogGroup',
    'logs:PutLogEvents on CameraDashsourceLogGroup',
  ],
};

const getAtt = z.object({ 'Fn::GetAtt': z.tuple([z.string(), z.literal('Arn')]) });
const ref = z.object({ Ref: z.string() });
const resourceSchema = z.object({
  Type: z.string(),
  Properties: z.record(z.string(), z.unknown()).default({}),
});
const templateSchema = z.object({ Resources: z.record(z.string(), resourceSchema) });
type Resource = z.infer<typeof resourceSchema>;

const statementSchema = z.object({
  Effect: z.literal('Allow'),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.union([z.string(), getAtt, z.array(z.union([z.string(), getAtt]))]),
});
const roleSchema = z.object({
  AssumeRolePolicyDocument: z.object({
    Statement: z.array(z.object({ Principal: z.object({ Service: z.string() }), Action: z.string() })),
  }),
  Policies: z.array(z.object({ PolicyDocument: z.object({ Statement: z.array(statementSchema) }) })),
});
const functionSchema = z.object({
  FunctionName: z.string(),
  Runtime: z.string(),
  Architectures: z.array(z.string()),
  MemorySize: z.coerce.number(),
  Timeout: z.coerce.number(),
  Role: getAtt,
  Code: z.object({ S3Key: z.string() }),
  Layers: z.array(ref).default([]),
  Environment: z.object({ Variables: z.record(z.string(), z.string()) }),
});
const mappingSchema = z.object({
  FunctionName: getAtt,
  EventSourceArn: getAtt,
  BatchSize: z.coerce.number(),
  MaximumBatchingWindowInSeconds: z.coerce.number(),
  ParallelizationFactor: z.coerce.number(),
  StartingPosition: z.string(),
  FunctionResponseTypes: z.array(z.string()),
  BisectBatchOnFunctionError: z.boolean(),
  MaximumRetryAttempts: z.coerce.number(),
  MaximumRecordAgeInSeconds: z.coerce.number(),
  TumblingWindowInSeconds: z.coerce.number().optional(),
  DestinationConfig: z.object({ OnFailure: z.object({ Destination: getAtt }) }),
});
const layerSchema = z.object({
  Content: z.object({ S3Key: z.string() }),
  CompatibleArchitectures: z.array(z.string()).optional(),
});

let packageDir: string;
let resources: Record<string, Resource>;
let packageSeconds: number;

function ofType(type: string): Array<[string, Resource]> {
  return Object.entries(resources).filter(([, resource]) => resource.Type === type);
}

function resource(logicalId: string): Resource {
  const found = resources[logicalId];
  if (!found) throw new Error(`no resource ${logicalId} in the template`);
  return found;
}

function fn(key: FunctionKey): z.infer<typeof functionSchema> {
  return functionSchema.parse(resource(FUNCTIONS[key].logicalId).Properties);
}

function mappingsOf(key: FunctionKey): z.infer<typeof mappingSchema>[] {
  return ofType('AWS::Lambda::EventSourceMapping')
    .map(([, r]) => mappingSchema.parse(r.Properties))
    .filter((m) => m.FunctionName['Fn::GetAtt'][0] === FUNCTIONS[key].logicalId);
}

/** The stream each consumer mainly reads; aggregate-metrics also reads RejectedImagesStream and ShadowScoresStream. */
const MAIN_SOURCE: Partial<Record<FunctionKey, string>> = {
  classify: 'CameraImagesStream',
  'aggregate-metrics': 'PredictionsStream',
};

function mappingOf(key: FunctionKey, source = MAIN_SOURCE[key]): z.infer<typeof mappingSchema> | undefined {
  const found = mappingsOf(key).filter((m) => source === undefined || m.EventSourceArn['Fn::GetAtt'][0] === source);
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0];
}

function grantsOf(roleLogicalId: string): string[] {
  const role = roleSchema.parse(resource(roleLogicalId).Properties);
  const grants: string[] = [];
  for (const policy of role.Policies) {
    for (const statement of policy.PolicyDocument.Statement) {
      const actions = ([] as string[]).concat(statement.Action);
      const targets = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
      for (const action of actions) {
        for (const target of targets) {
          grants.push(`${action} on ${typeof target === 'string' ? target : target['Fn::GetAtt'][0]}`);
        }
      }
    }
  }
  return grants.sort();
}

/** Layers of a function, as their zip files in the package folder. */
function layerZips(key: FunctionKey): string[] {
  return fn(key).Layers.map((layer) => {
    const props = layerSchema.parse(resource(layer.Ref).Properties);
    return join(packageDir, basename(props.Content.S3Key));
  });
}

function artifactZip(key: FunctionKey): string {
  return join(packageDir, basename(fn(key).Code.S3Key));
}

/**
 * Packages the bundle requires at run time: the ones esbuild left external although they are
 * installed. (The AWS SDK also tries `@aws-sdk/signature-v4-crt` inside a try/catch; it is not
 * installed, so it is optional, not an external.)
 */
function externalsOf(bundle: string): string[] {
  const found = new Set<string>();
  for (const match of bundle.matchAll(/require(?:\.resolve)?\(\s*["']([^"'.][^"']*)["']\s*\)/g)) {
    const spec = match[1] ?? '';
    const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec);
    if (spec.startsWith('node:') || builtinModules.includes(pkg)) continue;
    if (!existsSync(join(ROOT, 'node_modules', pkg, 'package.json'))) continue;
    found.add(spec);
  }
  return [...found].sort();
}

function packageName(spec: string): string {
  return spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec);
}

beforeAll(async () => {
  packageDir = mkdtempSync(join(tmpdir(), 'sls-package-'));
  // No credentials of any kind can be found: no variables, no files, no instance metadata.
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_')) delete env[name];
  env.AWS_SHARED_CREDENTIALS_FILE = join(packageDir, 'no-credentials');
  env.AWS_CONFIG_FILE = join(packageDir, 'no-config');
  env.AWS_EC2_METADATA_DISABLED = 'true';
  // Its own bundle folder: invoke.test.ts may be bundling in parallel.
  env.ESBUILD_WORK_FOLDER = join('node_modules', '.cache', 'sls-esbuild', `package-${process.pid}`);
  const params = Object.entries(PARAMS).map(([name, value]) => `--param=${name}=${value}`);
  const started = Date.now();
  await run('npm', ['run', 'package', '--', '--stage', STAGE, '--package', packageDir, ...params], {
    cwd: ROOT,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  packageSeconds = (Date.now() - started) / 1000;
  const template = templateSchema.parse(
    JSON.parse(readFileSync(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8')),
  );
  resources = template.Resources;
}, 600_000);

afterAll(() => {
  if (packageDir) rmSync(packageDir, { recursive: true, force: true });
});

describe('npm run package (offline, no credentials)', () => {
  it('writes the three functions', () => {
    // Assess
    console.log(`npm run package took ${packageSeconds.toFixed(1)} s`);
    expect(
      ofType('AWS::Lambda::Function')
        .map(([id]) => id)
        .sort(),
    ).toEqual(
      Object.values(FUNCTIONS)
        .map((f) => f.logicalId)
        .sort(),
    );
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      expect(fn(key).FunctionName).toBe(`${PREFIX}${key}`);
    }
  });
});

describe('stream mappings', () => {
  const consumers: FunctionKey[] = ['classify', 'aggregate-metrics'];

  it.each(consumers)('%s: partial batch responses, bisect, bounded retries and age, a dead-letter queue', (key) => {
    const mappings = mappingsOf(key);
    expect(mappings.length).toBeGreaterThan(0);
    for (const mapping of mappings) expectSafeMapping(mapping);
  });

  function expectSafeMapping(mapping: z.infer<typeof mappingSchema>): void {
    expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(mapping.BisectBatchOnFunctionError).toBe(true);
    expect(mapping.MaximumRetryAttempts).toBe(Number(PARAMS.maxRetryAttempts));
    expect(mapping.MaximumRecordAgeInSeconds).toBe(Number(PARAMS.maxRecordAgeSeconds));
    expect(mapping.StartingPosition).toBe('TRIM_HORIZON');
    const destination = resource(mapping.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0]);
    expect(destination.Type).toBe('AWS::SQS::Queue');
    expect(resource(mapping.EventSourceArn['Fn::GetAtt'][0]).Type).toBe('AWS::Kinesis::Stream');
  }

  it('classify reads camera-images with the parallelism, batch size and window parameters', () => {
    const mapping = mappingOf('classify');
    expect(mapping?.EventSourceArn['Fn::GetAtt'][0]).toBe('CameraImagesStream');
    expect(mapping?.ParallelizationFactor).toBe(Number(PARAMS.parallelism));
    expect(mapping?.BatchSize).toBe(Number(PARAMS.classifyBatchSize));
    expect(mapping?.MaximumBatchingWindowInSeconds).toBe(Number(PARAMS.classifyBatchingWindowSeconds));
    expect(mapping?.TumblingWindowInSeconds).toBeUndefined();
  });

  it.each(['PredictionsStream', 'RejectedImagesStream'])(
    'aggregate-metrics reads %s in tumbling windows with parallelization factor 1',
    (stream) => {
      const mapping = mappingOf('aggregate-metrics', stream);
      expect(mapping?.EventSourceArn['Fn::GetAtt'][0]).toBe(stream);
      expect(mapping?.TumblingWindowInSeconds).toBe(Number(PARAMS.metricsWindowSeconds));
      expect(mapping?.ParallelizationFactor).toBe(1);
      expect(mapping?.BatchSize).toBe(Number(PARAMS.metricsBatchSize));
      expect(mapping?.MaximumBatchingWindowInSeconds).toBe(Number(PARAMS.metricsBatchingWindowSeconds));
    },
  );

  it('aggregate-metrics also reads shadow-scores, in the same windows, with the same limits', () => {
    const shadow = mappingOf('aggregate-metrics', 'ShadowScoresStream');
    const main = mappingOf('aggregate-metrics');
    expect(shadow).toBeDefined();
    expect(shadow?.TumblingWindowInSeconds).toBe(Number(PARAMS.metricsWindowSeconds));
    expect(shadow?.ParallelizationFactor).toBe(1);
    expect({ ...shadow, EventSourceArn: undefined }).toEqual({ ...main, EventSourceArn: undefined });
  });

  it('camera-source has no trigger (it is invoked on demand)', () => {
    expect(mappingOf('camera-source')).toBeUndefined();
  });
});

describe('streams and queues', () => {
  it('declares the six streams, stage-prefixed, encrypted, with the shard and retention parameters', () => {
    expect(
      ofType('AWS::Kinesis::Stream')
        .map(([id]) => id)
        .sort(),
    ).toEqual(Object.keys(STREAM_RESOURCES).sort());
    for (const [id, expected] of Object.entries(STREAM_RESOURCES)) {
      const props = resource(id).Properties;
      expect(props.Name).toBe(`${PREFIX}${expected.name}`);
      expect(Number(props.ShardCount)).toBe(Number(expected.shards));
      expect(Number(props.RetentionPeriodHours)).toBe(Number(PARAMS.retentionHours));
      expect(props.StreamEncryption).toEqual({ EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' });
    }
  });

  it('encrypts every queue', () => {
    const queues = ofType('AWS::SQS::Queue');
    expect(queues.length).toBe(2);
    for (const [, queue] of queues) {
      const encrypted = queue.Properties.SqsManagedSseEnabled === true || typeof queue.Properties.KmsMasterKeyId === 'string';
      expect(encrypted).toBe(true);
    }
  });
});

describe('IAM', () => {
  it('gives each function its own role and creates no shared one', () => {
    const roles = (Object.keys(FUNCTIONS) as FunctionKey[]).map((key) => fn(key).Role['Fn::GetAtt'][0]);
    expect(new Set(roles).size).toBe(roles.length);
    expect(
      ofType('AWS::IAM::Role')
        .map(([id]) => id)
        .sort(),
    ).toEqual([...roles].sort());
    expect(ofType('AWS::IAM::Policy')).toEqual([]);
    expect(ofType('AWS::IAM::ManagedPolicy')).toEqual([]);
    for (const role of roles) {
      expect(resource(role).Properties.ManagedPolicyArns).toBeUndefined();
      const trust = roleSchema.parse(resource(role).Properties).AssumeRolePolicyDocument.Statement;
      expect(trust).toEqual([
        expect.objectContaining({ Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }),
      ]);
    }
  });

  it.each(Object.keys(FUNCTIONS) as FunctionKey[])('%s: exactly the grants it needs, no wildcard actions', (key) => {
    const grants = grantsOf(fn(key).Role['Fn::GetAtt'][0]);
    expect(grants).toEqual([...EXPECTED_GRANTS[key]].sort());
    for (const grant of grants) {
      expect(grant.split(' on ')[0]).not.toContain('*');
      // kinesis:ListStreams has no resource-level permission: the only "*" AWS requires.
      if (grant.endsWith(' on *')) expect(grant).toBe('kinesis:ListStreams on *');
    }
  });

  it('grants consumers their trigger stream and their own dead-letter queue', () => {
    for (const key of ['classify', 'aggregate-metrics'] as const) {
      const grants = grantsOf(fn(key).Role['Fn::GetAtt'][0]);
      for (const mapping of mappingsOf(key)) {
        const stream = mapping.EventSourceArn['Fn::GetAtt'][0];
        const queue = mapping.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0];
        for (const action of CONSUMER_ACTIONS) expect(grants).toContain(`${action} on ${stream}`);
        expect(grants).toContain(`sqs:SendMessage on ${queue}`);
      }
    }
  });
});

describe('parameters reach the functions', () => {
  it.each(Object.keys(FUNCTIONS) as FunctionKey[])('%s environment', (key) => {
    const vars = fn(key).Environment.Variables;
    expect(vars).toMatchObject({
      STREAM_PREFIX: PREFIX,
      CONFIDENCE_THRESHOLD: PARAMS.confidence,
      TEST_CAMERA_PREFIX: PARAMS.testCameraPrefix,
      SAMPLE_CERTAIN_RATE: PARAMS.sampleCertainRate,
      SAMPLE_CAP_PER_MINUTE: PARAMS.sampleCapPerMinute,
      CAMERA_RULES: PARAMS.cameraRules,
      PARALLELISM: PARAMS.parallelism,
      METRICS_WINDOW_SECONDS: PARAMS.metricsWindowSeconds,
      LOG_LEVEL: PARAMS.logLevel,
    });
    expect(vars.NODE_OPTIONS).toContain('--enable-source-maps');
    // The prefix the functions write with is the prefix the streams were created with.
    const names = ofType('AWS::Kinesis::Stream').map(([, s]) => String(s.Properties.Name));
    for (const base of Object.values(STREAMS)) expect(names).toContain(`${vars.STREAM_PREFIX}${base}`);
  });

  it('classify gets its memory and timeout parameters; log groups their retention', () => {
    expect(fn('classify').MemorySize).toBe(Number(PARAMS.classifyMemorySize));
    expect(fn('classify').Timeout).toBe(Number(PARAMS.classifyTimeoutSeconds));
    for (const [, group] of ofType('AWS::Logs::LogGroup')) {
      expect(Number(group.Properties.RetentionInDays)).toBe(Number(PARAMS.logRetentionDays));
    }
  });
});

describe('artifacts and layers', () => {
  it('keeps every function plus its layers under 250 MB unzipped and 5 layers', () => {
    const rows: string[] = [];
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      const zips = [artifactZip(key), ...layerZips(key)];
      const sizes = zips.map((zip) => unzippedSize(zip));
      const total = sizes.reduce((a, b) => a + b, 0);
      rows.push(
        `${key.padEnd(18)} ${(total / 1e6).toFixed(1).padStart(6)} MB unzipped = ` +
          zips.map((zip, i) => `${basename(zip)} ${((sizes[i] ?? 0) / 1e6).toFixed(1)}`).join(' + '),
      );
      expect(fn(key).Layers.length).toBeLessThanOrEqual(MAX_LAYERS);
      expect(total).toBeLessThan(MAX_UNZIPPED_BYTES);
    }
    console.log(`function + layers (limit ${MAX_UNZIPPED_BYTES / 1e6} MB):\n${rows.join('\n')}`);
  });

  it('names the model version the model layer ships in its description (a promote publishes a new layer version)', () => {
    const { current } = registryState(join(ROOT, 'models'));
    const layer = resource('ModelLambdaLayer');
    expect(layer.Type).toBe('AWS::Lambda::LayerVersion');
    expect(String(layer.Properties.Description)).toMatch(new RegExp(`^digit model ${String(current).replace(/\./g, '\\.')} `));
  });

  it('ships only the target architecture of onnxruntime, with source maps beside the bundles', () => {
    const arch = fn('classify').Architectures[0] === 'arm64' ? 'arm64' : 'x64';
    const ortZip = layerZips('classify').find((zip) => listZip(zip).some((e) => e.name.includes('onnxruntime-node/')));
    expect(ortZip).toBeDefined();
    const binaries = listZip(ortZip ?? '').filter((e) => e.name.endsWith('.node') || /\.(so|dll|dylib)(\.|$)/.test(e.name));
    expect(binaries.length).toBeGreaterThan(0);
    for (const entry of binaries) expect(entry.name).toContain(`/bin/napi-v6/linux/${arch}/`);
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      const names = listZip(artifactZip(key)).map((e) => e.name);
      expect(names).toEqual(expect.arrayContaining([`functions/${key}.js`, `functions/${key}.js.map`]));
    }
  });

  it('attaches to each function exactly the layers its bundle needs', () => {
    for (const key of Object.keys(FUNCTIONS) as FunctionKey[]) {
      const work = mkdtempSync(join(tmpdir(), `artifact-${key}-`));
      try {
        extractZip(artifactZip(key), join(work, 'task'));
        const externals = externalsOf(readFileSync(join(work, 'task', 'functions', `${key}.js`), 'utf8'));
        const provided = layerZips(key).map((zip) => {
          const names = listZip(zip).map((e) => e.name);
          return names
            .filter((n) => /^nodejs\/node_modules\/(@[^/]+\/)?[^/]+\/package\.json$/.test(n))
            .map((n) => n.replace(/^nodejs\/node_modules\//, '').replace(/\/package\.json$/, ''))
            .concat(names.some((n) => n.startsWith('models/')) ? ['models'] : []);
        });
        const needed = new Set(externals.map(packageName));
        if (key === 'classify') needed.add('models');
        for (const pkg of needed)
          expect({ key, pkg, provided: provided.flat().includes(pkg) }).toEqual({ key, pkg, provided: true });
        // No dead weight: every layer provides something the function uses.
        for (const [i, packages] of provided.entries()) {
          expect({ key, layer: basename(layerZips(key)[i] ?? ''), used: packages.some((p) => needed.has(p)) }).toEqual({
            key,
            layer: basename(layerZips(key)[i] ?? ''),
            used: true,
          });
        }
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
  });

  it.each(Object.keys(FUNCTIONS) as FunctionKey[])(
    '%s runs from its zip and layers alone on its sample event',
    async (key) => {
      // Prepare: the function as Lambda lays it out, in a folder outside the repository, so
      // nothing can resolve from the project's node_modules: /var/task and /opt.
      const work = mkdtempSync(join(tmpdir(), `lambda-${key}-`));
      try {
        const task = join(work, 'task');
        const opt = join(work, 'opt');
        extractZip(artifactZip(key), task);
        for (const zip of layerZips(key)) extractZip(zip, opt);
        mkdirSync(join(work, 'tmp'));
        const runner = join(work, 'run.js');
        writeFileSync(
          runner,
          `const event = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
           const { handler } = require(${JSON.stringify(join(task, 'functions', `${key}.js`))});
           const deadline = Date.now() + 60000;
           const context = { functionName: ${JSON.stringify(key)}, functionVersion: '$LATEST',
             invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:${key}',
             memoryLimitInMB: '1024', awsRequestId: 'artifact-test', logGroupName: '/aws/lambda/${key}',
             logStreamName: 'artifact', callbackWaitsForEmptyEventLoop: true,
             getRemainingTimeInMillis: () => deadline - Date.now() };
           handler(event, context).then(
             (result) => { process.stdout.write('\\nRESULT ' + JSON.stringify(result) + '\\n'); },
             (error) => { console.error(error); process.exit(1); });`,
        );
        // Act
        const { stdout } = await run(process.execPath, [runner, join(ROOT, 'events', FUNCTIONS[key].event)], {
          cwd: task,
          env: {
            PATH: process.env.PATH ?? '',
            NODE_PATH: join(opt, 'nodejs', 'node_modules'),
            NODE_OPTIONS: '--enable-source-maps',
            MODEL_DIR: join(opt, 'models'),
            IS_LOCAL: 'true',
            STREAM_PREFIX: '',
            AWS_REGION: 'us-east-1',
            LOG_LEVEL: 'WARN',
            TMPDIR: join(work, 'tmp'),
          },
          maxBuffer: 64 * 1024 * 1024,
        });
        // Assess: the handler answered (its answers are checked in detail by invoke.test.ts).
        const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
        expect(line).toBeDefined();
        const result: unknown = JSON.parse((line ?? 'RESULT null').slice('RESULT '.length));
        expect(result).toEqual(expect.any(Object));
        if (key === 'classify') expect(result).toEqual({ batchItemFailures: expect.any(Array) });
        if (key === 'aggregate-metrics') expect(result).toEqual(expect.objectContaining({ state: expect.anything() }));
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
