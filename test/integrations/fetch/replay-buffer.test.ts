import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Agent } from 'undici';
import { ServiceBuilder } from '../../../src/builder/service-builder.js';
import type { CallContext } from '../../../src/core/context.js';
import type { Service } from '../../../src/core/service.js';
import { meshFetch, meshInterceptor, meshRequest } from '../../../src/integrations/fetch/index.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';
import { echoServer, heldStream } from './bodies.js';
import { eventually } from './eventually.js';
import '../../support/leaks.js';

// A stream body of a request that may be retried (a PUT, or a POST with retryNonIdempotent) is
// read into the replay buffer before it is sent. The read is part of the call: a body that never
// ends must not hold the call past the caller's abort or the mesh's timeout, and the read stops.

/** A Node stream body that sends one chunk and then never ends, for undici's `request`; says when the second read waits. */
function endlessReadable() {
  const state = { waiting: false };
  let sent = false;
  const stream = new Readable({
    read() {
      if (!sent) this.push('hello');
      else state.waiting = true;
      sent = true;
    },
  });
  return { stream, state };
}

/** The promise's error, or `'resolved'`, or `'still pending'` after 2 s. */
const outcomeOf = (promise: Promise<unknown>): Promise<unknown> =>
  Promise.race([
    promise.then(
      () => 'resolved',
      (error: unknown) => error,
    ),
    new Promise((resolve) => setTimeout(resolve, 2000, 'still pending').unref()),
  ]);

const virtualTimeout = (clock: VirtualClock) => ({ builder: new ServiceBuilder({ clock }), timeout: '1s', registry: false }) as const;

test("meshFetch: the caller's abort stops a PUT whose stream body never ends while it is buffered", async (t) => {
  const s = await echoServer(t);
  const fetch = meshFetch({ registry: false });
  t.after(() => fetch.close());
  const { stream, state } = heldStream('hello');
  const controller = new AbortController();
  const pending = fetch(`${s.url}/upload`, { method: 'PUT', body: stream, duplex: 'half', signal: controller.signal } as RequestInit);
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  controller.abort();
  const outcome = await outcomeOf(pending);
  assert.equal((outcome as Error).name, 'AbortError');
  assert.equal(state.cancelled, true, 'the read was cancelled');
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, "no listener left on the caller's signal");
  assert.equal(s.requests, 0);
});

test('meshFetch: the timeout stops a PUT whose stream body never ends while it is buffered (virtual time)', async (t) => {
  const s = await echoServer(t);
  const clock = new VirtualClock();
  const fetch = meshFetch(virtualTimeout(clock));
  t.after(() => fetch.close());
  const { stream, state } = heldStream('hello');
  const outcome = outcomeOf(fetch(`${s.url}/upload`, { method: 'PUT', body: stream, duplex: 'half' } as RequestInit));
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  await clock.advance(1000);
  assert.equal(((await outcome) as Error).name, 'TimeoutError');
  assert.equal(state.cancelled, true, 'the read was cancelled');
  assert.equal(clock.pendingTimers, 0, 'no timer left');
  assert.equal(s.requests, 0);
});

test("meshRequest: the caller's abort stops a retryable POST whose stream body never ends while it is buffered", async (t) => {
  const s = await echoServer(t);
  const request = meshRequest({ retryNonIdempotent: true, registry: false });
  t.after(() => request.close());
  const { stream, state } = endlessReadable();
  const controller = new AbortController();
  const pending = request(`${s.url}/orders`, { method: 'POST', body: stream, signal: controller.signal });
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  const reason = new Error('caller gave up');
  controller.abort(reason);
  assert.equal(await outcomeOf(pending), reason);
  assert.equal(stream.destroyed, true, 'the read was cancelled');
  assert.equal(s.requests, 0);
});

test('meshRequest: the timeout stops a PUT whose stream body never ends while it is buffered (virtual time)', async (t) => {
  const s = await echoServer(t);
  const clock = new VirtualClock();
  const request = meshRequest(virtualTimeout(clock));
  t.after(() => request.close());
  const { stream, state } = endlessReadable();
  const outcome = outcomeOf(request(`${s.url}/upload`, { method: 'PUT', body: stream }));
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  await clock.advance(1000);
  assert.equal(((await outcome) as Error).name, 'TimeoutError');
  assert.equal(stream.destroyed, true, 'the read was cancelled');
  assert.equal(s.requests, 0);
});

/** An agent composed with a meshed interceptor, and a PUT of `stream` through it. */
function interceptorPut(t: { after(fn: () => unknown): void }, url: string, options: Parameters<typeof meshInterceptor>[0]) {
  const interceptor = meshInterceptor(options);
  const agent = new Agent().compose(interceptor);
  t.after(async () => {
    await interceptor.close();
    await agent.close();
  });
  return (stream: ReadableStream<Uint8Array>, signal?: AbortSignal) =>
    fetch(`${url}/upload`, { method: 'PUT', body: stream, duplex: 'half', signal, dispatcher: agent } as unknown as RequestInit);
}

test("interceptor: the caller's abort settles a PUT whose stream body never ends while it is buffered, with no timeout", async (t) => {
  const s = await echoServer(t);
  // fetch rejects at the abort of its own accord: what must end is the call in the stack.
  const settled: unknown[] = [];
  const probe = new ServiceBuilder().layer({
    name: 'probe',
    wrap: (inner: Service<unknown, unknown>) => ({
      call: (req: unknown, ctx: CallContext) => {
        const answer = inner.call(req, ctx);
        answer.catch((error: unknown) => settled.push(error));
        return answer;
      },
    }),
  });
  const put = interceptorPut(t, s.url, { registry: false, builder: probe });
  const { stream, state } = heldStream('hello');
  const controller = new AbortController();
  const outcome = outcomeOf(put(stream, controller.signal));
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  controller.abort();
  assert.equal(((await outcome) as Error).name, 'AbortError');
  assert.equal(await eventually(() => settled.length > 0), true, 'the call in the stack settled');
  assert.equal((settled[0] as Error).name, 'AbortError');
  // The caller's stream itself stays pending: fetch reads it in a generator of its own, which a
  // dispatcher cannot stop in the middle of a read (fetch's abort does not cancel it either).
  assert.equal(s.requests, 0);
});

test('interceptor: the timeout settles a PUT whose stream body never ends while it is buffered (virtual time)', async (t) => {
  const s = await echoServer(t);
  const clock = new VirtualClock();
  const put = interceptorPut(t, s.url, virtualTimeout(clock));
  const { stream, state } = heldStream('hello');
  const outcome = outcomeOf(put(stream));
  assert.equal(await eventually(() => state.waiting), true, 'the body is being read');
  await clock.advance(1000);
  const error = (await outcome) as Error;
  assert.equal((error.cause as Error | undefined)?.name, 'TimeoutError', `fetch failed with the timeout: ${error}`);
  assert.equal(s.requests, 0);
});
