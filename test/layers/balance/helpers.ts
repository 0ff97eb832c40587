import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { type Classifier, classification, SUCCESS } from '../../../src/core/classify.js';
import type { Endpoint } from '../../../src/discovery/index.js';

/** A seeded PRNG (mulberry32), so statistics in tests are the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A loopback HTTP server answering its name after `delayMs` with `status`; both changeable. */
export interface TestServer {
  readonly port: number;
  readonly name: string;
  hits: number;
  delayMs: number;
  status: number;
  close(): Promise<void>;
}

export async function startServer(name: string, delayMs = 0): Promise<TestServer> {
  const server = http.createServer();
  const owner: TestServer = {
    port: 0,
    name,
    hits: 0,
    delayMs,
    status: 200,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    owner.hits++;
    req.resume();
    const answer = (): void => {
      res.statusCode = owner.status;
      res.end(name);
    };
    if (owner.delayMs > 0) setTimeout(answer, owner.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (owner as { port: number }).port = (server.address() as AddressInfo).port;
  return owner;
}

/** What an endpoint answers in these tests: the HTTP status and the server's name. */
export interface Reply {
  readonly status: number;
  readonly body: string;
}

/** Classifies {@link Reply}s: 5xx fail. */
export const replyClassifier: Classifier<unknown> = {
  classifyResult: (r) => ((r as Reply).status >= 500 ? classification('failure', String((r as Reply).status), true) : SUCCESS),
  classifyError: () => classification('failure', 'error', true),
};

/** An endpoint factory over an undici pool per endpoint, recording pools opened and closed. */
export function poolFactory(): {
  readonly opened: string[];
  readonly closed: string[];
  readonly factory: (endpoint: Endpoint) => ((path: string) => Promise<Reply>) & { close: () => Promise<void> };
} {
  const opened: string[] = [];
  const closed: string[] = [];
  const factory = (endpoint: Endpoint) => {
    const pool = new Pool(`http://${endpoint.address}:${endpoint.port}`, { connections: 16 });
    opened.push(endpoint.id);
    const call = async (path: string): Promise<Reply> => {
      const response = await pool.request({ path, method: 'GET' });
      return { status: response.statusCode, body: await response.body.text() };
    };
    return Object.assign(call, {
      close: async () => {
        closed.push(endpoint.id);
        await pool.close();
      },
    });
  };
  return { opened, closed, factory };
}

/** Runs `total` calls with `concurrency` workers; returns the outcomes in completion order. */
export async function load<T>(total: number, concurrency: number, call: (i: number) => Promise<T>): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        results.push({ status: 'fulfilled', value: await call(i) });
      } catch (reason) {
        results.push({ status: 'rejected', reason });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}
