import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  type Duration,
  type EventHub,
  InvalidOptionError,
  ServiceBuilder,
  ServiceClosedError,
  TimeoutError,
} from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe, resetError } from '../../support/leaks.js';

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

/** The `timeout` events of a stack, as `timeoutMs@attempt`. */
function expiries(fn: { events: EventHub }): string[] {
  const seen: string[] = [];
  fn.events.on('timeout', (e) => seen.push(`${e.timeoutMs}@${e.attempt}`));
  return seen;
}

test('two nested timeouts: one expiry is one event, and the caller gets the error of the layer whose deadline it was', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).timeout('1s').timeout('5s').service(mock.fn);
  const seen = expiries(fn);
  const outcome = observe(fn());
  await clock.advance(1000);
  assert.ok(outcome.error instanceof TimeoutError);
  assert.equal((outcome.error as TimeoutError).timeoutMs, 1000);
  assert.deepEqual(seen, ['1000@1']);
  await clock.advance(5000);
  assert.deepEqual(seen, ['1000@1'], 'the inner entry expired silently');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a per-try timeout under a call timeout: each expiry is reported once, by the layer whose deadline fired', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('300ms')
    .retry({ attempts: 5, perTryTimeout: '100ms', backoff: { base: '10ms', jitter: 'none' } })
    .service(mock.fn);
  const seen = expiries(fn);
  const outcome = observe(fn());
  await clock.advance(300);
  assert.ok(outcome.error instanceof TimeoutError);
  // Tries 1 and 2 hit their own 100 ms; try 3 (from 230 ms) hits the call's 300 ms, reported by the call's layer.
  assert.deepEqual(seen, ['100@1', '100@2', '300@3']);
  await clock.runAll();
  assert.deepEqual(seen, ['100@1', '100@2', '300@3']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('an inner timeout reached first by the shared lists still leaves the report to the layer whose deadline it is', async () => {
  const clock = new VirtualClock();
  // Another stack arms the 5 s list for t=1000 first (a caller's deadline), so at t=1000 the
  // per-try entry below, in that list, is visited before the 1 s list of the call timeout.
  const other = new ServiceBuilder({ clock, registry: false })
    .timeout('5s')
    .service(new MockService<[], string>().fn, { context: () => ({ deadline: 1000 }) });
  const otherSeen = expiries(other);
  const otherOutcome = observe(other());
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('1s')
    .retry({ attempts: 1, perTryTimeout: '5s', backoff: { kind: 'constant', base: '400ms', jitter: 'none' } })
    .service(mock.fn);
  const seen = expiries(fn);
  mock.script({ error: resetError() }, 'hold');
  const outcome = observe(fn());
  await clock.advance(400);
  assert.equal(mock.calls.length, 2, "the second try runs from 400 ms, its deadline clipped to the call's");
  await clock.advance(600);
  assert.equal((outcome.error as TimeoutError).timeoutMs, 1000);
  assert.deepEqual(seen, ['1000@2']);
  assert.deepEqual(otherSeen, ['1000@1'], "a caller's deadline is reported by the timeout layer that enforces it");
  assert.ok(otherOutcome.error instanceof TimeoutError);
  await fn.close();
  await other.close();
  assert.equal(clock.pendingTimers, 0);
});

test('timeouts inside hedged attempts defer to the call timeout above the hedge: one event', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('100ms')
    .hedge({ delay: '10ms', budget: false })
    .timeout('1s')
    .service(mock.fn);
  const seen = expiries(fn);
  const outcome = observe(fn());
  await clock.advance(100);
  assert.equal(mock.calls.length, 2, 'the primary and one hedge');
  assert.equal((outcome.error as TimeoutError).timeoutMs, 100);
  await clock.runAll();
  assert.deepEqual(seen, ['100@1']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a timeout event names the hedge whose deadline fired, beside the attempt it hedges', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).hedge({ delay: '10ms', budget: false }).timeout('50ms').service(mock.fn);
  const seen: string[] = [];
  fn.events.on('timeout', (e) => seen.push(`${e.attempt}.${e.hedge}@${clock.now()}`));
  const outcome = observe(fn());
  await clock.runAll();
  assert.ok(outcome.error instanceof TimeoutError);
  assert.deepEqual(seen, ['1.0@50', '1.1@60'], 'the primary times out first, then its hedge');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

for (const inner of ['5s', '1s'] as const) {
  test(`a retry above a 1s timeout over a ${inner} one retries after the expiry: the inner entry gives back no passed deadline and no second abort`, async () => {
    const clock = new VirtualClock();
    const mock = new MockService<[], string>();
    const fn = new ServiceBuilder({ clock, registry: false })
      .retry({ attempts: 2, retryOn: ['timeout'], backoff: { base: '10ms', jitter: 'none' }, budget: false })
      .timeout('1s')
      .timeout(inner)
      .service(mock.fn);
    const seen = expiries(fn);
    mock.script('hold', { value: 'second try ok' });
    const outcome = observe(fn());
    await clock.advance(1000);
    await clock.advance(10);
    assert.equal(outcome.value, 'second try ok', String(outcome.error));
    assert.equal(mock.calls.length, 2);
    assert.deepEqual(seen, ['1000@1']);
    await fn.close();
    assert.equal(clock.pendingTimers, 0);
  });
}

/**
 * A clock whose turn-cached reading lags by `lag` ms: a per-try deadline set during try 2 lands
 * 10 ms early in clock time, so its list's timer fires after the call timeout's (the order
 * entries end in when a turn runs long). Returns the stack, with the call started and try 2
 * holding at 600 ms (try 1 failed at once).
 */
async function perTryUnderCallTimeout(outerRetry: boolean) {
  class LaggingClock extends VirtualClock {
    lag = 0;
    approximateNow(): number {
      return this.now() - this.lag;
    }
  }
  const clock = new LaggingClock();
  const mock = new MockService<[], string>();
  const builder = new ServiceBuilder({ clock, registry: false });
  const fn = (
    outerRetry
      ? builder.retry({ attempts: 2, retryOn: ['timeout'], backoff: { kind: 'constant', base: '1ms', jitter: 'none' }, budget: false })
      : builder
  )
    .timeout('1000ms')
    .retry({ attempts: 2, perTryTimeout: '405ms', backoff: { kind: 'constant', base: '600ms', jitter: 'none' }, budget: false })
    .service(mock.fn);
  const seen = expiries(fn);
  mock.script({ error: resetError() }, 'hold', { value: 'outer retry ok' });
  const outcome = observe(fn());
  await clock.advance(0);
  clock.lag = 10;
  await clock.advance(600);
  assert.equal(mock.calls.length, 2);
  clock.lag = 0;
  return { clock, mock, fn, seen, outcome };
}

test('an inner timeout whose timer fires after the enclosing expiry (armed a turn late) reports nothing more and leaves no deadline behind', async () => {
  const { clock, mock, fn, seen, outcome } = await perTryUnderCallTimeout(false);
  await clock.advance(410);
  assert.equal((outcome.error as TimeoutError).timeoutMs, 1000);
  assert.deepEqual(seen, ['1000@2'], 'one expiry, one event');
  const ctx = mock.calls[1]?.ctx;
  assert.equal(ctx?.deadline, Number.POSITIVE_INFINITY, 'no passed deadline left on the context');
  assert.equal(ctx?.deadlineHolder, undefined, 'no settled entry held by the context');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('an enclosing timeout expiring while an inner one still holds the deadline gives it back: a retry above gets its next attempt', async () => {
  const { clock, mock, fn, seen, outcome } = await perTryUnderCallTimeout(true);
  await clock.advance(400);
  assert.equal(mock.calls[1]?.ctx.deadline, Number.POSITIVE_INFINITY, 'the expired enclosing timeout gave the deadline back');
  await clock.advance(10);
  assert.equal(outcome.value, 'outer retry ok', String(outcome.error));
  assert.equal(mock.calls.length, 3);
  assert.deepEqual(seen, ['1000@2']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a caller deadline of NaN is no deadline: the timeout below still fires', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('100ms')
    .service(mock.fn, { context: () => ({ deadline: Number.NaN }) });
  mock.script('hold');
  const outcome = observe(fn());
  await clock.advance(100);
  assert.equal((outcome.error as TimeoutError).timeoutMs, 100);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('an enclosing timeout whose deadline passed before its timer fired is reported by it when a call reaches an inner timeout at that time', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('100ms')
    .concurrencyLimit({ max: 1, queue: 10 })
    .timeout('1s')
    .service(mock.fn);
  const seen = expiries(fn);
  // Armed before the calls' deadline lists: call 1 answers at 100 ms, granting call 2 its permit
  // exactly when call 2's 100 ms deadline passes, before that deadline's own timer fires.
  clock.setTimer(() => mock.calls[0]?.respond('first'), 100);
  const first = observe(fn());
  const second = observe(fn());
  await clock.advance(100);
  await clock.advance(1000);
  assert.equal(first.value, 'first');
  assert.equal((second.error as TimeoutError).timeoutMs, 100, 'the enclosing timeout reports its own deadline');
  assert.deepEqual(seen, ['100@1']);
  assert.equal(mock.calls.length, 1, 'call 2 never reached the service');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a hedge fork reaching an inner timeout after the call timeout passed does not expire the call another fork answered', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('100ms')
    .hedge({ delay: '10ms', budget: false })
    .concurrencyLimit({ max: 1, queue: 10 })
    .timeout('1s')
    .service(mock.fn);
  const seen = expiries(fn);
  // Armed before the call's deadline list: the primary answers at 100 ms and frees the permit
  // for the queued hedge, whose fork then reaches the inner timeout after the call's deadline.
  clock.setTimer(() => mock.calls[0]?.respond('primary ok'), 100);
  const outcome = observe(fn());
  await clock.advance(100);
  await clock.advance(1000);
  assert.equal(outcome.value, 'primary ok', String(outcome.error));
  assert.deepEqual(seen, []);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});
