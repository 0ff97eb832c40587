import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meshFetch, meshRequest } from '../../../src/integrations/fetch/index.js';
import type { RetryOptions } from '../../../src/layers/retry/index.js';
import { serveOnLoopback } from '../../support/loopback.js';

// Routes are matched on the path of every kind of input fetch takes — a string, a URL, a
// Request — and a call never throws synchronously: a bad input is a rejected promise.

const fast: RetryOptions = { attempts: 2, backoff: { base: '1ms', jitter: 'none' }, budget: false };

/** A loopback server answering from a queue of statuses (200 once empty), recording each request. */
async function loopback(t: { after(fn: () => unknown): void }, statuses: number[]) {
  const seen: string[] = [];
  return {
    url: await serveOnLoopback(t, async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      seen.push(`${req.method} ${req.url} ${body}`.trimEnd());
      res.writeHead(statuses.shift() ?? 200).end();
    }),
    seen,
  };
}

function routed(t: { after(fn: () => unknown): void }) {
  const fetch = meshFetch({
    retry: fast,
    registry: false,
    routes: [{ name: 'orders', method: 'POST', path: '/orders', retryNonIdempotent: true }],
  });
  t.after(() => fetch.close());
  return fetch;
}

test('routes match a Request input by its URL, with or without a body', async (t) => {
  const s = await loopback(t, [503, 200, 503]);
  const fetch = routed(t);
  const bare = await fetch(new Request(`${s.url}/orders/1`, { method: 'POST' }));
  assert.equal(bare.status, 200, 'the route allowed the POST to be retried');
  const withBody = await fetch(new Request(`${s.url}/orders/2`, { method: 'POST', body: 'x' }));
  assert.equal(withBody.status, 200);
  assert.deepEqual(s.seen, ['POST /orders/1', 'POST /orders/1', 'POST /orders/2 x', 'POST /orders/2 x']);
  const other = await fetch(new Request(`${s.url}/users/1`, { method: 'POST' }));
  assert.equal(other.status, 200);
  assert.equal(s.seen.length, 5);
});

test('routes match a URL input and a request that is not routed is not retried', async (t) => {
  const s = await loopback(t, [503, 200, 503]);
  const fetch = routed(t);
  const res = await fetch(new URL(`${s.url}/orders/3?x=1`), { method: 'POST' });
  assert.equal(res.status, 200);
  const other = await fetch(new Request(`${s.url}/users/1`, { method: 'POST' }));
  assert.equal(other.status, 503, 'no route: the POST is not retried');
  assert.deepEqual(s.seen, ['POST /orders/3?x=1', 'POST /orders/3?x=1', 'POST /users/1']);
});

test('a call never throws synchronously: an input that is not a URL is a rejected promise', async (t) => {
  const fetch = routed(t);
  const balanced = meshFetch({ endpoints: ['http://127.0.0.1:1'], registry: false });
  const request = meshRequest({ endpoints: ['http://127.0.0.1:1'], registry: false });
  t.after(() => Promise.all([balanced.close(), request.close()]));
  for (const call of [() => fetch('not a url'), () => balanced('not a url'), () => request('not a url')]) {
    let pending: Promise<unknown> | undefined;
    assert.doesNotThrow(() => {
      pending = call();
    });
    await assert.rejects(pending as Promise<unknown>, TypeError);
  }
});
