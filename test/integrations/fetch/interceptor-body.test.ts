import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Agent, type Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { meshInterceptor } from '../../../src/integrations/fetch/index.js';
import type { RetryOptions } from '../../../src/layers/retry/index.js';

// The interceptor under plain `fetch`, which hands every request body to its dispatcher as a
// stream: replayable bodies must be buffered (64 KiB) and sent byte-for-byte on each attempt.

interface Recorded {
  method: string;
  body: Buffer;
}

/** A loopback server answering from a queue of statuses (200 once empty), recording bodies. */
async function startServer(statuses: number[]) {
  const seen: Recorded[] = [];
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    seen.push({ method: req.method ?? '', body: Buffer.concat(chunks) });
    const status = statuses.shift() ?? 200;
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`reply ${status} #${seen.length}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const fast: RetryOptions = { attempts: 2, backoff: { base: '1ms', jitter: 'none' }, budget: false };
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});
async function server(statuses: number[]) {
  const s = await startServer(statuses);
  closers.push(s.close);
  return s;
}
/** An agent composed with a fresh interceptor, both closed after the file. */
function meshed(options: Parameters<typeof meshInterceptor>[0] = {}) {
  const interceptor = meshInterceptor({ retry: fast, registry: false, ...options });
  const agent = new Agent().compose(interceptor);
  const refused: string[] = [];
  interceptor.events.on('replay-refused', (e) => refused.push(e.reason));
  closers.push(async () => {
    await interceptor.close();
    await agent.close();
  });
  return { interceptor, agent, refused };
}
const through = (dispatcher: Dispatcher, init: RequestInit): RequestInit => ({ ...init, dispatcher }) as unknown as RequestInit;

test('global dispatcher: a fetch PUT failing once with 503 is retried with the same bytes', async () => {
  const s = await server([503]);
  const { agent, interceptor } = meshed();
  const previous = getGlobalDispatcher();
  setGlobalDispatcher(agent);
  try {
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
    const res = await fetch(`${s.url}/put`, { method: 'PUT', body });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'reply 200 #2');
  } finally {
    setGlobalDispatcher(previous);
  }
  assert.equal(s.seen.length, 2);
  assert.equal(s.seen[0]?.body.length, 3000);
  assert.deepEqual(s.seen[1]?.body, s.seen[0]?.body);
  assert.deepEqual(Object.keys(interceptor.replayRefused), []);
});

test('explicit dispatcher: string and stream bodies are replayed byte-for-byte', async () => {
  const { agent } = meshed();
  const chunks = [Buffer.from('héllo '), Buffer.from('wörld, '), Buffer.alloc(1000, 0x61)];
  const bodies: (() => RequestInit['body'])[] = [
    () => 'héllo wörld',
    () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
          controller.close();
        },
      }),
  ];
  for (const make of bodies) {
    const s = await server([503, 502]);
    const res = await fetch(`${s.url}/put`, through(agent, { method: 'PUT', body: make(), duplex: 'half' } as RequestInit));
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(s.seen.length, 3);
    const first = s.seen[0]?.body as Buffer;
    assert.ok(first.length > 0);
    for (const r of s.seen) assert.deepEqual(r.body, first);
  }
});

test('a body over the 64 KiB replay buffer is sent once, whole, and not retried, with the reason', async () => {
  const { agent, interceptor, refused } = meshed();
  const big = new Uint8Array(70 * 1024).map((_, i) => i % 251);
  const s = await server([503]);
  const res = await fetch(`${s.url}/big`, through(agent, { method: 'PUT', body: big }));
  assert.equal(res.status, 503);
  await res.text();
  assert.equal(s.seen.length, 1);
  assert.deepEqual(s.seen[0]?.body, Buffer.from(big), 'sent whole: what was buffered, then the rest');
  const reason = 'request body larger than the 64 KiB replay buffer';
  assert.deepEqual(refused, [reason]);
  assert.equal(interceptor.replayRefused[reason], 1);
  // Exactly the limit still fits and is replayed.
  const exact = await server([503]);
  const ok = await fetch(`${exact.url}/exact`, through(agent, { method: 'PUT', body: new Uint8Array(64 * 1024).fill(3) }));
  assert.equal(ok.status, 200);
  await ok.text();
  assert.equal(exact.seen.length, 2);
  assert.deepEqual(exact.seen[1]?.body, exact.seen[0]?.body);
});

test('POST is not retried by default, and the refusal says why; retryNonIdempotent retries it', async () => {
  const byDefault = meshed();
  const s = await server([503]);
  const res = await fetch(`${s.url}/orders`, through(byDefault.agent, { method: 'POST', body: '{"id":1}' }));
  assert.equal(res.status, 503);
  await res.text();
  assert.equal(s.seen.length, 1);
  assert.equal(s.seen[0]?.body.toString(), '{"id":1}');
  assert.match(byDefault.refused[0] ?? '', /POST is not idempotent/);

  const told = meshed({ retryNonIdempotent: true });
  const s2 = await server([503]);
  const res2 = await fetch(`${s2.url}/orders`, through(told.agent, { method: 'POST', body: '{"id":2}' }));
  assert.equal(res2.status, 200);
  await res2.text();
  assert.deepEqual(
    s2.seen.map((r) => `${r.method} ${r.body}`),
    ['POST {"id":2}', 'POST {"id":2}'],
  );
});

test('with retries off, bodies are streamed through untouched', async () => {
  const { agent, refused } = meshed({ retry: false });
  const s = await server([503]);
  const big = new Uint8Array(100 * 1024).fill(9);
  const res = await fetch(`${s.url}/big`, through(agent, { method: 'PUT', body: big }));
  assert.equal(res.status, 503);
  await res.text();
  assert.equal(s.seen.length, 1);
  assert.equal(s.seen[0]?.body.length, big.length);
  assert.deepEqual(refused, []);
});
