/**
 * A hedge over a timeout: an attempt the hedge abandoned because another one answered (its callee
 * ignoring the signal) is no timeout when its deadline passes later, while every expiry a caller
 * or the hedge still waited on is reported.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CallContext, CancelledError, type Layer, type MeshFunction, ServiceBuilder, TimeoutError } from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe } from '../../support/leaks.js';

/** How each attempt beneath the hedge ended, in the order they ended. */
function attemptOutcomes(): { layer: Layer<unknown, unknown>; ends: unknown[] } {
  const ends: unknown[] = [];
  const layer: Layer<unknown, unknown> = {
    name: 'probe',
    wrap: (inner) => ({
      call: (req, ctx) =>
        inner.call(req, ctx).then(
          (value) => {
            ends.push(value);
            return value;
          },
          (error: unknown) => {
            ends.push(error);
            throw error;
          },
        ),
    }),
  };
  return { layer, ends };
}

function timeouts(fn: MeshFunction<unknown[], unknown>, clock: VirtualClock): string[] {
  const seen: string[] = [];
  fn.events.on('timeout', (e) => seen.push(`${e.attempt}.${e.hedge}@${clock.now()}`));
  return seen;
}

const perTry = {
  timeout: (b: ServiceBuilder) => b.timeout('50ms'),
  "retry's perTryTimeout": (b: ServiceBuilder) => b.retry({ attempts: 1, perTryTimeout: '50ms', budget: false }),
};

for (const [name, below] of Object.entries(perTry)) {
  test(`a hedge that lost, its callee ignoring the signal, reports no timeout when its ${name} passes after the call succeeded`, async () => {
    const clock = new VirtualClock();
    const mock = new MockService<[], string>();
    const probe = attemptOutcomes();
    const fn = below(new ServiceBuilder({ clock, registry: false }).hedge({ delay: '10ms', budget: false }).layer(probe.layer)).service(
      mock.fn,
    );
    const seen = timeouts(fn, clock);
    mock.script('hold', { value: 'hedge ok' });
    const outcome = observe(fn());
    await clock.advance(10);
    assert.equal(outcome.value, 'hedge ok');
    const loser = mock.calls[0]?.ctx;
    assert.ok(loser?.signal.reason instanceof CancelledError);
    await clock.advance(100);
    assert.deepEqual(seen, [], 'the abandoned primary timing out is no timeout of the call');
    assert.equal(probe.ends.length, 2, 'the loser still settles');
    const lost = probe.ends[1];
    assert.ok(lost instanceof CancelledError, `the loser ends as cancelled by the hedge, not ${String(lost)}`);
    assert.equal(lost.layer, 'hedge');
    await fn.close();
    assert.equal(clock.pendingTimers, 0);
  });
}

test('a lost hedge under an enclosing call timeout ends cancelled, not timed out, when the call deadline passes', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const probe = attemptOutcomes();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('100ms')
    .hedge({ delay: '10ms', budget: false })
    .layer(probe.layer)
    .timeout('1s')
    .service(mock.fn);
  const seen = timeouts(fn, clock);
  mock.script('hold', { value: 'hedge ok' });
  const outcome = observe(fn());
  await clock.advance(10);
  assert.equal(outcome.value, 'hedge ok');
  await clock.runAll();
  assert.deepEqual(seen, []);
  assert.ok(probe.ends[1] instanceof CancelledError, String(probe.ends[1]));
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('an attempt timing out while the hedge still waits on another is reported, and the call may still succeed', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).hedge({ delay: '10ms', budget: false }).timeout('50ms').service(mock.fn);
  const seen = timeouts(fn, clock);
  clock.setTimer(() => mock.calls[1]?.respond('hedge ok'), 55);
  const outcome = observe(fn());
  await clock.runAll();
  assert.equal(outcome.value, 'hedge ok', String(outcome.error));
  assert.deepEqual(seen, ['1.0@50']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a hedged call whose attempts all time out reports each expiry', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).hedge({ delay: '10ms', budget: false }).timeout('50ms').service(mock.fn);
  const seen = timeouts(fn, clock);
  const outcome = observe(fn());
  await clock.runAll();
  assert.ok(outcome.error instanceof TimeoutError);
  assert.deepEqual(seen, ['1.0@50', '1.1@60']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a caller cancelling as the deadline passes, its callee ignoring the signal, still gets the timeouts reported', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const controller = new AbortController();
  const fn = new ServiceBuilder({ clock, registry: false })
    .hedge({ delay: '10ms', budget: false })
    .timeout('50ms')
    .service((ctx: CallContext) => mock.call([], ctx), { context: () => ({ signal: controller.signal }) });
  const seen = timeouts(fn as MeshFunction<unknown[], unknown>, clock);
  // Armed before the deadline lists: the caller cancels at 50 ms, just before the primary's timer.
  clock.setTimer(() => controller.abort(new CancelledError()), 50);
  const outcome = observe(fn());
  await clock.advance(50);
  assert.deepEqual(
    mock.calls.map((c) => c.ctx.cancelled),
    [true, true],
  );
  await clock.runAll();
  assert.ok(outcome.error instanceof TimeoutError, String(outcome.error));
  assert.deepEqual(seen, ['1.0@50', '1.1@60'], 'timeouts the caller got are reported');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});
