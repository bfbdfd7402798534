import { KinesisClient } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';

/** Where to reach Kinesis: AWS itself (no endpoint) or an emulator. */
export interface KinesisEndpointOptions {
  /** e.g. `http://127.0.0.1:4567`; unset means the AWS regional endpoint. */
  endpoint?: string;
  region?: string;
}

/**
 * Creates a Kinesis client for AWS or for a local emulator. Against an emulator the SDK's
 * default HTTP/2 handler fails with "Protocol error", so a plain HTTP/1.1 keep-alive handler
 * is used, and placeholder credentials stand in when none are configured (emulators accept
 * any). Against AWS the SDK's default credential chain applies unchanged.
 */
export function createKinesisClient(options: KinesisEndpointOptions = {}): KinesisClient {
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  if (!options.endpoint) return new KinesisClient({ region });
  const hasCredentials = Boolean(process.env.AWS_ACCESS_KEY_ID || process.env.AWS_PROFILE);
  return new KinesisClient({
    region,
    endpoint: options.endpoint,
    requestHandler: new NodeHttpHandler({
      httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }),
      connectionTimeout: 2000,
      requestTimeout: 30000,
    }),
    ...(hasCredentials ? {} : { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
  });
}
