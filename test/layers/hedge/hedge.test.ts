import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  CancelledError,
  type Classifier,
  ConfigStore,
  InvalidOptionError,
  live,
  type MeshFunction,
  RetryBudget,
  ServiceBuilder,
  ServiceClosedError,
  SUCCESS,
  TimeoutError,
} from '../../../src/index.js';
import { type HedgeOptions, type HedgeService, hedge } from '../../../src/layers/hedge/index.js';
import { flushMicrotasks, MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe } from '../../support/leaks.js';

function setup(options: HedgeOptions, build: (b: ServiceBuilder) => ServiceBuilder = (b) => b) {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const builder = build(new ServiceBuilder({ clock, registry: false }));
  const fn = builder.layer(hedge(options)).service(mock.fn) as unknown as MeshFunction<[string], string>;
  const layer = fn.stack as unknown as HedgeService<unknown, unknown>;
  return { clock, mock, fn, layer };
}

test('hedge: slow primary, the hedge wins after the fixed delay and the primary is aborted', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '50ms', budget: false });
  const hedges: unknown[] = [];
  fn.events.on('hedge', (e) => hedges.push(e));
  const seen = observe(fn('a'));
  const primary = await mock.nextCall();
  await clock.advance(49);
  assert.equal(mock.calls.length, 1);
  await clock.advance(1);
  const second = await mock.nextCall();
  assert.equal(mock.calls.length, 2);
  assert.deepEqual(second.req, ['a']);
  assert.notEqual(second.ctx, primary.ctx);
  second.respond('from hedge');
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.equal(seen.value, 'from hedge');
  assert.equal(primary.ctx.signal.aborted, true);
  assert.ok(primary.ctx.signal.reason instanceof CancelledError);
  assert.equal((primary.ctx.signal.reason as CancelledError).layer, 'hedge');
  assert.equal(second.ctx.signal.aborted, false);
  primary.fail(primary.ctx.signal.reason);
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.deepEqual(hedges, [{ service: 'default', attempt: 1, hedge: 1, delayMs: 50 }]);
  assert.deepEqual({ ...layer.stats, skipped: undefined }, { calls: 1, hedged: 1, hedgeWins: 1, skipped: undefined });
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: a fast primary sends no hedge and leaves no timer after close', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '50ms', budget: false });
  const p = fn('a');
  (await mock.nextCall()).respond('fast');
  assert.equal(await p, 'fast');
  await clock.advance(100);
  assert.equal(mock.calls.length, 1);
  assert.equal(layer.stats.hedged, 0);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
  await assert.rejects(fn('b'), ServiceClosedError);
});

test('hedge: the primary wins after the hedge was sent; the hedge is the loser', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '10ms', budget: false });
  const seen = observe(fn('a'));
  const primary = await mock.nextCall();
  await clock.advance(10);
  const second = await mock.nextCall();
  primary.respond('primary');
  await flushMicrotasks();
  assert.equal(seen.value, 'primary');
  assert.equal(second.ctx.signal.aborted, true);
  assert.equal(layer.stats.hedgeWins, 0);
  second.respond('late');
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.equal(seen.value, 'primary');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: a primary failing before the delay propagates, with no hedge', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '50ms', budget: false });
  const boom = new Error('boom');
  const seen = observe(fn('a'));
  (await mock.nextCall()).fail(boom);
  await flushMicrotasks();
  assert.equal(seen.error, boom);
  await clock.advance(100);
  assert.equal(mock.calls.length, 1);
  assert.equal(layer.stats.hedged, 0);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: a failure after the hedge was sent waits for the other attempt; all failing gives the last failure', async () => {
  const { clock, mock, fn } = setup({ delay: '10ms', budget: false });
  const first = observe(fn('a'));
  const p1 = await mock.nextCall();
  await clock.advance(10);
  const h1 = await mock.nextCall();
  p1.fail(new Error('primary failed'));
  await flushMicrotasks();
  assert.equal(first.settled, 0);
  h1.respond('rescued');
  await flushMicrotasks();
  assert.equal(first.value, 'rescued');

  const second = observe(fn('b'));
  const p2 = await mock.nextCall();
  await clock.advance(10);
  const h2 = await mock.nextCall();
  h2.fail(new Error('hedge failed'));
  await flushMicrotasks();
  assert.equal(second.settled, 0);
  const last = new Error('primary failed last');
  p2.fail(last);
  await flushMicrotasks();
  assert.equal(second.settled, 1);
  assert.equal(second.error, last);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: maxHedges 2 sends a hedge per delay; maxHedges 0 never hedges', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '10ms', maxHedges: 2, budget: false });
  const seen = observe(fn('a'));
  await clock.advance(10);
  await clock.advance(10);
  await clock.advance(30);
  assert.equal(mock.calls.length, 3);
  assert.equal(layer.stats.hedged, 2);
  mock.calls[2]?.respond('third');
  await flushMicrotasks();
  assert.equal(seen.value, 'third');
  assert.deepEqual(
    mock.calls.map((c) => c.ctx.signal.aborted),
    [true, true, false],
  );
  await fn.close();

  const off = setup({ delay: '10ms', maxHedges: 0 });
  const p = off.fn('a');
  await off.clock.advance(100);
  assert.equal(off.mock.calls.length, 1);
  off.mock.calls[0]?.respond('only');
  assert.equal(await p, 'only');
  await off.fn.close();
  assert.equal(off.clock.pendingTimers, 0);
});

test('hedge: budget exhaustion stops hedges, and a shared budget is spent, not filled', async () => {
  const clock = new VirtualClock();
  // A reserve of exactly one retry, no ratio: one hedge, then none.
  const budget = new RetryBudget({ retryRatio: 0, minRetriesPerSecond: 0.1, ttl: '10s' }, clock);
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(hedge({ delay: '10ms', budget }))
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  const layer = fn.stack as unknown as HedgeService<unknown, unknown>;
  const skipped: unknown[] = [];
  fn.events.on('hedge-skipped', (e) => skipped.push(e));
  const first = fn('a');
  await clock.advance(10);
  assert.equal(mock.calls.length, 2);
  mock.calls[1]?.respond('one');
  assert.equal(await first, 'one');
  assert.equal(budget.balance(), 0);
  const second = fn('b');
  await clock.advance(10);
  assert.equal(mock.calls.length, 3);
  assert.deepEqual(skipped, [{ service: 'default', attempt: 1, reason: 'budget' }]);
  assert.equal(layer.stats.skipped.budget, 1);
  assert.equal(layer.budget, budget);
  mock.calls[2]?.respond('two');
  assert.equal(await second, 'two');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: an own budget is filled by calls (20% of traffic plus reserve)', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '1ms', budget: { retryRatio: 0.5, minRetriesPerSecond: 0, ttl: '1s' } });
  for (let i = 0; i < 4; i++) {
    const p = fn(String(i));
    await clock.advance(1);
    for (const c of mock.pending) c.respond('ok');
    await p;
  }
  // Deposits are counted lazily (every 32 or on withdrawal): 4 calls x 0.5 => 2 hedges.
  assert.equal(layer.stats.hedged, 2);
  assert.equal(layer.stats.skipped.budget, 2);
  await fn.close();
});

test('hedge: percentile mode learns for a window, then hedges at the p-th latency (bucket upper bound)', async () => {
  const { clock, mock, fn, layer } = setup({ percentile: 90, minSamples: 5, window: '1s', budget: false });
  assert.equal(fn.describe()[0]?.state?.delay, 'learning');
  for (let i = 0; i < 10; i++) {
    const p = fn(String(i));
    await clock.advance(i < 9 ? 10 : 100);
    (await mock.nextCall()).respond('ok');
    await p;
  }
  assert.equal(layer.stats.hedged, 0);
  await clock.advance(1000);
  // 9 of 10 calls took 10 ms: p90 is the bucket of 10 ms, whose upper bound is 10.24 ms.
  const seen = observe(fn('x'));
  await mock.nextCall();
  await clock.advance(10);
  assert.equal(mock.calls.length, 11);
  await clock.advance(0.25);
  assert.equal(mock.calls.length, 12);
  assert.equal(fn.describe()[0]?.state?.delay, '10.24ms');
  mock.calls[11]?.respond('hedged');
  await flushMicrotasks();
  assert.equal(seen.value, 'hedged');
  // A window with no calls at all forgets what it knew.
  await clock.advance(5000);
  const p = fn('y');
  await clock.advance(100);
  assert.equal(mock.calls.length, 13);
  mock.calls[12]?.respond('ok');
  await p;
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: percentile delays are clamped to minDelay and maxDelay', async () => {
  for (const [options, expected] of [
    [{ minDelay: '50ms' }, 50],
    [{ maxDelay: '2ms' }, 2],
  ] as const) {
    const { clock, mock, fn } = setup({ percentile: 50, minSamples: 1, window: '1s', budget: false, ...options });
    const p = fn('learn');
    await clock.advance(10);
    (await mock.nextCall()).respond('ok');
    await p;
    await clock.advance(1000);
    const seen = observe(fn('x'));
    await clock.advance(expected - 0.001);
    assert.equal(mock.calls.length, 2);
    await clock.advance(0.001);
    assert.equal(mock.calls.length, 3, `hedge at ${expected}ms`);
    for (const c of mock.pending) c.respond('done');
    await flushMicrotasks();
    assert.equal(seen.value, 'done');
    await fn.close();
  }
});

test('hedge: a deadline shorter than the delay means no hedge; a deadline firing aborts every attempt', async () => {
  const short = setup({ delay: '50ms', budget: false }, (b) => b.timeout('20ms'));
  const p = short.fn('a');
  await assert.rejects(short.clock.settle(p), TimeoutError);
  assert.equal(short.mock.calls.length, 1);
  assert.equal(short.mock.calls[0]?.ctx.signal.aborted, true);
  await short.fn.close();

  const { clock, mock, fn } = setup({ delay: '10ms', budget: false }, (b) => b.timeout('30ms'));
  const q = fn('b');
  await clock.advance(10);
  assert.equal(mock.calls.length, 2);
  await assert.rejects(clock.settle(q), TimeoutError);
  assert.deepEqual(
    mock.calls.map((c) => c.ctx.signal.aborted),
    [true, true],
  );
  assert.ok(mock.calls[1]?.ctx.signal.reason instanceof TimeoutError);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test("hedge: the caller's signal cancels every attempt and the call settles once", async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(hedge({ delay: '10ms', budget: false }))
    .service((id: string, _init: { signal?: AbortSignal }, ctx: CallContext) => mock.call([id], ctx), {
      context: (_id, init) => ({ signal: init.signal }),
    });
  const controller = new AbortController();
  const seen = observe(fn('a', { signal: controller.signal }));
  await clock.advance(10);
  assert.equal(mock.calls.length, 2);
  controller.abort(new CancelledError());
  await flushMicrotasks();
  assert.deepEqual(
    mock.calls.map((c) => c.ctx.signal.aborted),
    [true, true],
  );
  for (const c of mock.calls) c.fail(c.ctx.signal.reason);
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.ok(seen.error instanceof CancelledError);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: options are checked at build time, naming the field', () => {
  assert.throws(() => hedge({ delay: '10ms', percentile: 95 }), /hedge\.delay: give either delay/);
  assert.throws(
    () => hedge({ maxHedges: 11 }),
    (e: unknown) => e instanceof InvalidOptionError && e.problems[0]?.field === 'hedge.maxHedges',
  );
  assert.throws(() => hedge({ percentile: 100 }), /hedge\.percentile: must be a number from 1 to 99\.99/);
  assert.throws(() => hedge({ minDelay: '10ms', maxDelay: '5ms' }), /hedge\.maxDelay/);
  assert.throws(() => hedge({ budget: { retryRatio: -1 } }), /hedge\.budget\.retryRatio/);
  assert.throws(() => hedge({ budget: 3 as never }), /hedge\.budget: must be a RetryBudget/);
  assert.throws(() => hedge({ delay: 'soon' as never }), /hedge\.delay: must be a duration/);
});

test('hedge: live params change the delay on the next call; describe shows them', async () => {
  const store = new ConfigStore<{ delay: string }>({ initial: { delay: '10ms' } });
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(hedge(live(store, (c) => ({ delay: c.delay as '10ms', budget: false as const }))))
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  assert.deepEqual(fn.describe()[0]?.params, { delay: '10ms', maxHedges: 1 });
  store.swap({ delay: '40ms' }, '1');
  const p = fn('a');
  await clock.advance(39);
  assert.equal(mock.calls.length, 1);
  await clock.advance(1);
  assert.equal(mock.calls.length, 2);
  mock.calls[0]?.respond('ok');
  assert.equal(await p, 'ok');
  const rejected: unknown[] = [];
  fn.events.on('param-rejected', (e) => rejected.push(e));
  store.swap({ delay: 'never' }, '2');
  fn.describe();
  assert.equal(rejected.length, 1);
  assert.deepEqual(fn.describe()[0]?.params, { delay: '40ms', maxHedges: 1 });
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: close drops pending hedge timers; calls in flight still settle once', async () => {
  const { clock, mock, fn, layer } = setup({ delay: '50ms', budget: false });
  const seen = observe(fn('a'));
  const primary = await mock.nextCall();
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
  await clock.advance(100);
  assert.equal(mock.calls.length, 1);
  assert.equal(layer.stats.hedged, 0);
  primary.respond('done');
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.equal(seen.value, 'done');
});

test('hedge: hedges and retries spend one shared budget; the builder shortcut adds the layer', async () => {
  const clock = new VirtualClock();
  // A reserve of two, no ratio: the first hedge and the first retry use it up.
  const budget = new RetryBudget({ retryRatio: 0, minRetriesPerSecond: 0.2, ttl: '10s' }, clock);
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .retry({ attempts: 3, budget, retryOn: ['error'], backoff: { kind: 'constant', base: 0, jitter: 'none' } })
    .hedge({ delay: '10ms', budget })
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  assert.deepEqual(
    fn.describe().map((d) => d.layer),
    ['retry', 'hedge', 'service'],
  );
  const seen = observe(fn('a'));
  await clock.advance(10);
  assert.equal(mock.calls.length, 2, 'primary and hedge');
  for (const c of mock.pending) c.fail(new Error('down'));
  await clock.advance(0);
  assert.equal(mock.calls.length, 3, 'the retry');
  assert.equal(mock.calls[2]?.attempt, 2);
  await clock.advance(10);
  assert.equal(mock.calls.length, 3, 'no hedge: the budget is spent');
  mock.calls[2]?.fail(new Error('still down'));
  await flushMicrotasks();
  assert.equal(seen.settled, 1);
  assert.match(String(seen.error), /still down/);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('hedge: a hedge keeps the attempt number and carries its own index; a retry above numbers attempts', async () => {
  const { clock, mock, fn } = setup({ delay: '10ms', maxHedges: 1, budget: false }, (b) =>
    b.retry({ attempts: 1, retryOn: ['error'], backoff: { base: '1ms', jitter: 'none' }, budget: false }),
  );
  const hedges: unknown[] = [];
  fn.events.on('hedge', (e) => hedges.push(e));
  const seen = observe(fn('a'));
  await clock.advance(10);
  assert.equal(mock.calls.length, 2);
  for (const call of mock.pending.slice()) call.fail(new Error('down'));
  await clock.advance(1); // the retry's backoff
  await clock.advance(10); // the second attempt's hedge
  assert.equal(mock.calls.length, 4);
  mock.pending[0]!.respond('ok');
  await flushMicrotasks();
  assert.equal(seen.value, 'ok');
  const names = mock.calls.map((c) => `${c.ctx.attempt}.${c.ctx.hedge}`);
  assert.deepEqual(names, ['1.0', '1.1', '2.0', '2.1'], 'no two attempts share a name');
  assert.deepEqual(
    hedges.map((e) => [(e as { attempt: number }).attempt, (e as { hedge: number }).hedge]),
    [
      [1, 1],
      [2, 1],
    ],
  );
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a thrown error the classifier calls a success is rethrown, not turned into a value', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const lenient: Classifier<string> = { classifyResult: () => SUCCESS, classifyError: () => SUCCESS };
  const fn = new ServiceBuilder({ clock, classifier: lenient, registry: false }).hedge({ delay: '10ms', budget: false }).service(mock.fn);
  const failure = new Error('not found, and that is fine');
  mock.script({ error: failure });
  await assert.rejects(clock.settle(fn()), (e) => e === failure);
  assert.equal(mock.calls.length, 1, 'a success, by the classifier: no hedge sent');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});
