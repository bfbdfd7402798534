/**
 * A fault-injecting HTTP proxy in front of a real Kinesis endpoint (and its counterpart for the
 * embedded emulator's direct path, {@link startDirectFaultRelay}). Handlers are pointed at
 * it through KINESIS_ENDPOINT, so the real handler modules (with their own clients) meet the
 * faults: chosen PutRecords entries come back failed exactly as Kinesis reports a partial
 * failure (the call succeeds, the entry carries an ErrorCode, FailedRecordCount counts it),
 * or a whole call fails with a 500. Everything else passes through untouched.
 */
import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MessageChannel, type MessagePort } from 'node:worker_threads';

export interface ProxiedEntry {
  stream: string;
  partitionKey: string;
  data: Buffer;
  /** `frame_id` of a JSON record, when it has one. */
  frameId: string | undefined;
  /** How many times an entry with this stream + frame id (or data) was seen before. */
  seenBefore: number;
}

export interface ProxyRules {
  /** Return an error code to fail the entry. */
  failEntry?: (entry: ProxiedEntry) => string | undefined;
  /** Return true to fail the whole PutRecords call with a 500 InternalFailure. */
  failCall?: (call: { stream: string; call: number }) => boolean;
}

export interface FaultProxy {
  url: string;
  /** Entries failed and calls failed so far, per stream. */
  failedEntries: Map<string, number>;
  failedCalls: number;
  close(): Promise<void>;
}

interface PutRecordsBody {
  StreamName?: string;
  Records?: Array<{ Data: string; PartitionKey: string; ExplicitHashKey?: string }>;
}

export async function startFaultProxy(target: string, rules: ProxyRules): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const seen = new Map<string, number>();
  const failedEntries = new Map<string, number>();
  let calls = 0;
  let failedCalls = 0;

  const forward = (method: string, path: string, headers: IncomingHttpHeaders, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const req = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method,
          path,
          agent,
          headers: { ...headers, host: upstream.host, 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const target = String(req.headers['x-amz-target'] ?? '');
        try {
          if (!target.endsWith('.PutRecords')) {
            const out = await forward(req.method ?? 'POST', req.url ?? '/', req.headers, body);
            res.writeHead(out.status, { 'content-type': String(out.headers['content-type'] ?? 'application/x-amz-json-1.1') });
            res.end(out.body);
            return;
          }
          const input = JSON.parse(body.toString('utf8')) as PutRecordsBody;
          const stream = input.StreamName ?? '';
          calls += 1;
          if (rules.failCall?.({ stream, call: calls })) {
            failedCalls += 1;
            res.writeHead(500, { 'content-type': 'application/x-amz-json-1.1' });
            res.end(JSON.stringify({ __type: 'InternalFailure', message: 'injected failure' }));
            return;
          }
          const records = input.Records ?? [];
          const verdicts = records.map((r) => {
            const data = Buffer.from(r.Data, 'base64');
            let frameId: string | undefined;
            try {
              const parsed = JSON.parse(data.toString('utf8')) as { frame_id?: unknown };
              frameId = typeof parsed.frame_id === 'string' ? parsed.frame_id : undefined;
            } catch {
              frameId = undefined;
            }
            const key = `${stream}\u0000${frameId ?? r.Data}`;
            const seenBefore = seen.get(key) ?? 0;
            seen.set(key, seenBefore + 1);
            return rules.failEntry?.({ stream, partitionKey: r.PartitionKey, data, frameId, seenBefore });
          });
          const passing = records.filter((_, i) => verdicts[i] === undefined);
          let passed: unknown[] = [];
          if (passing.length > 0) {
            const out = await forward(
              'POST',
              req.url ?? '/',
              req.headers,
              Buffer.from(JSON.stringify({ ...input, Records: passing })),
            );
            if (out.status !== 200) {
              res.writeHead(out.status, { 'content-type': 'application/x-amz-json-1.1' });
              res.end(out.body);
              return;
            }
            passed = (JSON.parse(out.body.toString('utf8')) as { Records: unknown[] }).Records;
          }
          let next = 0;
          const merged = verdicts.map((code) =>
            code === undefined ? passed[next++] : { ErrorCode: code, ErrorMessage: `injected ${code}` },
          );
          const failed = verdicts.filter((v) => v !== undefined).length;
          if (failed > 0) failedEntries.set(stream, (failedEntries.get(stream) ?? 0) + failed);
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ FailedRecordCount: failed, Records: merged }));
        } catch (error: unknown) {
          res.writeHead(502, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ __type: 'InternalFailure', message: error instanceof Error ? error.message : String(error) }));
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    failedEntries,
    get failedCalls() {
      return failedCalls;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        agent.destroy();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The direct-path counterpart of {@link FaultProxy}: hands out ports instead of a URL. */
export interface DirectFaultRelay {
  /** A port to the emulator through the relay (what `LocalPipeline`'s `handlerDirectPort` asks for). */
  openPort(): MessagePort;
  failedEntries: Map<string, number>;
  failedCalls: number;
  close(): void;
}

interface DirectCall {
  id: number;
  operation: string;
  data: { StreamName?: string; Records?: Array<{ PartitionKey: string; Data: Uint8Array }> };
}

interface DirectAnswer {
  id: number;
  result?: { Records?: unknown[]; data?: unknown };
  error?: { name: string; message: string; statusCode: number };
}

/**
 * The fault proxy for the emulator's direct path: relays direct calls between a handler's
 * client and the emulator (`openUpstream`, e.g. `() => KinesisEmulator.openDirectPortAt(port)`),
 * failing the PutRecords entries and calls `rules` pick exactly as {@link startFaultProxy} does
 * over HTTP. A relayed port closes when its upstream does (the emulator stopped), so the client
 * opens a new one through {@link DirectFaultRelay.openPort}, which throws while the emulator is down.
 */
export function startDirectFaultRelay(openUpstream: () => MessagePort, rules: ProxyRules): DirectFaultRelay {
  const seen = new Map<string, number>();
  const failedEntries = new Map<string, number>();
  const ports = new Set<MessagePort>();
  let calls = 0;
  let failedCalls = 0;

  const openPort = (): MessagePort => {
    const upstream = openUpstream();
    const { port1, port2 } = new MessageChannel();
    ports.add(port2);
    // The client refs its own end while a call is in flight: these never keep the process alive.
    port2.unref();
    upstream.unref();
    let nextId = 0;
    const waiting = new Map<number, (answer: DirectAnswer) => void>();
    upstream.on('message', (answer: DirectAnswer) => {
      const done = waiting.get(answer.id);
      waiting.delete(answer.id);
      done?.(answer);
    });
    const forward = (call: DirectCall): Promise<DirectAnswer> =>
      new Promise((resolve) => {
        nextId += 1;
        waiting.set(nextId, resolve);
        upstream.postMessage({ ...call, id: nextId });
      });
    const reply = (answer: DirectAnswer): void => {
      const data = answer.result?.data;
      port2.postMessage(answer, data instanceof ArrayBuffer ? [data] : []);
    };
    upstream.once('close', () => port2.close());
    port2.once('close', () => {
      ports.delete(port2);
      upstream.close();
    });
    port2.on('message', (call: DirectCall) => {
      void (async () => {
        if (call.operation !== 'PutRecords') return reply({ ...(await forward(call)), id: call.id });
        const stream = call.data.StreamName ?? '';
        calls += 1;
        if (rules.failCall?.({ stream, call: calls })) {
          failedCalls += 1;
          return reply({ id: call.id, error: { name: 'InternalFailure', message: 'injected failure', statusCode: 500 } });
        }
        const records = call.data.Records ?? [];
        const verdicts = records.map((r) => {
          const data = Buffer.from(r.Data.buffer, r.Data.byteOffset, r.Data.byteLength);
          let frameId: string | undefined;
          try {
            const parsed = JSON.parse(data.toString('utf8')) as { frame_id?: unknown };
            frameId = typeof parsed.frame_id === 'string' ? parsed.frame_id : undefined;
          } catch {
            frameId = undefined;
          }
          const key = `${stream}\u0000${frameId ?? data.toString('base64')}`;
          const seenBefore = seen.get(key) ?? 0;
          seen.set(key, seenBefore + 1);
          return rules.failEntry?.({ stream, partitionKey: r.PartitionKey, data, frameId, seenBefore });
        });
        const passing = records.filter((_, i) => verdicts[i] === undefined);
        let passed: unknown[] = [];
        if (passing.length > 0) {
          const out = await forward({ ...call, data: { ...call.data, Records: passing } });
          if (out.error) return reply({ ...out, id: call.id });
          passed = out.result?.Records ?? [];
        }
        let next = 0;
        const merged = verdicts.map((code) =>
          code === undefined ? passed[next++] : { ErrorCode: code, ErrorMessage: `injected ${code}` },
        );
        const failed = verdicts.filter((v) => v !== undefined).length;
        if (failed > 0) failedEntries.set(stream, (failedEntries.get(stream) ?? 0) + failed);
        reply({ id: call.id, result: { FailedRecordCount: failed, Records: merged } as DirectAnswer['result'] });
      })();
    });
    return port1;
  };

  return {
    openPort,
    failedEntries,
    get failedCalls() {
      return failedCalls;
    },
    close: () => {
      for (const port of ports) port.close();
    },
  };
}
