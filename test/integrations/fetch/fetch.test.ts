import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Agent } from 'undici';
import { InvalidOptionError } from '../../../src/core/errors.js';
import { meshFetch, meshInterceptor, meshRequest } from '../../../src/integrations/fetch/index.js';
import type { RetryOptions } from '../../../src/layers/retry/index.js';

/** A loopback server answering from a queue of statuses, recording each request's body. */
interface Recorded {
  method: string;
  body: Buffer;
  headers: IncomingMessage['headers'];
  at: number;
}
type Reply = number | { status: number; headers?: Record<string, string>; delayMs?: number; hold?: boolean };

async function startServer(replies: Reply[] = []) {
  const seen: Recorded[] = [];
  const aborted: boolean[] = [];
  const queue = [...replies];
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    seen.push({ method: req.method ?? '', body: Buffer.concat(chunks), headers: req.headers, at: performance.now() });
    const next = queue.shift() ?? 200;
    const reply = typeof next === 'number' ? { status: next } : next;
    if (reply.hold) {
      res.on('close', () => aborted.push(!res.writableEnded));
      return;
    }
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
    res.end(`reply ${reply.status} #${seen.length}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  };
  return { url, seen, aborted, queue, close };
}

const fast: RetryOptions = { attempts: 2, backoff: { base: '1ms', jitter: 'none' }, budget: false };
const servers: { close(): Promise<void> }[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function server(replies?: Reply[]) {
  const s = await startServer(replies);
  servers.push(s);
  return s;
}

test('GET: a 503 is retried and the final response returned whole', async () => {
  const s = await server([503, 503, 200]);
  const fetch = meshFetch({ retry: fast, registry: false });
  // meshFetch has fetch's exact signature: it can stand wherever a fetch is expected.
  const asFetch: typeof globalThis.fetch = fetch;
  assert.equal(typeof asFetch, 'function');
  const res = await fetch(`${s.url}/x`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply 200 #3');
  assert.equal(s.seen.length, 3);
  await fetch.close();
});

test('PUT bodies are replayed byte-for-byte: bytes, string and a small stream', async () => {
  const bytes = new Uint8Array(4096).map((_, i) => (i * 31) % 256);
  const fetch = meshFetch({ retry: fast, registry: false });
  for (const make of [() => bytes, () => 'héllo wörld', () => new Blob([bytes]).stream()]) {
    const s = await server([503, 503, 200]);
    const res = await fetch(`${s.url}/put`, { method: 'PUT', body: make() as any, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(s.seen.length, 3);
    const first = s.seen[0]?.body as Buffer;
    assert.ok(first.length > 0);
    for (const r of s.seen) assert.deepEqual(r.body, first);
  }
  await fetch.close();
});

test('POST is not retried by default, and the refusal says why', async () => {
  const s = await server([503, 200]);
  const fetch = meshFetch({ retry: fast, registry: false });
  const reasons: string[] = [];
  fetch.events.on('replay-refused', (e) => reasons.push(e.reason));
  const res = await fetch(`${s.url}/orders`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 503);
  await res.text();
  assert.equal(s.seen.length, 1);
  assert.match(reasons[0] ?? '', /POST is not idempotent/);
  await fetch.close();
});

test('POST is retried when told, globally or per route', async () => {
  const s = await server([503, 200, 503, 200]);
  const global = meshFetch({ retry: fast, retryNonIdempotent: true, registry: false });
  assert.equal((await global(`${s.url}/a`, { method: 'POST', body: 'x' })).status, 200);
  const perRoute = meshFetch({
    retry: fast,
    routes: [{ name: 'orders', method: 'POST', path: '/orders', retryNonIdempotent: true }],
    registry: false,
  });
  assert.equal((await perRoute(`${s.url}/orders/1`, { method: 'POST', body: 'x' })).status, 200);
  assert.equal(s.seen.length, 4);
  await global.close();
  await perRoute.close();
});

test('a body over the 64 KiB replay buffer is sent once, whole, and not retried', async () => {
  const fetch = meshFetch({ retry: fast, registry: false });
  const big = new Uint8Array(70 * 1024).fill(7);
  const s1 = await server([503, 200]);
  const res1 = await fetch(`${s1.url}/big`, { method: 'PUT', body: new Blob([big]).stream(), duplex: 'half' } as RequestInit);
  assert.equal(res1.status, 503);
  await res1.text();
  assert.equal(s1.seen.length, 1);
  assert.equal(s1.seen[0]?.body.length, big.length);
  const s2 = await server([503, 200]);
  const res2 = await fetch(`${s2.url}/big`, { method: 'PUT', body: big });
  assert.equal(res2.status, 503);
  await res2.text();
  assert.equal(s2.seen.length, 1);
  assert.deepEqual(Object.keys(fetch.replayRefused), ['request body larger than the 64 KiB replay buffer']);
  assert.equal(fetch.replayRefused['request body larger than the 64 KiB replay buffer'], 2);
  const s3 = await server([503, 200]);
  const res3 = await fetch(`${s3.url}/exact`, { method: 'PUT', body: new Uint8Array(64 * 1024) });
  assert.equal(res3.status, 200, 'exactly 64 KiB is replayed');
  await res3.text();
  await fetch.close();
});

test('Retry-After is honoured', async () => {
  const s = await server([{ status: 429, headers: { 'retry-after': '1' } }, 200]);
  const fetch = meshFetch({ retry: fast, registry: false });
  const res = await fetch(`${s.url}/limited`);
  assert.equal(res.status, 200);
  await res.text();
  const gap = (s.seen[1]?.at ?? 0) - (s.seen[0]?.at ?? 0);
  assert.ok(gap >= 950, `second attempt came after ${gap} ms`);
  await fetch.close();
});

test('cancellation reaches the server: the server sees the request aborted', async () => {
  const s = await server([{ status: 200, hold: true }]);
  const fetch = meshFetch({ retry: fast, registry: false });
  const controller = new AbortController();
  const pending = fetch(`${s.url}/slow`, { signal: controller.signal });
  while (s.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  while (s.aborted.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(s.aborted, [true]);
  await fetch.close();
});

test('a timeout aborts the request on the wire and the deadline travels in a header', async () => {
  const s = await server([200, { status: 200, hold: true }]);
  const fetch = meshFetch({ timeout: '300ms', retry: false, registry: false });
  const res = await fetch(`${s.url}/d`);
  await res.text();
  const ms = Number(s.seen[0]?.headers['x-sidecarless-deadline-ms']);
  assert.ok(ms > 200 && ms <= 300, `deadline header ${ms}`);
  await assert.rejects(fetch(`${s.url}/held`), { name: 'TimeoutError' });
  while (s.aborted.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(s.aborted, [true]);
  await fetch.close();
});

test('endpoints: requests are steered away from the slow endpoint', async (t) => {
  const slow = await server(Array.from({ length: 100 }, () => ({ status: 200, delayMs: 100 })));
  const quick = await server();
  const fetch = meshFetch({ endpoints: [slow.url, quick.url], retry: false, registry: false });
  t.after(() => fetch.close());
  // Four callers, ten requests each: a 100 ms endpoint costs far more than a loopback one.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 10; i++) await (await fetch('http://users/v1/u?id=1')).text();
    }),
  );
  assert.equal(slow.seen.length + quick.seen.length, 40);
  assert.ok(slow.seen.length <= 12, `slow endpoint got ${slow.seen.length} of 40`);
  assert.equal(quick.seen[0]?.headers.host, new URL(quick.url).host);
});

test('the body of a response that is retried is cancelled: the server sees that stream end early', async (t) => {
  let calls = 0;
  let firstClosedEarly: Promise<boolean> | undefined;
  const upstream = createServer((_req, res) => {
    calls++;
    if (calls > 1) return void res.end('fine');
    // A 503 whose body never ends on its own: only the client's cancel ends it.
    res.writeHead(503, { 'content-type': 'text/plain' });
    const timer = setInterval(() => res.write('x'.repeat(1024)), 5);
    firstClosedEarly = new Promise((resolve) => res.on('close', () => resolve(!res.writableEnded)));
    res.on('close', () => clearInterval(timer));
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  t.after(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const fetch = meshFetch({ retry: fast, registry: false });
  const res = await fetch(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`);
  assert.equal(await res.text(), 'fine');
  const bounded = new Promise<boolean>((resolve) => setTimeout(resolve, 2000, false).unref());
  assert.equal(await Promise.race([firstClosedEarly, bounded]), true, 'the first body was cancelled');
  await fetch.close();
});

test('invalid options name the field and what is allowed', () => {
  assert.throws(
    () => meshFetch({ replayBuffer: -1 }),
    (e: unknown) => e instanceof InvalidOptionError && /meshFetch\.replayBuffer: must be an integer from 0/.test(e.message),
  );
  assert.throws(() => meshFetch({ endpoints: ['nope'] }), /meshFetch\.endpoints\.0/);
});

test('meshRequest: undici request through the same stack', async () => {
  const s = await server([503, 200]);
  const request = meshRequest({ retry: fast, registry: false });
  const res = await request(`${s.url}/r`);
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'reply 200 #2');
  const post = await server([503, 200]);
  const refused = await request(`${post.url}/r`, { method: 'POST', body: 'x' });
  assert.equal(refused.statusCode, 503);
  await refused.body.dump();
  assert.equal(post.seen.length, 1);
  await request.close();
});

test('undici interceptor: an opted-in dispatcher retries for plain fetch', async () => {
  const s = await server([503, 502, 200]);
  const interceptor = meshInterceptor({ retry: fast, timeout: '5s', registry: false });
  const agent = new Agent().compose(interceptor);
  const res = await fetch(`${s.url}/i`, { dispatcher: agent } as unknown as RequestInit);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply 200 #3');
  assert.equal(s.seen.length, 3);
  const left = Number(s.seen[2]?.headers['x-sidecarless-deadline-ms']);
  assert.ok(left > 4000 && left <= 5000, `deadline header ${left}`);
  await interceptor.close();
  await agent.close();
});
