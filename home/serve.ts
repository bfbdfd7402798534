/**
 * Listening: the home app on a host and port (0 = any free port), with the rule that a
 * server reachable from other machines needs a token.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { ModelControls } from './models';
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
  options: Omit<HomeAppOptions, 'models'> & { host?: string; port?: number; modelsRoot?: string },
): Promise<RunningHome> {
  const host = options.host ?? DEFAULT_HOME_HOST;
  const problem = checkHomeAccess(host, options.token);
  if (problem) throw new Error(problem);
  const models = new ModelControls(store, options.modelsRoot === undefined ? {} : { root: options.modelsRoot });
  const app = createHomeApp(store, { ...options, models });
  const server = await new Promise<Server>((resolveServer, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port: options.port ?? DEFAULT_HOME_PORT }) as Server;
    const onError = (error: Error): void => {
      void models.close();
      reject(error);
    };
    s.once('error', onError);
    s.once('listening', () => {
      s.off('error', onError);
      resolveServer(s);
    });
  });
  // The data folder's bound is kept while the home serves (and the store is closed after it).
  store.startRetention();
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    close: async () => {
      // A retrain job still running is ended with the home (its candidate folder is only
      // renamed into place when complete, so nothing half-written remains).
      await models.close();
      await new Promise<void>((resolveClose) => {
        server.close(() => resolveClose());
        // Event streams stay open until their clients go: end them.
        server.closeAllConnections();
      });
    },
  };
}
