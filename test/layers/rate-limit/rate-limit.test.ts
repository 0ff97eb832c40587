import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallContext, CancelledError, RateLimitedError, type RateLimitService, rateLimit, ServiceClosedError } from '../../../src/index.js';
import { flushMicrotasks } from '../../../src/testing/index.js';
import { observe, setup, setupLayer } from '../circuit-breaker/helpers.js';

type Limiter = RateLimitService<unknown, unknown>;

function scriptOk(s: { mock: { script(...steps: { value: string }[]): unknown } }, n: number) {
  for (let i = 0; i < n; i++) s.mock.script({ value: 'ok' });
}

test('fail mode: a burst, then refusals with retry-after; lazy refill, no timers', async () => {
  const s = setupLayer<Limiter>(rateLimit({ rate: 10, interval: '1s', burst: 2 }));
  scriptOk(s, 3);
  await s.fn('a');
  await s.fn('b');
  const error = await s.fn('c').catch((e: unknown) => e);
  assert.ok(error instanceof RateLimitedError);
  assert.equal(error.retryAfterMs, 100);
  assert.equal(error.layer, 'rate-limit');
  assert.equal(s.fn.ready(), false);
  assert.equal(s.clock.pendingTimers, 0);
  await s.clock.advance(60);
  await assert.rejects(s.fn('c'), (e: RateLimitedError) => Math.round(e.retryAfterMs) === 40);
  await s.clock.advance(40);
  assert.equal(await s.fn('c'), 'ok');
  assert.equal(s.mock.calls.length, 3);
});

test('refill never exceeds the burst', async () => {
  const s = setupLayer<Limiter>(rateLimit({ rate: 5, burst: 3 }));
  await s.clock.advance(60_000);
  scriptOk(s, 3);
  for (let i = 0; i < 3; i++) await s.fn('x');
  await assert.rejects(s.fn('x'), RateLimitedError);
  assert.equal(s.fn.describe()[0]?.params.burst, 3);
});

test('wait mode: calls reserve tokens and go in order as they come due', async () => {
  const s = setupLayer<Limiter>(rateLimit({ rate: 10, burst: 1, mode: 'wait' }));
  const calls = ['a', 'b', 'c'].map((x) => observe(s.fn(x)));
  assert.equal(s.clock.pendingTimers, 2, 'a timer for each waiting call only');
  const seenAt: number[] = [];
  for (let i = 0; i < 3; i++) {
    const call = await s.mock.nextCall();
    seenAt.push(s.clock.now());
    call.respond(call.req[0]);
    if (i < 2) await s.clock.advance(100);
  }
  await flushMicrotasks();
  assert.deepEqual(seenAt, [0, 100, 200]);
  assert.deepEqual(
    calls.map((c) => c.value),
    ['a', 'b', 'c'],
  );
  assert.equal(s.clock.pendingTimers, 0);
});

test('wait mode: a wait past the deadline or maxWait is refused at once', async () => {
  const s = setup((b) => b.timeout('150ms').rateLimit({ rate: 10, burst: 1, mode: 'wait' }));
  observe(s.fn('a'));
  const b = observe(s.fn('b')); // due at 100 ms, within 150 ms
  const c = await s.fn('c').catch((e: unknown) => e); // due at 200 ms: past the deadline
  assert.ok(c instanceof RateLimitedError);
  assert.equal(s.clock.now(), 0, 'refused at once, not after waiting');
  assert.equal(b.settled, 0);
  const m = setupLayer<Limiter>(rateLimit({ rate: 10, burst: 1, mode: 'wait', maxWait: '50ms' }));
  m.mock.script({ value: 'ok' });
  await m.fn('a');
  await assert.rejects(m.fn('b'), (e: RateLimitedError) => e.retryAfterMs === 100);
});

test('a cancelled waiter gives its reservation back', async () => {
  const s = setupLayer<Limiter>(rateLimit({ rate: 10, burst: 1, mode: 'wait' }));
  s.mock.script({ value: 'ok' });
  await s.fn('a');
  const controller = new AbortController();
  const b = observe(s.service.call(['b', undefined], new CallContext(controller.signal)));
  assert.equal(s.service.tokens, -1);
  controller.abort(new CancelledError());
  await flushMicrotasks();
  assert.ok(b.error instanceof CancelledError);
  assert.equal(s.service.tokens, 0);
  assert.equal(s.clock.pendingTimers, 0);
});

test('close() fails waiting calls and leaves no timer; options are checked', async () => {
  const s = setupLayer<Limiter>(rateLimit({ rate: 1, burst: 1, mode: 'wait' }));
  s.mock.script({ value: 'ok' });
  await s.fn('a');
  const b = observe(s.fn('b'));
  await s.fn.close();
  await flushMicrotasks();
  assert.ok(b.error instanceof ServiceClosedError);
  assert.equal(s.clock.pendingTimers, 0);
  assert.throws(() => rateLimit({ rate: 0 }), /rateLimit\.rate: must be a number from/);
  assert.throws(() => rateLimit({ rate: 1, mode: 'queue' as never }), /rateLimit\.mode: must be "fail" or "wait"/);
  assert.throws(() => rateLimit({ rate: 1, burst: 0 }), /rateLimit\.burst/);
});
