import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request as undiciRequest } from 'undici';
import { meshFetch, meshRequest } from '../../../src/integrations/fetch/index.js';
import { serveOnLoopback } from '../../support/loopback.js';

// A call that nothing can abort (no caller's signal, no deadline) must reach fetch / undici with
// the caller's own options: the context's never-firing signal is replaced every 256 hand-outs,
// and every one of them must be recognised, not only the first.

const CALLS = 1000;

function loopback(t: { after(fn: () => unknown): void }): Promise<string> {
  return serveOnLoopback(t, (_req, res) => res.end('ok'));
}

test(`meshFetch: ${CALLS} calls with no signal and no deadline all pass the caller's init through`, async (t) => {
  const url = await loopback(t);
  let own = 0;
  let expected: RequestInit | undefined;
  const fetch = meshFetch({
    retry: false,
    registry: false,
    deadlineHeader: false,
    fetch: (input, init) => {
      if (init === expected) own++;
      return globalThis.fetch(input, init);
    },
  });
  t.after(() => fetch.close());
  for (let i = 0; i < CALLS; i++) {
    expected = { headers: { 'x-call': String(i) } };
    const res = await fetch(`${url}/n`, expected);
    assert.equal(await res.text(), 'ok');
  }
  assert.equal(own, CALLS);
});

test(`meshRequest: ${CALLS} calls with no signal and no deadline all pass the caller's options through`, async (t) => {
  const url = await loopback(t);
  let own = 0;
  let expected: object | undefined;
  const request = meshRequest({
    retry: false,
    registry: false,
    deadlineHeader: false,
    request: (target, options) => {
      if (options === expected) own++;
      return undiciRequest(target, options);
    },
  });
  t.after(() => request.close());
  for (let i = 0; i < CALLS; i++) {
    const options = { headers: { 'x-call': String(i) } };
    expected = options;
    const res = await request(`${url}/n`, options);
    assert.equal(await res.body.text(), 'ok');
  }
  assert.equal(own, CALLS);
});
