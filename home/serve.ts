/**
 * Listening: the home app on a host and port (0 = any free port), with the rule that a
 * server reachable from other machines needs a token.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createHomeApp, type HomeAppOptions } from './server';
import type { HomeStore } from './store';
import { checkHomeAccess, DEFAULT_HOME_HOST } from './access';

export { checkHomeAccess, DEFAULT_HOME_HOST, isLoopback, MIN_TOKEN_LENGTH } from './access';

export const DEFAULT_HOME_PORT = 8080;

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
