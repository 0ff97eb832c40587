// Shared by the stream client's tests: a hand-written control server whose streams and ACK answers
// each test scripts, a stream client on a virtual clock, and the checks that a closed client left
// nothing behind.
import assert from 'node:assert/strict';
import { subscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createMeshStore, type HttpSourceEvent, type HttpSourceOptions, httpSource } from '../../src/control/index.js';
import type { AckReport } from '../../src/control/protocol.js';
import { VirtualClock } from '../../src/testing/index.js';
import { TOKEN, track, until } from './helpers.js';

export const line = (message: object) => `${JSON.stringify(message)}\n`;
export const hello = (heartbeatMs = 60_000, version = 'v1') => line({ type: 'hello', heartbeatMs, version });
export const snapshot = (version: string, config: unknown = { services: {} }) => line({ type: 'snapshot', version, config });
export const heartbeat = (version = 'v1') => line({ type: 'heartbeat', version });

/** A hand-written control server: the test says what each stream gets and how each ACK is answered. */
export async function fakeServer(options: {
  stream: (res: ServerResponse, n: number) => void;
  ack?: (req: IncomingMessage, res: ServerResponse, n: number) => void;
  prefix?: string;
}) {
  const sockets = new Set<Socket>();
  const streams: ServerResponse[] = [];
  const streamUrls: string[] = [];
  const acks: AckReport[] = [];
  const ackUrls: string[] = [];
  const prefix = options.prefix ?? '';
  const server = createServer((req, res) => {
    const path = req.url ?? '';
    if (req.method === 'GET' && path.startsWith(`${prefix}/v1/stream?`)) {
      streamUrls.push(path);
      streams.push(res);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      options.stream(res, streams.length);
      return;
    }
    if (req.method === 'POST' && path === `${prefix}/v1/ack`) {
      ackUrls.push(path);
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        acks.push(JSON.parse(body) as AckReport);
        if (options.ack) options.ack(req, res, acks.length);
        else res.writeHead(204).end();
      });
      return;
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return track({
    url,
    sockets,
    streams,
    streamUrls,
    acks,
    ackUrls,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  });
}

/** A mesh store fed by one stream client on a virtual clock; `random` 1 makes each backoff its ceiling. */
export async function streamClient(url: string, options: Partial<HttpSourceOptions> = {}) {
  const clock = new VirtualClock();
  const events: HttpSourceEvent[] = [];
  const source = httpSource({
    url,
    token: TOKEN,
    clientId: 'c1',
    clock,
    random: () => 1,
    reconnect: { base: 100, max: 10_000 },
    onEvent: (e) => events.push(e),
    ...options,
  });
  const store = track(await createMeshStore({ sources: [source] }));
  const of = <T extends HttpSourceEvent['type']>(type: T) =>
    events.filter((e): e is Extract<HttpSourceEvent, { type: T }> => e.type === type);
  return { clock, events, store, of };
}

/** After close(): nothing on the clock, and the server sees every socket of the client closed. */
export async function assertNothingLeft(clock: VirtualClock, sockets: Set<Socket>): Promise<void> {
  assert.equal(clock.pendingTimers, 0, 'timers left on the clock');
  await until(() => sockets.size === 0, 'the client sockets closed at the server');
}

// Every client socket this process opens, so a test can tell when the client has read what a
// server wrote (a write's callback says only that the kernel took the bytes).
const clientSockets = new Set<Socket>();
const onClientSocket = (message: unknown): void => {
  const socket = (message as { socket: Socket }).socket;
  clientSockets.add(socket);
  socket.once('close', () => clientSockets.delete(socket));
};
subscribe('net.client.socket', onClientSocket);

/** Writes `text` on a stream and resolves once the client's socket has read all of it. */
export async function writeAndDeliver(res: ServerResponse, text: string): Promise<void> {
  const socket = res.socket as Socket;
  await new Promise<void>((resolve, reject) => res.write(text, (error) => (error ? reject(error) : resolve())));
  const peer = () => [...clientSockets].find((s) => s.localPort === socket.remotePort);
  // The response's chunked framing adds bytes of its own: the server's count is what the client must read.
  await until(() => (peer()?.bytesRead ?? -1) >= socket.bytesWritten, 'the client to read the chunk');
}
