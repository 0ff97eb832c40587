import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AdaptiveConcurrencyService,
  adaptiveConcurrency,
  ConfigStore,
  Gradient2Limit,
  InvalidOptionError,
  live,
  OverloadedError,
  resolveAdaptiveConcurrencyOptions,
  ServiceClosedError,
  TimeoutError,
} from '../../../src/index.js';
import { flushMicrotasks } from '../../../src/testing/index.js';
import { answer, boom, observe, record, setupLayer } from '../circuit-breaker/helpers.js';

type Adaptive = AdaptiveConcurrencyService<unknown, unknown>;

test('sheds at once beyond the limit; describe() shows the limit', async () => {
  const s = setupLayer<Adaptive>(adaptiveConcurrency({ initialLimit: 2 }));
  const held = [observe(s.fn('a')), observe(s.fn('b'))];
  assert.equal(s.fn.ready(), false);
  const error = await s.fn('c').catch((e: unknown) => e);
  assert.ok(error instanceof OverloadedError);
  assert.equal(error.layer, 'adaptive-concurrency');
  assert.equal(s.fn.describe()[0]?.state?.limit, 2);
  assert.equal(s.fn.describe()[0]?.params.algorithm, 'gradient2');
  await answer(s.mock, 2);
  assert.deepEqual(
    held.map((h) => h.settled),
    [1, 1],
  );
  assert.equal(s.clock.pendingTimers, 0, 'no timers on the admitted path');
});

test('aimd: +1 per success while at least half used, x0.9 on a drop or a slow call', async () => {
  const s = setupLayer<Adaptive>(adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 4, timeout: '100ms' }));
  const changes = record(s.fn, 'adaptive-limit');
  const a = observe(s.fn('a'));
  observe(s.fn('b'));
  await answer(s.mock, 1); // settles with 2 in flight: 2 * 2 >= 4
  assert.equal(s.service.limit, 5);
  await answer(s.mock, 1); // 1 in flight: 1 * 2 < 5, app-limited, no growth
  assert.equal(s.service.limit, 5);
  assert.equal(a.value, 'ok');
  s.mock.script({ error: new TimeoutError(10) });
  await assert.rejects(s.fn('x'), TimeoutError);
  assert.equal(s.service.limit, 4, 'floor(5 * 0.9)');
  const slow = observe(s.fn('slow'));
  await s.clock.advance(101);
  await answer(s.mock, 1);
  assert.equal(slow.settled, 1);
  assert.equal(s.service.limit, 3, 'a call slower than timeout counts as a drop');
  s.mock.script({ error: boom() });
  await assert.rejects(s.fn('x'), /boom/);
  assert.equal(s.service.limit, 3, 'a failure that says nothing about load is not sampled');
  assert.deepEqual(
    changes.map((c) => c.limit),
    [5, 4, 3],
  );
});

test('gradient2: grows while latency holds, shrinks when it climbs, holds while app-limited', () => {
  const params = resolveAdaptiveConcurrencyOptions({ initialLimit: 20 });
  const g = new Gradient2Limit(params, 20);
  for (let i = 0; i < 20; i++) g.sample(10, Math.ceil(g.limit), false);
  const grown = g.limit;
  assert.ok(grown > 30, `grew to ${grown}`);
  assert.equal(g.sample(10, 2, false), grown, 'app-limited: fewer than half in flight');
  for (let i = 0; i < 20; i++) g.sample(50, Math.ceil(g.limit), false);
  assert.ok(g.limit < grown * 0.5, `shrank to ${g.limit} as latency went 10 -> 50 ms`);
  for (let i = 0; i < 200; i++) g.sample(1, 1, false);
  assert.equal(g.limit >= params.minLimit, true);
  // Drops take the steepest gradient (0.5); the limit falls towards 2 x queueSize but not below minLimit.
  const floor = new Gradient2Limit(resolveAdaptiveConcurrencyOptions({ initialLimit: 40, minLimit: 10 }), 40);
  for (let i = 0; i < 100; i++) floor.sample(10, Math.ceil(floor.limit), true);
  assert.equal(floor.limit, 10, 'never below minLimit');
});

test('gradient2 through the layer in virtual time: latency growth lowers the limit', async () => {
  const s = setupLayer<Adaptive>(adaptiveConcurrency({ initialLimit: 10, minLimit: 2 }));
  const round = async (latencyMs: number) => {
    const n = s.service.limit;
    const calls = Array.from({ length: n }, () => observe(s.fn('x')));
    await s.clock.advance(latencyMs);
    await answer(s.mock, n);
    for (const c of calls) assert.equal(c.settled, 1);
  };
  for (let i = 0; i < 5; i++) await round(10);
  const steady = s.service.limit;
  assert.ok(steady > 10, `grew to ${steady}`);
  for (let i = 0; i < 5; i++) await round(100);
  assert.ok(s.service.limit < steady, `fell from ${steady} to ${s.service.limit}`);
});

test('live parameters rebuild the algorithm from the limit reached', async () => {
  const store = new ConfigStore({ initial: { max: 50 } });
  const s = setupLayer<Adaptive>(
    adaptiveConcurrency(live(store, (c: { max: number }) => ({ algorithm: 'aimd' as const, initialLimit: 4, maxLimit: c.max }))),
  );
  observe(s.fn('a'));
  observe(s.fn('b'));
  await answer(s.mock, 2);
  assert.equal(s.service.limit, 5);
  store.swap({ max: 4 }, '2');
  const c = observe(s.fn('c'));
  assert.equal(s.service.limit, 4, 'clamped to the new maxLimit');
  await answer(s.mock, 1);
  assert.equal(c.settled, 1);
});

test('options are checked; close() refuses later calls', async () => {
  assert.throws(
    () => adaptiveConcurrency({ initialLimit: 500 }),
    /adaptiveConcurrency\.initialLimit: must be from minLimit 1 to maxLimit 200 \(got 500\)/,
  );
  assert.throws(() => adaptiveConcurrency({ algorithm: 'vegas' as never }), InvalidOptionError);
  assert.throws(() => adaptiveConcurrency({ smoothing: 0 }), /adaptiveConcurrency\.smoothing/);
  const s = setupLayer<Adaptive>(adaptiveConcurrency());
  await s.fn.close();
  await flushMicrotasks();
  await assert.rejects(s.fn('x'), ServiceClosedError);
});
