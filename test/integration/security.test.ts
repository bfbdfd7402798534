/**
 * Nobody in: the embedded emulator (which has no authentication) listens on loopback only,
 * both as started by the library and as served by `npm start -- --serve`; stopping it while
 * clients are polling stops cleanly; and no credentials are kept in the repository.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetRecordsCommand, GetShardIteratorCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { createKinesisClient } from '../../functions/lib/kinesis';
import { ensureStreams, KinesisEmulator } from '../../local/emulator';
import { REPO_ROOT } from '../../local/runner/mappings';
import { waitUntil } from '../helpers/wait';

/** Local addresses of the sockets listening on `port`, from the kernel's tables (IPv4 and IPv6). */
function listeners(port: number): string[] {
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [address, hexPort] = (fields[1] ?? '').split(':');
      if (fields[3] !== '0A' || hexPort === undefined || Number.parseInt(hexPort, 16) !== port) continue;
      out.push(address ?? '');
    }
  }
  return out;
}

/** 127.0.0.1 as /proc/net/tcp writes it (little-endian hex), and ::1 as /proc/net/tcp6 does. */
const LOOPBACK_HEX = '0100007F';
const LOOPBACK6_HEX = '00000000000000000000000001000000';

/** Resolves with the connection's outcome: 'connected' or the error code. */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('ETIMEDOUT');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** This machine's addresses other than loopback. */
const externalAddresses = (): string[] =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
    .map((a) => (a as { address: string }).address);

/** Asserts that only 127.0.0.1 accepts connections on `port`. */
async function expectLoopbackOnly(port: number): Promise<void> {
  const bound = listeners(port);
  expect(bound).toContain(LOOPBACK_HEX);
  expect(bound.filter((address) => address !== LOOPBACK_HEX && address !== LOOPBACK6_HEX)).toEqual([]);
  expect(await tryConnect('127.0.0.1', port)).toBe('connected');
  for (const address of externalAddresses()) {
    expect({ address, outcome: await tryConnect(address, port) }).not.toEqual({ address, outcome: 'connected' });
  }
}

describe('the embedded emulator', () => {
  it('listens on 127.0.0.1 only', async () => {
    const emulator = await KinesisEmulator.start({ port: 0 });
    try {
      await expectLoopbackOnly(emulator.port);
    } finally {
      await emulator.stop();
    }
  });

  it('stops cleanly while clients are still polling it, and starts again on its store', async () => {
    // Prepare: a persistent emulator with eight clients polling as fast as they can.
    const dir = mkdtempSync(join(tmpdir(), 'emulator-stop-'));
    let emulator = await KinesisEmulator.start({ port: 0, persistPath: dir });
    const port = emulator.port;
    const client = createKinesisClient({ endpoint: emulator.endpoint, region: 'us-east-1' });
    await ensureStreams(client, [{ name: 's', shards: 1 }]);
    await client.send(new PutRecordCommand({ StreamName: 's', PartitionKey: 'k', Data: Buffer.from('kept') }));
    let polling = true;
    let answered = 0;
    const pollers = Array.from({ length: 8 }, async () => {
      while (polling) {
        try {
          const { ShardIterator } = await client.send(
            new GetShardIteratorCommand({ StreamName: 's', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
          );
          await client.send(new GetRecordsCommand({ ShardIterator }));
          answered += 1;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    });
    await waitUntil(
      () => answered >= 50,
      '50 answered polls',
      60_000,
      () => `${answered} answered`,
    );

    // Act: three stops and starts under load.
    for (let round = 0; round < 3; round++) {
      await emulator.stop();
      emulator = await KinesisEmulator.start({ port, persistPath: dir });
    }
    polling = false;
    await Promise.all(pollers);

    // Assess: the process is still here, and so is the record.
    const { ShardIterator } = await client.send(
      new GetShardIteratorCommand({ StreamName: 's', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }),
    );
    const page = await client.send(new GetRecordsCommand({ ShardIterator }));
    expect(page.Records?.map((r) => Buffer.from(r.Data ?? new Uint8Array()).toString())).toEqual(['kept']);
    client.destroy();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('npm start -- --serve', () => {
  it('serves on 127.0.0.1 only and stops cleanly on Ctrl-C', async () => {
    // Prepare
    const out = mkdtempSync(join(tmpdir(), 'serve-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'local/cli/main.ts'),
        '--serve',
        '--port',
        '0',
        '--out',
        out,
        '--quiet',
        '--home-port',
        '0',
        '--data',
        join(out, 'home'),
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, NODE_OPTIONS: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const serving = new Promise<[number, number]>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        const match = /serving on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
        const home = /home on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
        if (match && home) resolve([Number(match[1]), Number(home[1])]);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      void exited.then(() => reject(new Error(`npm start exited before serving:\n${output}`)));
      setTimeout(() => reject(new Error(`npm start did not say it serves on 127.0.0.1 within 90 s:\n${output}`)), 90_000).unref();
    });

    try {
      // Act
      const [port, homePort] = await serving;

      // Assess: the emulator and the home page alike.
      await expectLoopbackOnly(port);
      await expectLoopbackOnly(homePort);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    rmSync(out, { recursive: true, force: true });
  }, 120_000);
});

describe('the repository', () => {
  it('holds no credentials: no access keys, secrets or private keys in any tracked file', () => {
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((f) => f !== '');
    expect(files.length).toBeGreaterThan(50);
    const patterns = [
      /\b(AKIA|ASIA)[0-9A-Z]{16}\b/, // AWS access key ids
      /aws_secret_access_key\s*[=:]/i,
      /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
      /\bsecretAccessKey\s*:\s*['"](?!local['"])[^'"]+['"]/, // anything but the emulator placeholder
      /\b(xox[abp]|ghp|github_pat|npm)_[A-Za-z0-9_]{20,}/, // Slack, GitHub and npm tokens
    ];
    const found: string[] = [];
    for (const file of files) {
      const path = join(REPO_ROOT, file);
      if (!existsSync(path) || statSync(path).size > 5 * 1024 * 1024) continue;
      const text = readFileSync(path, 'utf8');
      for (const pattern of patterns) if (pattern.test(text)) found.push(`${file}: ${pattern.source}`);
    }
    expect(found).toEqual([]);
  });
});
