import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { Agent, type Dispatcher } from 'undici';
import { ServiceBuilder } from '../../../src/builder/service-builder.js';
import { meshFetch, meshInterceptor } from '../../../src/integrations/fetch/index.js';
import { serveOnLoopback } from '../../support/loopback.js';

// A hedge above the fetch integrations, with no timeout anywhere: the loser's request must be
// aborted on the wire, and a body that can be sent once only must not go out twice.

interface Seen {
  body: Buffer;
  /** Resolves true if the client closed the connection before the response was written. */
  aborted: Promise<boolean>;
}

/** A loopback server answering request `n` as `handle(n)` says: hold it open, or reply after a delay. */
async function loopback(t: { after(fn: () => unknown): void }, handle: (n: number) => { hold: true } | { delayMs: number }) {
  const seen: Seen[] = [];
  return {
    url: await serveOnLoopback(t, async (req: IncomingMessage, res: ServerResponse) => {
      const n = seen.length;
      const entry: Seen = {
        body: Buffer.alloc(0),
        aborted: new Promise((resolve) => res.on('close', () => resolve(!res.writableEnded))),
      };
      seen.push(entry);
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of req) chunks.push(chunk as Buffer);
      } catch {
        return;
      }
      entry.body = Buffer.concat(chunks);
      const how = handle(n);
      if ('hold' in how) return;
      await new Promise((r) => setTimeout(r, how.delayMs));
      if (!res.destroyed) res.end(`reply #${n + 1}`);
    }),
    seen,
  };
}

const within = <T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> =>
  Promise.race([promise, new Promise<T>((resolve) => setTimeout(resolve, ms, fallback).unref())]);

const hedged = () => new ServiceBuilder().hedge({ delay: '50ms', budget: false });

function interceptorAgent(
  t: { after(fn: () => unknown): void },
  options: Parameters<typeof meshInterceptor>[0],
  agentOptions?: Agent.Options,
) {
  const interceptor = meshInterceptor({ registry: false, builder: hedged(), ...options });
  const agent: Dispatcher = new Agent(agentOptions).compose(interceptor);
  t.after(async () => {
    await interceptor.close();
    await agent.close();
  });
  return { interceptor, agent };
}

test('interceptor: the hedge that lost is aborted on the wire, with no timeout configured', async (t) => {
  const s = await loopback(t, (n) => (n === 0 ? { hold: true } : { delayMs: 0 }));
  const { agent } = interceptorAgent(t, { retry: false });
  const res = await fetch(`${s.url}/slow`, { dispatcher: agent } as unknown as RequestInit);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply #2');
  assert.equal(s.seen.length, 2);
  assert.equal(await within(s.seen[0]?.aborted as Promise<boolean>, 2000, false), true, 'the held first request was aborted');
});

test("interceptor: the caller's abort, with no deadline, aborts every hedged request on the wire", async (t) => {
  const s = await loopback(t, () => ({ hold: true }));
  const { agent } = interceptorAgent(t, { retry: false });
  const controller = new AbortController();
  const pending = fetch(`${s.url}/held`, { dispatcher: agent, signal: controller.signal } as unknown as RequestInit);
  while (s.seen.length < 2) await new Promise((r) => setTimeout(r, 5));
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  const aborted = await Promise.all(s.seen.map((r) => within(r.aborted, 2000, false)));
  assert.deepEqual(aborted, [true, true]);
});

test('interceptor: a hedge aborted while queued for a connection is never sent', async (t) => {
  const s = await loopback(t, () => ({ hold: true }));
  // One connection: the hedge waits behind the held first request, not yet started.
  const { agent, interceptor } = interceptorAgent(t, { retry: false }, { connections: 1 });
  let hedges = 0;
  interceptor.events.on('hedge', () => hedges++);
  const controller = new AbortController();
  const pending = fetch(`${s.url}/held`, { dispatcher: agent, signal: controller.signal } as unknown as RequestInit);
  while (hedges === 0 || s.seen.length === 0) await new Promise((r) => setTimeout(r, 5));
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  assert.equal(await within(s.seen[0]?.aborted as Promise<boolean>, 2000, false), true, 'the first request was aborted');
  // Once the first connection is gone, a hedge that missed the abort would go out now.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(s.seen.length, 1, 'the queued hedge was not sent');
});

test('interceptor: with a hedge above, a body over the replay buffer is sent once, whole', async (t) => {
  const s = await loopback(t, () => ({ delayMs: 200 }));
  const { agent, interceptor } = interceptorAgent(t, {});
  let hedges = 0;
  interceptor.events.on('hedge', () => hedges++);
  const big = new Uint8Array(70 * 1024).map((_, i) => i % 251);
  const res = await fetch(`${s.url}/big`, { method: 'PUT', body: big, dispatcher: agent } as unknown as RequestInit);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply #1');
  // Give a second request time to reach the server, if one was (wrongly) sent.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.seen.length, 1, 'the drained stream was not sent again');
  assert.deepEqual(s.seen[0]?.body, Buffer.from(big));
  assert.equal(hedges, 1, 'a hedge was due');
});

test('interceptor: with a hedge above, a POST body streamed through unbuffered is sent once', async (t) => {
  const s = await loopback(t, () => ({ delayMs: 200 }));
  const { agent, interceptor } = interceptorAgent(t, {});
  let hedges = 0;
  interceptor.events.on('hedge', () => hedges++);
  const res = await fetch(`${s.url}/orders`, { method: 'POST', body: '{"id":1}', dispatcher: agent } as unknown as RequestInit);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply #1');
  assert.equal(hedges, 1, 'a hedge was due');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(
    s.seen.map((r) => r.body.toString()),
    ['{"id":1}'],
    'the consumed body was not sent again',
  );
});

test('meshFetch: with a hedge above, a body over the replay buffer reaches fetch once', async (t) => {
  const s = await loopback(t, () => ({ delayMs: 200 }));
  let calls = 0;
  const fetch = meshFetch({
    registry: false,
    builder: hedged(),
    fetch: (input, init) => {
      calls++;
      return globalThis.fetch(input, init);
    },
  });
  t.after(() => fetch.close());
  let hedges = 0;
  fetch.events.on('hedge', () => hedges++);
  const big = new Uint8Array(70 * 1024).map((_, i) => i % 251);
  const res = await fetch(`${s.url}/big`, { method: 'PUT', body: new Blob([big]).stream(), duplex: 'half' } as RequestInit);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'reply #1');
  assert.equal(hedges, 1, 'a hedge was due');
  assert.equal(calls, 1, 'the hedge did not hand the drained stream to fetch');
  assert.equal(s.seen.length, 1);
  assert.deepEqual(s.seen[0]?.body, Buffer.from(big));
});

test('meshFetch: the hedge that lost is aborted on the wire, with no timeout configured', async (t) => {
  const s = await loopback(t, (n) => (n === 0 ? { hold: true } : { delayMs: 0 }));
  const fetch = meshFetch({ registry: false, retry: false, builder: hedged() });
  t.after(() => fetch.close());
  const res = await fetch(`${s.url}/slow`);
  assert.equal(await res.text(), 'reply #2');
  assert.equal(await within(s.seen[0]?.aborted as Promise<boolean>, 2000, false), true, 'the held first request was aborted');
});
