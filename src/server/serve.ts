/**
 * Listening: the app (app.ts) on a Node HTTP server bound to `host` (default 127.0.0.1, loopback only) and `port`
 * (0: a free one). `close()` drains: it stops accepting connections, refuses new generations, lets the running and
 * queued ones finish (up to `graceMs`, then cancels what is left by closing its connections) and resolves when the
 * server is closed.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { RecycleGPT } from '../generate/recyclegpt-core.js';
import { createServerApp, type ServerApp, type ServerOptions } from './app.js';

export interface ListenOptions extends ServerOptions {
  host?: string;
  port?: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly app: ServerApp;
  /** Drain and close (see the file comment). */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(m: RecycleGPT, o: ListenOptions = {}): Promise<RunningServer> {
  const app = createServerApp(m, o);
  const host = o.host ?? '127.0.0.1';
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.app.fetch, hostname: host, port: o.port ?? 8080 }, () => resolve(s as Server));
    (s as Server).once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${shown}:${port}`,
    port,
    app,
    close(graceMs = 30_000): Promise<void> {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
        await Promise.race([app.drain(), grace]);
        clearTimeout(timer);
        // Keep-alive sockets stay open after close(): idle ones go now; the last bytes of finished streams get a
        // moment to flush, then what is left (past the grace) is cut.
        server.closeIdleConnections();
        await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}
