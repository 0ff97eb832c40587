/**
 * What every example needs: a loopback HTTP server that closes cleanly, so each example ends
 * by itself.
 */
import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running loopback server. */
export interface Loopback {
  readonly url: string;
  close(): Promise<void>;
}

/** Starts `handler` on 127.0.0.1 at a free port. */
export async function listen(handler: RequestListener): Promise<Loopback> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Percentage with one decimal. */
export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
