import assert from 'node:assert/strict';
import { getEventListeners, once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { CallContext, CancelledError, ServiceBuilder } from '../../src/index.js';

test('the signal is lazy: no deadline and no caller signal means a signal that never fires', () => {
  const seen = new Set<AbortSignal>();
  for (let i = 0; i < 1000; i++) {
    const signal = new CallContext().signal;
    assert.equal(signal.aborted, false);
    seen.add(signal);
  }
  // Shared between calls (no controller per call), but renewed so listeners cannot pile up.
  assert.ok(seen.size >= 2 && seen.size <= 6, `${seen.size} distinct signals for 1000 calls`);
});

test('fetch through a stack with no deadline leaves no pile of listeners on a shared signal', async () => {
  const server = createServer((_req, res) => res.end('ok'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const signals = new Set<AbortSignal>();
  const get = new ServiceBuilder({ registry: false }).retry({ attempts: 1 }).service(async (_i: number, ctx) => {
    signals.add(ctx.signal);
    return (await fetch(url, { signal: ctx.signal })).text();
  });
  try {
    for (let i = 0; i < 600; i++) assert.equal(await get(i), 'ok');
    const most = Math.max(...[...signals].map((signal) => getEventListeners(signal, 'abort').length));
    assert.ok(most <= 256, `at most 256 listeners on any one signal (saw ${most})`);
  } finally {
    await get.close();
    server.closeAllConnections();
    server.close();
  }
});

test('with no deadline the caller signal is handed through as is', () => {
  const caller = new AbortController();
  const ctx = new CallContext(caller.signal);
  assert.equal(ctx.signal, caller.signal);
});

test('a deadline makes an own signal linked to the caller; dispose removes the listener', () => {
  const caller = new AbortController();
  let listeners = 0;
  const add = caller.signal.addEventListener.bind(caller.signal);
  const remove = caller.signal.removeEventListener.bind(caller.signal);
  caller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
    listeners++;
    add(...args);
  }) as typeof add;
  caller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    listeners--;
    remove(...args);
  }) as typeof remove;
  const ctx = new CallContext(caller.signal);
  ctx.deadline = 100;
  const signal = ctx.signal;
  assert.notEqual(signal, caller.signal);
  assert.equal(listeners, 1);
  ctx.dispose();
  assert.equal(listeners, 0);
  assert.equal(signal.aborted, false);
});

test('the caller aborting cancels the call, wakes a sleeper and reaches the callee signal', () => {
  const caller = new AbortController();
  const ctx = new CallContext(caller.signal);
  ctx.deadline = 100;
  const signal = ctx.signal;
  let woken = 0;
  ctx.setWaker(() => woken++);
  caller.abort(new Error('user went away'));
  assert.equal(ctx.cancelled, true);
  assert.equal(signal.aborted, true);
  assert.equal((signal.reason as Error).message, 'user went away');
  assert.equal(woken, 1);
});

test('abortAttempt ends one attempt; beginAttempt gives the next a fresh signal', () => {
  const ctx = new CallContext();
  ctx.deadline = 1000;
  const first = ctx.signal;
  ctx.abortAttempt(new Error('per-try timeout'));
  assert.equal(first.aborted, true);
  assert.equal(ctx.cancelled, false, 'the call goes on');
  ctx.beginAttempt(2);
  assert.equal(ctx.attempt, 2);
  assert.equal(ctx.signal.aborted, false);
  assert.notEqual(ctx.signal, first);
});

test('a cancelled call keeps its signal aborted across attempts, with the reason', () => {
  const ctx = new CallContext();
  ctx.cancel();
  ctx.beginAttempt(2);
  assert.equal(ctx.signal.aborted, true);
  assert.ok(ctx.cancelReason instanceof CancelledError);
});

test('forks share deadline and attributes, have their own signal, and follow a cancel', () => {
  const ctx = new CallContext();
  ctx.deadline = 500;
  ctx.attributes.tenant = 'a';
  const child = ctx.fork();
  assert.equal(child.deadline, 500);
  assert.equal(child.attributes.tenant, 'a');
  const childSignal = child.signal;
  child.abortAttempt(new Error('lost the race'));
  assert.equal(childSignal.aborted, true);
  assert.equal(ctx.signal.aborted, false, 'aborting a fork leaves the parent alone');
  const other = ctx.fork();
  ctx.cancel();
  assert.equal(other.cancelled, true);
  ctx.release(child);
  ctx.release(other);
});
