import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  type Duration,
  InvalidOptionError,
  ServiceBuilder,
  ServiceClosedError,
  TimeoutError,
} from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe } from '../../support/leaks.js';

function stack(clock: VirtualClock, timeout: Duration) {
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).timeout(timeout).service(mock.fn);
  return { mock, fn };
}

test('a call that answers in time resolves and never creates or aborts a signal', async () => {
  const clock = new VirtualClock();
  const { mock, fn } = stack(clock, '100ms');
  const outcome = observe(fn());
  const call = await mock.nextCall();
  await clock.advance(99);
  call.respond('ok');
  await clock.advance(0);
  assert.equal(outcome.value, 'ok');
  assert.equal(outcome.settled, 1);
  await clock.advance(1000);
  assert.equal(outcome.settled, 1, 'the deadline passing later changes nothing');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a call past its deadline rejects with TimeoutError and the callee signal fires', async () => {
  const clock = new VirtualClock();
  const { mock, fn } = stack(clock, '250ms');
  const outcome = observe(fn());
  const call = await mock.nextCall();
  const signal = call.ctx.signal;
  await clock.advance(249);
  assert.equal(outcome.settled, 0);
  await clock.advance(1);
  assert.equal(outcome.settled, 1);
  assert.ok(outcome.error instanceof TimeoutError);
  assert.equal((outcome.error as TimeoutError).timeoutMs, 250);
  assert.equal((outcome.error as TimeoutError).layer, 'timeout');
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, outcome.error);
  call.respond('too late'); // a late answer is ignored: the call settled once
  await clock.advance(0);
  assert.equal(outcome.settled, 1);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('the deadline propagates: inner layers see the absolute deadline, and the tighter one wins', async () => {
  const clock = new VirtualClock({ start: 1000 });
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).timeout('1s').timeout('5s').service(mock.fn);
  const outcome = observe(fn());
  const call = await mock.nextCall();
  assert.equal(call.deadline, 2000, 'the inner 5s timeout keeps the outer 1s deadline');
  await clock.advance(1000);
  assert.ok(outcome.error instanceof TimeoutError);
  await fn.close();
});

test('a deadline is restored for the layers above when the inner call settles', async () => {
  const clock = new VirtualClock();
  let seenAfter = Number.NaN;
  const inner = new ServiceBuilder({ clock, registry: false }).timeout('100ms');
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer({
      name: 'probe',
      wrap: (service) => ({
        async call(req, ctx: CallContext) {
          const result = await service.call(req, ctx);
          seenAfter = ctx.deadline;
          return result;
        },
      }),
    })
    .layer(inner.layers[0]!)
    .service(async () => 'ok');
  assert.equal(await fn(), 'ok');
  assert.equal(seenAfter, Number.POSITIVE_INFINITY);
  await fn.close();
});

test('many concurrent calls share one clock timer', async () => {
  const clock = new VirtualClock();
  const { mock, fn } = stack(clock, '100ms');
  const outcomes = Array.from({ length: 50 }, () => observe(fn()));
  await clock.advance(0);
  assert.equal(clock.pendingTimers, 1);
  for (const call of mock.pending.slice(0, 25)) call.respond('ok');
  await clock.advance(100);
  assert.equal(outcomes.filter((o) => o.value === 'ok').length, 25);
  assert.equal(outcomes.filter((o) => o.error instanceof TimeoutError).length, 25);
  assert.ok(outcomes.every((o) => o.settled === 1));
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a deadline already passed rejects at once without calling the service', async () => {
  const clock = new VirtualClock({ start: 500 });
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).timeout('1s').service(mock.fn, { context: () => ({ deadline: 400 }) });
  await assert.rejects(fn(), TimeoutError);
  assert.equal(mock.calls.length, 0);
  await fn.close();
});

test('timeout 0 disables the layer; bad values name the field and range', async () => {
  const fn = new ServiceBuilder({ registry: false }).timeout(0).service(async () => 'ok');
  assert.equal(await fn(), 'ok');
  assert.deepEqual(fn.describe()[0]?.params, { timeout: 'none' });
  assert.throws(
    () => new ServiceBuilder().timeout('soon' as never),
    (e: unknown) => e instanceof InvalidOptionError && /must be a duration/.test(e.message),
  );
  assert.throws(() => new ServiceBuilder().timeout({ timeout: '-1s' } as never), /timeout\.timeout: must be a duration/);
  assert.throws(() => new ServiceBuilder().timeout({ timeout: '1s', extra: 1 } as never), /timeout: unknown field "extra"/);
  await fn.close();
});

test('a closed timeout layer refuses calls', async () => {
  const clock = new VirtualClock();
  const { fn } = stack(clock, '1s');
  await fn.close();
  await assert.rejects(fn(), ServiceClosedError);
});
