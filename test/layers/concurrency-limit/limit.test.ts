import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CallContext,
  CancelledError,
  type ConcurrencyLimitService,
  ConfigStore,
  concurrencyLimit,
  live,
  OverloadedError,
  ServiceClosedError,
  TimeoutError,
} from '../../../src/index.js';
import { flushMicrotasks } from '../../../src/testing/index.js';
import { answer, observe, setup, setupLayer } from '../circuit-breaker/helpers.js';

type Limit = ConcurrencyLimitService<unknown, unknown>;

test('at the limit with no queue, a call is shed at once; the admitted path sets no timer', async () => {
  const s = setupLayer<Limit>(concurrencyLimit({ max: 2 }));
  const a = observe(s.fn('a'));
  const b = observe(s.fn('b'));
  assert.equal(s.clock.pendingTimers, 0);
  assert.equal(s.fn.ready(), false);
  const error = await s.fn('c').catch((e: unknown) => e);
  assert.ok(error instanceof OverloadedError);
  assert.equal(error.layer, 'concurrency-limit');
  assert.equal(s.mock.calls.length, 2);
  await answer(s.mock, 1);
  assert.equal(s.fn.ready(), true);
  await answer(s.mock, 1);
  assert.deepEqual([a.settled, b.settled, s.service.inflight], [1, 1, 0]);
});

test('queued calls run in FIFO order as permits free; a full queue sheds', async () => {
  const s = setupLayer<Limit>(concurrencyLimit({ max: 1, queue: 2 }));
  const calls = ['a', 'b', 'c'].map((x) => observe(s.fn(x)));
  assert.equal(s.service.queued, 2);
  await assert.rejects(s.fn('d'), /concurrency limit queue full/);
  const order: string[] = [];
  for (let i = 0; i < 3; i++) {
    const call = await s.mock.nextCall();
    order.push(call.req[0]);
    call.respond(call.req[0]);
    await flushMicrotasks();
  }
  assert.deepEqual(order, ['a', 'b', 'c']);
  assert.deepEqual(
    calls.map((c) => [c.settled, c.value]),
    [
      [1, 'a'],
      [1, 'b'],
      [1, 'c'],
    ],
  );
});

test('a queued call leaves the queue when a timeout above fires (the waker), with no timer left', async () => {
  const s = setup((b) => b.timeout('100ms').concurrencyLimit({ max: 1, queue: 1 }));
  const a = observe(s.fn('a'));
  const b = observe(s.fn('b'));
  await s.clock.advance(100);
  assert.ok(b.error instanceof TimeoutError);
  assert.equal(s.fn.describe()[1]?.state?.queued, 0);
  assert.ok(a.error instanceof TimeoutError, 'the admitted one timed out too');
  (await s.mock.nextCall()).respond('late');
  await flushMicrotasks();
  assert.equal(s.fn.describe()[1]?.state?.inflight, 0, 'its permit came back when it settled');
  assert.equal(s.mock.calls.length, 1, 'the timed-out waiter never reached the backend');
  await s.fn.close();
  assert.equal(s.clock.pendingTimers, 0);
});

test('a deadline no layer watches is enforced by the queue itself', async () => {
  const s = setupLayer<Limit>(concurrencyLimit({ max: 1, queue: 1 }));
  observe(s.fn('a'));
  const ctx = new CallContext(undefined, 50);
  const b = observe(s.service.call(['b', undefined], ctx));
  assert.equal(s.clock.pendingTimers, 1, 'one timer, for the queued call only');
  await s.clock.advance(50);
  assert.ok(b.error instanceof TimeoutError);
  assert.equal((b.error as TimeoutError).layer, 'concurrency-limit');
  assert.equal(s.clock.pendingTimers, 0);
  const late = await s.service.call(['c', undefined], new CallContext(undefined, 40)).catch((e: unknown) => e);
  assert.ok(late instanceof TimeoutError, 'a deadline already passed is refused at once');
});

test('maxWait bounds the queue wait below the deadline', async () => {
  const s = setup((b) => b.timeout('1s').concurrencyLimit({ max: 1, queue: 1, maxWait: '30ms' }));
  observe(s.fn('a'));
  const b = observe(s.fn('b'));
  await s.clock.advance(29);
  assert.equal(b.settled, 0);
  await s.clock.advance(1);
  assert.ok(b.error instanceof OverloadedError);
  assert.match((b.error as Error).message, /queue wait exceeded 30ms/);
  await answer(s.mock, 1);
  await s.fn.close();
  assert.equal(s.clock.pendingTimers, 0);
});

test("the caller's signal takes a call out of the queue, and its permit is not used", async () => {
  const s = setupLayer<Limit>(concurrencyLimit({ max: 1, queue: 2 }));
  observe(s.fn('a'));
  const controller = new AbortController();
  const b = observe(s.service.call(['b', undefined], new CallContext(controller.signal)));
  const c = observe(s.fn('c'));
  controller.abort(new CancelledError());
  await flushMicrotasks();
  assert.ok(b.error instanceof CancelledError);
  assert.equal(s.service.queued, 1);
  await answer(s.mock, 1); // a
  await answer(s.mock, 1); // c, not b
  assert.deepEqual([b.settled, c.settled, c.value], [1, 1, 'ok']);
  assert.equal(s.mock.calls.length, 2);
});

test('partitions: idle capacity is lent, freed permits go to the partition below its share', async () => {
  const s = setupLayer<Limit>(
    concurrencyLimit({
      max: 10,
      queue: 10,
      partitions: { high: 0.7, low: 0.3 },
      priority: (ctx) => ctx.attributes.priority as string | undefined,
    }),
  );
  const call = (priority: string) => {
    const ctx = new CallContext();
    ctx.attributes.priority = priority;
    return observe(s.service.call([priority, ctx], ctx));
  };
  const lows = Array.from({ length: 10 }, () => call('low')); // all 10 permits borrowed by low
  assert.equal(s.service.inflight, 10);
  const queuedLows = [call('low'), call('low'), call('low')];
  const shed = call('low'); // the low queue holds round(0.3 * 10) = 3
  await flushMicrotasks();
  assert.ok(shed.error instanceof OverloadedError);
  const highs = Array.from({ length: 5 }, () => call('high'));
  const order: string[] = [];
  for (let i = 0; i < 10; i++) (await s.mock.nextCall()).respond('ok');
  for (let i = 0; i < 8; i++) {
    const next = await s.mock.nextCall();
    order.push(next.req[0]);
    next.respond('ok');
    await flushMicrotasks();
  }
  assert.deepEqual(order, ['high', 'high', 'high', 'high', 'high', 'low', 'low', 'low']);
  for (const c of [...lows, ...queuedLows, ...highs]) assert.equal(c.settled, 1);
  assert.deepEqual(s.fn.describe()[0]?.state?.partitions, { high: { inflight: 0, queued: 0 }, low: { inflight: 0, queued: 0 } });
});

test('live parameters: raising max admits queued calls on the next call', async () => {
  const store = new ConfigStore({ initial: { max: 1 } });
  const s = setupLayer<Limit>(concurrencyLimit(live(store, (c: { max: number }) => ({ max: c.max, queue: 5 }))));
  observe(s.fn('a'));
  const b = observe(s.fn('b'));
  assert.equal(s.service.queued, 1);
  store.swap({ max: 3 }, '2');
  const c = observe(s.fn('c'));
  await flushMicrotasks();
  assert.equal(s.service.inflight, 3);
  await answer(s.mock, 3);
  assert.deepEqual([b.settled, c.settled], [1, 1]);
});

test('close() fails queued calls and leaves no timer', async () => {
  const s = setupLayer<Limit>(concurrencyLimit({ max: 1, queue: 1, maxWait: '1s' }));
  const a = observe(s.fn('a'));
  const b = observe(s.fn('b'));
  assert.equal(s.clock.pendingTimers, 1);
  await s.fn.close();
  await flushMicrotasks();
  assert.ok(b.error instanceof ServiceClosedError);
  assert.equal(s.clock.pendingTimers, 0);
  await answer(s.mock, 1);
  assert.equal(a.settled, 1);
  await assert.rejects(s.fn('c'), ServiceClosedError);
});

test('options are checked at build time', () => {
  assert.throws(() => concurrencyLimit({ max: 0 }), /concurrencyLimit\.max: must be an integer from 1 to 1000000 \(got 0\)/);
  assert.throws(() => concurrencyLimit({ max: 1, queue: -1 }), /concurrencyLimit\.queue/);
  assert.throws(
    () => concurrencyLimit({ max: 4, partitions: { a: 0.8, b: 0.5 }, priority: () => 'a' }),
    /summing to at most 1 \(got 1.3\)/,
  );
  assert.throws(() => concurrencyLimit({ max: 4, partitions: { a: 1 } }), /concurrencyLimit\.priority: is required/);
  assert.throws(() => concurrencyLimit({ max: 4, maxWait: 'soon' as never }), /concurrencyLimit\.maxWait: must be a duration/);
});
