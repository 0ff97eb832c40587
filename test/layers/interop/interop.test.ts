import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BrokenCircuitError, ConsecutiveBreaker, circuitBreaker, handleAll, retry, TimeoutStrategy, timeout, wrap } from 'cockatiel';
import CircuitBreaker from 'opossum';
import {
  type CallContext,
  fromCockatiel,
  fromOpossum,
  InvalidOptionError,
  type MeshEvents,
  type MeshFunction,
  opossumAction,
  ServiceBuilder,
  ServiceClosedError,
} from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';

function build(layer: Parameters<ServiceBuilder['layer']>[0]) {
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock: new VirtualClock(), registry: false }).layer(layer).service(mock.fn) as unknown as MeshFunction<
    [string],
    string
  >;
  return { mock, fn };
}

test('interop: a cockatiel retry runs through the stack, numbering attempts, and its events are re-published', async () => {
  const policy = retry(handleAll, { maxAttempts: 2 });
  const { mock, fn } = build(fromCockatiel(policy));
  const events: MeshEvents['cockatiel'][] = [];
  fn.events.on('cockatiel', (e) => events.push(e));
  mock.script({ error: new Error('one') }, { error: new Error('two') }, { value: 'ok' });
  assert.equal(await fn('a'), 'ok');
  assert.deepEqual(
    mock.calls.map((c) => c.attempt),
    [1, 2, 3],
  );
  assert.deepEqual(
    events.map((e) => e.event),
    ['retry', 'retry'],
  );
  assert.equal(events[0]?.service, 'default');
  mock.script({ error: new Error('x') }, { error: new Error('y') }, { error: new Error('last') });
  await assert.rejects(fn('b'), /last/);
  assert.deepEqual(events.at(-1)?.event, 'give-up');
  assert.deepEqual(fn.describe()[0], { layer: 'cockatiel', params: { policies: ['RetryPolicy'] } });
  await fn.close();
  await assert.rejects(fn('c'), ServiceClosedError);
});

test('interop: a cockatiel breaker in a wrap() reports break, isolation and reset, and readiness; listeners go on close', async () => {
  const breaker = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(2) });
  const policy = wrap(retry(handleAll, { maxAttempts: 0 }), breaker);
  const { mock, fn } = build(fromCockatiel(policy));
  const events: string[] = [];
  fn.events.on('cockatiel', (e) => events.push(e.event));
  mock.script({ error: new Error('1') }, { error: new Error('2') });
  await assert.rejects(fn('a'), /1/);
  assert.equal(fn.ready(), true);
  await assert.rejects(fn('b'), /2/);
  await assert.rejects(fn('c'), BrokenCircuitError);
  assert.equal(mock.calls.length, 2);
  assert.equal(fn.ready(), false);
  assert.ok(events.includes('break'));
  assert.ok(events.includes('state-change'));
  assert.ok(events.includes('give-up'));
  const isolation = breaker.isolate();
  assert.equal(fn.ready(), false);
  assert.equal(events.includes('reset'), false);
  isolation.dispose();
  assert.ok(events.includes('reset'));
  assert.equal(fn.ready(), true);
  await fn.close();
  const before = events.length;
  breaker.isolate().dispose();
  assert.equal(events.length, before, 'no events after close');
});

test("interop: a cockatiel timeout's own signal reaches the callee on a forked context", async () => {
  const policy = timeout(60_000, TimeoutStrategy.Cooperative);
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock: new VirtualClock(), registry: false })
    .layer(fromCockatiel(policy))
    .service((id: string, _signal: AbortSignal, ctx: CallContext) => mock.call([id], ctx), { context: (_id, signal) => ({ signal }) });
  const controller = new AbortController();
  const p = fn('a', controller.signal);
  const call = await mock.nextCall();
  assert.equal(call.ctx.signal.aborted, false);
  controller.abort(new Error('caller gave up'));
  assert.equal(call.ctx.signal.aborted, true);
  call.fail(call.ctx.signal.reason);
  await assert.rejects(p);
  await fn.close();
});

test('interop: an opossum breaker guards the stack; its events are re-published and removed on close', async () => {
  const breaker = new CircuitBreaker(opossumAction, {
    errorThresholdPercentage: 50,
    volumeThreshold: 2,
    resetTimeout: 60_000,
    timeout: false,
  });
  const listenersBefore = breaker.listenerCount('open');
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock: new VirtualClock(), registry: false })
    .layer(fromOpossum(breaker))
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  const events: string[] = [];
  fn.events.on('opossum', (e) => events.push(e.event));
  mock.script({ value: 'ok' }, { error: new Error('1') }, { error: new Error('2') });
  assert.equal(await fn('a'), 'ok');
  assert.equal(mock.calls[0]?.ctx.attempt, 1);
  await assert.rejects(fn('b'), /1/);
  await assert.rejects(fn('c'), /2/);
  assert.deepEqual(events, ['open']);
  assert.equal(fn.ready(), false);
  await assert.rejects(fn('d'), (e: unknown) => (e as { code?: string }).code === 'EOPENBREAKER');
  assert.equal(mock.calls.length, 3);
  assert.deepEqual(events, ['open', 'reject']);
  assert.deepEqual(fn.describe()[0]?.state, { state: 'open' });
  breaker.close();
  assert.deepEqual(events, ['open', 'reject', 'close']);
  assert.equal(fn.ready(), true);
  await fn.close();
  assert.equal(breaker.listenerCount('open'), listenersBefore);
  assert.equal(breaker.isShutdown, false, "the breaker stays the application's");
  breaker.shutdown();
});

test("interop: an opossum timeout fires the callee's signal", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const breaker = new CircuitBreaker(opossumAction, { timeout: 100, resetTimeout: 60_000 });
  const { mock, fn } = build(fromOpossum(breaker, { shutdownOnClose: true }));
  const events: string[] = [];
  fn.events.on('opossum', (e) => events.push(e.event));
  const p = fn('a');
  const call = await mock.nextCall();
  t.mock.timers.tick(100);
  await assert.rejects(p, (e: unknown) => (e as { code?: string }).code === 'ETIMEDOUT');
  assert.equal(call.ctx.signal.aborted, true);
  assert.deepEqual(events, ['timeout', 'open']);
  await fn.close();
  assert.equal(breaker.isShutdown, true);
});

test('interop: bad arguments are refused at build time', () => {
  assert.throws(
    () => fromCockatiel({} as never),
    (e: unknown) => e instanceof InvalidOptionError && e.problems[0]?.field === 'policy',
  );
  const own = new CircuitBreaker(async () => 'x');
  assert.throws(() => fromOpossum(own), /must be created over opossumAction/);
  own.shutdown();
  assert.throws(() => fromOpossum({} as never), /breaker: must be an opossum CircuitBreaker/);
  const ok = new CircuitBreaker(opossumAction);
  assert.throws(() => fromOpossum(ok, { shutdownOnClose: 'yes' as never }), /shutdownOnClose/);
  ok.shutdown();
});
