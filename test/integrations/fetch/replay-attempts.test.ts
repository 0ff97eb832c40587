import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createReadStream, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import { Agent } from 'undici';
import { ServiceBuilder } from '../../../src/builder/service-builder.js';
import { meshFetch, meshInterceptor, meshRequest } from '../../../src/integrations/fetch/index.js';
import type { OutboundHandle } from '../../../src/integrations/shared/outbound.js';
import { VirtualClock } from '../../../src/testing/virtual-clock.js';
import { echoServer, heldStream } from './bodies.js';
import { eventually } from './eventually.js';
import '../../support/leaks.js';

// A caller's builder may put attempts of its own above the replay buffer: a retry with a
// per-try timeout, a hedge. The stream body is the call's and is read once; an attempt that is
// abandoned while it waits for the read must leave the read (and the stream) to the attempts
// that follow, and only the call's end — the caller's abort — stops it.

/** A retry of the caller's own, above the integration's layers: one retry, at once, each try 1 s. */
const retryAbove = (clock: VirtualClock) =>
  new ServiceBuilder({ clock }).retry({ attempts: 1, perTryTimeout: '1s', backoff: () => 0, budget: false });

type Put = (url: string, body: ReadableStream<Uint8Array> | Readable, signal?: AbortSignal, method?: string) => Promise<string>;

/** Each client sends a PUT of a web stream and resolves with the response's text. */
const clients: {
  name: string;
  make(builder: ServiceBuilder, t: { after(fn: () => unknown): void }, replayBuffer?: number): [Put, OutboundHandle];
}[] = [
  {
    name: 'meshFetch',
    make(builder, _t, replayBuffer) {
      const fetch = meshFetch({ builder, registry: false, replayBuffer });
      const put: Put = async (url, body, signal, method = 'PUT') =>
        (await fetch(`${url}/upload`, { method, body, duplex: 'half', signal } as unknown as RequestInit)).text();
      return [put, fetch];
    },
  },
  {
    name: 'meshRequest',
    make(builder, _t, replayBuffer) {
      const request = meshRequest({ builder, registry: false, replayBuffer });
      const put: Put = async (url, body, signal, method = 'PUT') =>
        (await request(`${url}/upload`, { method: method as 'PUT', body: body as never, signal })).body.text();
      return [put, request];
    },
  },
  {
    name: 'interceptor',
    make(builder, t, replayBuffer) {
      const interceptor = meshInterceptor({ builder, registry: false, replayBuffer });
      const agent = new Agent().compose(interceptor);
      t.after(() => agent.close());
      const put: Put = async (url, body, signal, method = 'PUT') =>
        (await fetch(`${url}/upload`, { method, body, duplex: 'half', signal, dispatcher: agent } as unknown as RequestInit)).text();
      return [put, interceptor];
    },
  },
];

for (const client of clients) {
  test(`${client.name}: a per-try timeout above the replay buffer that fires during the read leaves the body to the retry`, async (t) => {
    const s = await echoServer(t);
    const clock = new VirtualClock();
    const [put, handle] = client.make(retryAbove(clock), t);
    t.after(() => handle.close());
    let retries = 0;
    handle.events.on('retry', () => retries++);
    const body = heldStream('first ');
    const answer = put(s.url, body.stream);
    answer.catch(() => {});
    assert.equal(await eventually(() => body.state.waiting), true, 'the body is being read');
    await clock.advance(1000);
    assert.equal(retries, 1, 'the first attempt timed out and was retried');
    assert.equal(body.state.cancelled, false, "the first attempt's timeout left the stream alone");
    body.push('second');
    body.end();
    assert.equal(await answer, 'first second', 'the retry sent the whole body');
    assert.deepEqual(s.bodies, ['first second'], 'one request, with the whole body');
    // The shared deadline timer stays armed between calls by design; closing clears it.
    await handle.close();
    assert.equal(clock.pendingTimers, 0, 'no timer left');
  });
}

test("meshFetch: with a retry and per-try timeout above the replay buffer, the caller's abort still cancels the read", async (t) => {
  const s = await echoServer(t);
  const clock = new VirtualClock();
  const [put, handle] = (clients[0] as (typeof clients)[0]).make(retryAbove(clock), t);
  t.after(() => handle.close());
  let retries = 0;
  handle.events.on('retry', () => retries++);
  const body = heldStream('first ');
  const controller = new AbortController();
  const answer = put(s.url, body.stream, controller.signal);
  answer.catch(() => {});
  assert.equal(await eventually(() => body.state.waiting), true, 'the body is being read');
  await clock.advance(1000);
  assert.equal(retries, 1, 'the second attempt waits for the read');
  const reason = new Error('caller gave up');
  controller.abort(reason);
  await assert.rejects(answer, (error) => error === reason);
  assert.equal(body.state.cancelled, true, 'the read was cancelled');
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, "no listener left on the caller's signal");
  await handle.close();
  assert.equal(clock.pendingTimers, 0, 'no timer left');
  assert.equal(s.requests, 0);
});

test('meshRequest: a hedge above the replay buffer whose first fork is abandoned still sends the whole body', async (t) => {
  const s = await echoServer(t);
  const clock = new VirtualClock();
  // Each fork gets 1 s; the hedge goes out at 500 ms, while the body is still being read.
  const builder = new ServiceBuilder({ clock }).hedge({ delay: '500ms', budget: false }).retry({ attempts: 0, perTryTimeout: '1s' });
  const [put, handle] = (clients[1] as (typeof clients)[1]).make(builder, t);
  t.after(() => handle.close());
  let hedges = 0;
  handle.events.on('hedge', () => hedges++);
  const body = heldStream('first ');
  const answer = put(s.url, body.stream);
  answer.catch(() => {});
  assert.equal(await eventually(() => body.state.waiting), true, 'the body is being read');
  await clock.advance(1000);
  assert.equal(hedges, 1, 'the hedge went out during the read');
  assert.equal(body.state.cancelled, false, "the first fork's timeout left the stream alone");
  body.push('second');
  body.end();
  assert.equal(await answer, 'first second');
  assert.deepEqual(s.bodies, ['first second']);
});

// The stream is the caller's: whatever ends the call lets it go when no attempt will send it,
// as `fetch` cancels its body when aborted — also a stream no attempt came to read, the unsent
// rest of one over the limit, a stream sent as it is (not replayable) that a layer refused, and
// one a failed request had locked.
const refuseAll = { name: 'refuse-all', wrap: () => ({ call: () => Promise.reject(new Error('refused before sending')) }) };
/** A loopback URL whose port was just free: connecting to it is refused. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}
const hops = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

// Not the interceptor: fetch hands its dispatcher a generator over the caller's stream, which
// fetch itself reads and owns.
for (const client of clients.slice(0, 2)) {
  test(`${client.name}: a stream a layer refused before sending is cancelled, replayable or not`, async (t) => {
    const s = await echoServer(t);
    for (const method of ['PUT', 'POST']) {
      const [put, handle] = client.make(new ServiceBuilder().layer(refuseAll as never), t);
      const body = heldStream('first');
      await assert.rejects(put(s.url, body.stream, undefined, method), /refused before sending/);
      assert.equal(await eventually(() => body.state.cancelled), true, `${method}: the stream was let go`);
      await handle.close();
    }
  });
}

for (const client of clients.slice(0, 2)) {
  test(`${client.name}: a call aborted before any attempt reads the body cancels the caller's stream`, async (t) => {
    const s = await echoServer(t);
    const [put, handle] = client.make(new ServiceBuilder(), t);
    t.after(() => handle.close());
    const body = heldStream('first');
    const reason = new Error('gave up before starting');
    await assert.rejects(put(s.url, body.stream, AbortSignal.abort(reason)), (error) => error === reason);
    assert.equal(await eventually(() => body.state.cancelled), true, 'the unread stream was cancelled');
    assert.equal(s.requests, 0);
  });

  test(`${client.name}: an abort landing at any point around the read going over the limit lets the stream go`, async (t) => {
    const s = await echoServer(t);
    const left: number[] = [];
    // k < 0: the abort lands -k-1 microtasks before the chunk that goes over the limit; k >= 0:
    // k microtasks after it — across the read's end, its plan's adoption and the first send.
    for (let k = -3; k < 12; k++) {
      const [put, handle] = client.make(new ServiceBuilder().retry({ attempts: 1, budget: false }), t, 4);
      const body = heldStream('ab');
      const controller = new AbortController();
      const answer = put(s.url, body.stream, controller.signal);
      answer.catch(() => {});
      assert.equal(await eventually(() => body.state.waiting), true, 'the body is being read');
      const reason = new Error('gave up at the limit');
      if (k < 0) {
        controller.abort(reason);
        await hops(-k - 1);
        body.push('cdefgh');
      } else {
        body.push('cdefgh');
        await hops(k);
        controller.abort(reason);
      }
      await assert.rejects(answer, (error) => error === reason);
      if (!(await eventually(() => body.state.cancelled))) left.push(k);
      await handle.close();
    }
    assert.deepEqual(left, [], 'the stream was let go whenever the abort landed');
  });

  test(`${client.name}: a Node stream sent past the limit by a request that failed is destroyed (its file closed)`, async (t) => {
    const file = join(tmpdir(), `sidecarless-body-${process.pid}-${client.name}.bin`);
    writeFileSync(file, Buffer.alloc(1 << 20, 97));
    const [put, handle] = client.make(new ServiceBuilder().retry({ attempts: 1, budget: false }), t);
    t.after(() => handle.close());
    const stream = createReadStream(file);
    // A port nothing listens on: the request fails after the body was claimed.
    await assert.rejects(put(await closedPortUrl(), stream));
    assert.equal(await eventually(() => stream.destroyed), true, 'the file stream was destroyed');
  });
}

test('meshFetch: a locked stream body is refused with a TypeError, as fetch refuses one', async (t) => {
  const [put, handle] = (clients[0] as (typeof clients)[0]).make(new ServiceBuilder(), t);
  t.after(() => handle.close());
  const body = heldStream('first');
  const reader = body.stream.getReader();
  await assert.rejects(put(await closedPortUrl(), body.stream), TypeError);
  reader.releaseLock();
});
