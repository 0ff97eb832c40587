import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/service-builder.js';
import { meshFetch, meshRequest } from '../../../src/integrations/fetch/index.js';
import { serveOnLoopback } from '../../support/loopback.js';
import { eventually } from './eventually.js';

// A stream body of a request that will never be retried (a POST by default, or any with retries
// off) is not read into the replay buffer first: it goes to the server as it is produced, and a
// body that never ends cannot hold the call outside its timeout.

interface Received {
  /** Bytes received so far, as they arrive. */
  bytes: Buffer[];
  ended: boolean;
}

/** A loopback server that records request bytes as they arrive and, once a body ends, echoes it after `delayMs`. */
async function loopback(t: { after(fn: () => unknown): void }, delayMs = 0) {
  const received: Received[] = [];
  return {
    url: await serveOnLoopback(t, (req: IncomingMessage, res: ServerResponse) => {
      const entry: Received = { bytes: [], ended: false };
      received.push(entry);
      req.on('data', (chunk: Buffer) => entry.bytes.push(chunk));
      req.on('error', () => {});
      req.on('end', () => {
        entry.ended = true;
        setTimeout(() => res.end(Buffer.concat(entry.bytes)), delayMs);
      });
    }),
    received,
  };
}

const within = <T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> =>
  Promise.race([promise, new Promise<T>((resolve) => setTimeout(resolve, ms, fallback).unref())]);

const settled = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'resolved',
    (error: unknown) => error,
  );

/** A body stream the test feeds and ends by hand. */
function openStream(first: string) {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      c.enqueue(new TextEncoder().encode(first));
    },
  });
  return { stream, push: (text: string) => controller.enqueue(new TextEncoder().encode(text)), end: () => controller.close() };
}

/** The same as a Node stream, for undici's `request`. */
function openIterable(first: string) {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from(first);
    await gate;
    yield Buffer.from(' and the rest');
  }
  return { body: Readable.from(body()), end: release };
}

const received = (r: Received | undefined): string => Buffer.concat(r?.bytes ?? []).toString();

test('meshFetch: a POST whose stream body never ends settles at the timeout', async (t) => {
  const s = await loopback(t);
  const fetch = meshFetch({ timeout: '200ms', registry: false });
  t.after(() => fetch.close());
  const { stream } = openStream('hello');
  const outcome = await within(
    settled(fetch(`${s.url}/upload`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)),
    2000,
    'still pending',
  );
  assert.equal((outcome as Error).name, 'TimeoutError');
});

test("meshFetch: a POST whose stream body never ends settles at the caller's abort", async (t) => {
  const s = await loopback(t);
  const fetch = meshFetch({ registry: false });
  t.after(() => fetch.close());
  const { stream } = openStream('hello');
  const pending = settled(
    fetch(`${s.url}/upload`, { method: 'POST', body: stream, duplex: 'half', signal: AbortSignal.timeout(200) } as RequestInit),
  );
  const outcome = await within(pending, 2000, 'still pending');
  assert.equal((outcome as Error).name, 'TimeoutError');
});

test('meshFetch: a body that will not be retried is streamed to the server, not buffered first', async (t) => {
  const s = await loopback(t);
  const byDefault = meshFetch({ registry: false });
  const noRetry = meshFetch({ retry: false, registry: false });
  t.after(() => Promise.all([byDefault.close(), noRetry.close()]));
  for (const [fetch, method] of [
    [byDefault, 'POST'],
    [noRetry, 'PUT'],
  ] as const) {
    const { stream, push, end } = openStream('first ');
    const pending = fetch(`${s.url}/upload`, { method, body: stream, duplex: 'half' } as RequestInit);
    const n = s.received.length;
    assert.equal(
      await eventually(() => received(s.received[n]) === 'first '),
      true,
      `${method}: the server got the first bytes before the body ended`,
    );
    push('second');
    end();
    const res = await pending;
    assert.equal(await res.text(), 'first second');
  }
});

test('meshRequest: a POST whose stream body never ends settles at the timeout', async (t) => {
  const s = await loopback(t);
  const request = meshRequest({ timeout: '200ms', registry: false });
  t.after(() => request.close());
  const { body } = openIterable('hello');
  const outcome = await within(settled(request(`${s.url}/upload`, { method: 'POST', body })), 2000, 'still pending');
  assert.equal((outcome as Error).name, 'TimeoutError');
});

test('meshRequest: a body that will not be retried is streamed to the server, not buffered first', async (t) => {
  const s = await loopback(t);
  const request = meshRequest({ registry: false });
  t.after(() => request.close());
  const { body, end } = openIterable('first');
  const pending = request(`${s.url}/upload`, { method: 'POST', body });
  assert.equal(await eventually(() => received(s.received[0]) === 'first'), true, 'the server got the first bytes before the body ended');
  end();
  const res = await pending;
  assert.equal(await res.body.text(), 'first and the rest');
});

test('meshRequest: with a hedge above, a POST body streamed through is sent once', async (t) => {
  const s = await loopback(t, 200);
  const request = meshRequest({ registry: false, builder: new ServiceBuilder().hedge({ delay: '50ms', budget: false }) });
  t.after(() => request.close());
  let hedges = 0;
  request.events.on('hedge', () => hedges++);
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from('{"id":1}');
  }
  const res = await request(`${s.url}/orders`, { method: 'POST', body: Readable.from(body()) });
  assert.equal(await res.body.text(), '{"id":1}');
  assert.equal(hedges, 1, 'a hedge was due');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(s.received.map(received), ['{"id":1}'], 'the consumed body was not sent again');
});
