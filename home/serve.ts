/**
 * Listening: the home app on a host and port (0 = any free port), with the rule that a
 * server reachable from other machines needs a token.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createHomeApp, type HomeAppOptions } from './server';
import type { HomeStore } from './store';

export const DEFAULT_HOME_HOST = '127.0.0.1';
export const DEFAULT_HOME_PORT = 8080;
/** Shortest token accepted: guessing one must not be practical. */
export const MIN_TOKEN_LENGTH = 16;

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why these settings may not serve, or undefined when they may: another host than loopback
 * needs a token, and a token must be long enough.
 */
export function checkHomeAccess(host: string, token: string | undefined): string | undefined {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    return `the home token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -hex 16)`;
  }
  if (!isLoopback(host) && token === undefined) {
    return `the home would listen on ${host}, reachable from other machines, without a token: pass --token T (or HOME_TOKEN), or keep the default host ${DEFAULT_HOME_HOST}`;
  }
  return undefined;
}

export interface RunningHome {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the home for `store`; rejects when the port is taken or access rules refuse. */
export async function startHomeServer(
  store: HomeStore,
  options: HomeAppOptions & { host?: string; port?: number },
): Promise<RunningHome> {
  const host = options.host ?? DEFAULT_HOME_HOST;
  const problem = checkHomeAccess(host, options.token);
  if (problem) throw new Error(problem);
  const app = createHomeApp(store, options);
  const server = await new Promise<Server>((resolveServer, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? DEFAULT_HOME_PORT }) as Server;
    s.once('error', reject);
    s.once('listening', () => {
      s.off('error', reject);
      resolveServer(s);
    });
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        // Event streams stay open until their clients go: end them.
        server.closeAllConnections();
      }),
  };
}
