import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MockService, VirtualClock } from '../../src/testing/index.js';

test('the virtual clock fires timers in order, only when advanced', async () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  clock.setTimer(() => log.push('b'), 20);
  clock.setTimer(() => log.push('a'), 10);
  const cancelled = clock.setTimer(() => log.push('never'), 15);
  clock.clearTimer(cancelled);
  clock.setTimer(() => log.push('a2'), 10);
  await clock.advance(9);
  assert.deepEqual(log, []);
  await clock.advance(11);
  assert.deepEqual(log, ['a', 'a2', 'b']);
  assert.equal(clock.now(), 20);
  assert.equal(clock.pendingTimers, 0);
});

test('settle advances time until a promise settles, and says when it never does', async () => {
  const clock = new VirtualClock();
  const slow = new Promise((resolve) => clock.setTimer(() => resolve('late'), 10_000));
  assert.equal(await clock.settle(slow), 'late');
  assert.equal(clock.now(), 10_000);
  await assert.rejects(clock.settle(new Promise(() => {}), 100), /did not settle within 100ms/);
});

test('the mock answers scripted calls and hands the rest to the test', async () => {
  const mock = new MockService<[string], string>().script({ value: 'first' }, 'hold', { error: new Error('third') });
  const fn = mock.fn as (id: string, ctx: unknown) => Promise<string>;
  const { CallContext } = await import('../../src/index.js');
  assert.equal(await fn('a', new CallContext()), 'first');
  const held = fn('b', new CallContext());
  await assert.rejects(fn('c', new CallContext()), /third/);
  const call = await mock.nextCall();
  assert.deepEqual(call.req, ['b']);
  call.respond('second');
  assert.equal(await held, 'second');
  assert.throws(() => call.fail(new Error('again')), /already settled/);
  assert.equal(mock.pending.length, 0);
});
