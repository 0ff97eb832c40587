import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  CancelledError,
  ConfigStore,
  defaultClassifier,
  InvalidOptionError,
  live,
  type MeshFunction,
  ServiceBuilder,
  ServiceClosedError,
  TimeoutError,
} from '../../../src/index.js';
import {
  FaultInjectedError,
  type FaultInjectionOptions,
  type FaultInjectionService,
  faultInjection,
} from '../../../src/layers/fault-injection/index.js';
import { flushMicrotasks, MockService, VirtualClock } from '../../../src/testing/index.js';

/** A random source that returns the given draws in turn. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] as number;
}

function setup(options: FaultInjectionOptions, random = draws(0), build: (b: ServiceBuilder) => ServiceBuilder = (b) => b) {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = build(new ServiceBuilder({ clock, random, registry: false }))
    .layer(faultInjection(options))
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  return { clock, mock, fn, layer: fn.stack as unknown as FaultInjectionService<unknown, unknown> };
}

test('fault-injection: abort with an HTTP status never reaches the service', async () => {
  const { mock, fn, layer } = setup({ abort: { httpStatus: 503 } });
  const faults: unknown[] = [];
  fn.events.on('fault', (e) => faults.push(e));
  await assert.rejects(fn('a'), (e: unknown) => e instanceof FaultInjectedError && e.httpStatus === 503 && e.status === '503');
  assert.equal(mock.calls.length, 0);
  assert.deepEqual(layer.stats, { calls: 1, delayed: 0, aborted: 1 });
  assert.deepEqual(faults, [{ service: 'default', kind: 'abort', status: '503' }]);
  await fn.close();
});

test('fault-injection: abort with a gRPC status by name or code, or with a given error', async () => {
  const byName = setup({ abort: { grpcStatus: 'UNAVAILABLE' } });
  await assert.rejects(
    byName.fn('a'),
    (e: unknown) => e instanceof FaultInjectedError && e.grpcStatus === 14 && e.status === 'UNAVAILABLE',
  );
  const byCode = setup({ abort: { grpcStatus: 4 } });
  await assert.rejects(byCode.fn('a'), (e: unknown) => e instanceof FaultInjectedError && e.status === 'DEADLINE_EXCEEDED');
  const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
  const fixed = setup({ abort: { error: reset } });
  await assert.rejects(fixed.fn('a'), (e) => e === reset);
  let made = 0;
  const fresh = setup({ abort: { error: () => new Error(`fault ${++made}`) } });
  await assert.rejects(fresh.fn('a'), /fault 1/);
  await assert.rejects(fresh.fn('a'), /fault 2/);
  assert.deepEqual(fresh.fn.describe()[0]?.params, {
    delay: { percentage: 0, fixedDelay: '0ms' },
    abort: { percentage: 100, status: 'error' },
  });
});

test('fault-injection: the percentage is drawn from env.random per call', async () => {
  // 10%: draws of 0.05 (5) abort, 0.5 (50) and 0.1 (10, not below 10) pass.
  const { mock, fn, layer } = setup({ abort: { percentage: { value: 10 }, httpStatus: 500 } }, draws(0.05, 0.5, 0.1));
  mock.script({ value: 'ok' }, { value: 'ok' });
  await assert.rejects(fn('a'), FaultInjectedError);
  assert.equal(await fn('b'), 'ok');
  assert.equal(await fn('c'), 'ok');
  assert.deepEqual(layer.stats, { calls: 3, delayed: 0, aborted: 1 });
  // 0% never draws.
  let drawn = 0;
  const off = setup({ abort: { percentage: 0, httpStatus: 500 } }, () => {
    drawn++;
    return 0;
  });
  off.mock.script({ value: 'ok' });
  assert.equal(await off.fn('a'), 'ok');
  assert.equal(drawn, 0);
});

test('fault-injection: a delay holds the call for fixedDelay in virtual time, then lets it through', async () => {
  const { clock, mock, fn, layer } = setup({ delay: { percentage: 50, fixedDelay: '100ms' } }, draws(0.2, 0.9));
  mock.script({ value: 'late' }, { value: 'prompt' });
  const p = fn('a');
  await clock.advance(99);
  assert.equal(mock.calls.length, 0);
  await clock.advance(1);
  assert.equal(mock.calls.length, 1);
  assert.equal(await p, 'late');
  assert.equal(await fn('b'), 'prompt');
  assert.equal(clock.now(), 100);
  assert.equal(layer.stats.delayed, 1);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('fault-injection: delay first, then abort', async () => {
  const { clock, mock, fn } = setup({ delay: { fixedDelay: '20ms' }, abort: { httpStatus: 503 } });
  const p = fn('a');
  const rejected = assert.rejects(clock.settle(p), FaultInjectedError);
  await rejected;
  assert.equal(clock.now(), 20);
  assert.equal(mock.calls.length, 0);
  await fn.close();
});

test('fault-injection: a delay is bounded by the deadline', async () => {
  // A timeout above fires first.
  const above = setup({ delay: { fixedDelay: '1s' } }, draws(0), (b) => b.timeout('50ms'));
  await assert.rejects(above.clock.settle(above.fn('a')), TimeoutError);
  assert.equal(above.clock.now(), 50);
  assert.equal(above.mock.calls.length, 0);
  await above.fn.close();
  assert.equal(above.clock.pendingTimers, 0);

  // A caller's deadline with no timeout layer: the layer itself gives up at the deadline.
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(faultInjection({ delay: { fixedDelay: '1s' } }))
    .service((id: string, _deadline: number, ctx: CallContext) => mock.call([id], ctx), {
      context: (_id, deadline) => ({ deadline }),
    });
  await assert.rejects(clock.settle(fn('a', 30)), (e: unknown) => e instanceof TimeoutError && e.layer === 'fault-injection');
  assert.equal(clock.now(), 30);
  assert.equal(mock.calls.length, 0);
  await assert.rejects(fn('b', 30), (e: unknown) => e instanceof TimeoutError && e.layer === 'fault-injection');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('fault-injection: cancelling during a delay rejects at once; close wakes pending delays', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(faultInjection({ delay: { fixedDelay: '1s' } }))
    .service((id: string, _signal: AbortSignal, ctx: CallContext) => mock.call([id], ctx), {
      context: (_id, signal) => ({ signal }),
    });
  const controller = new AbortController();
  const p = fn('a', controller.signal);
  await clock.advance(10);
  controller.abort(new CancelledError());
  await assert.rejects(p, CancelledError);
  const q = fn('b', new AbortController().signal);
  await clock.advance(10);
  let settled = 0;
  const closed = assert.rejects(
    q.finally(() => settled++),
    ServiceClosedError,
  );
  await fn.close();
  await closed;
  await flushMicrotasks();
  assert.equal(settled, 1);
  assert.equal(mock.calls.length, 0);
  assert.equal(clock.pendingTimers, 0);
});

test('fault-injection: live params switch faults on and off without a rebuild', async () => {
  const store = new ConfigStore<{ fault?: FaultInjectionOptions }>({ initial: {} });
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .faultInjection(live(store, (c) => c.fault, {}))
    .service(mock.fn) as unknown as MeshFunction<[string], string>;
  mock.script({ value: 'ok' }, { value: 'ok' });
  assert.equal(await fn('a'), 'ok');
  store.swap({ fault: { abort: { httpStatus: 503 } } }, '1');
  await assert.rejects(fn('b'), FaultInjectedError);
  const rejected: unknown[] = [];
  fn.events.on('param-rejected', (e) => rejected.push(e.layer));
  store.swap({ fault: { abort: { percentage: 200, httpStatus: 503 } } }, '2');
  await assert.rejects(fn('c'), FaultInjectedError);
  assert.deepEqual(rejected, ['fault-injection']);
  store.swap({}, '3');
  assert.equal(await fn('d'), 'ok');
  await fn.close();
});

test('fault-injection: options are checked at build time, naming the field', () => {
  const field = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      assert.ok(error instanceof InvalidOptionError);
      return error.problems.map((p) => p.field).join(',');
    }
    return 'no error';
  };
  assert.equal(
    field(() => faultInjection({ abort: { percentage: 101, httpStatus: 503 } })),
    'faultInjection.abort.percentage',
  );
  assert.equal(
    field(() => faultInjection({ abort: { httpStatus: 503, grpcStatus: 14 } })),
    'faultInjection.abort',
  );
  assert.equal(
    field(() => faultInjection({ abort: {} })),
    'faultInjection.abort',
  );
  assert.equal(
    field(() => faultInjection({ abort: { httpStatus: 99 } })),
    'faultInjection.abort.httpStatus',
  );
  assert.equal(
    field(() => faultInjection({ abort: { grpcStatus: 'NOPE' as never } })),
    'faultInjection.abort.grpcStatus',
  );
  assert.equal(
    field(() => faultInjection({ delay: { fixedDelay: 'soon' as never } })),
    'faultInjection.delay.fixedDelay',
  );
  assert.equal(
    field(() => faultInjection({ delay: {} as never })),
    'faultInjection.delay.fixedDelay',
  );
  assert.equal(
    field(() => faultInjection({ chaos: true } as never)),
    'faultInjection',
  );
});

test('fault-injection: injected statuses are judged like real ones, so a retry above retries a 503 or UNAVAILABLE but not a 404', async () => {
  const attemptsFor = async (abort: { httpStatus: number } | { grpcStatus: string }) => {
    const calls: number[] = [];
    const clock = new VirtualClock();
    const fn = new ServiceBuilder({ clock, registry: false })
      .retry({ attempts: 2, backoff: { base: '1ms', jitter: 'none' }, budget: false })
      .faultInjection({ abort: { ...abort, percentage: 100 } } as never)
      .service(async (ctx: CallContext) => {
        calls.push(ctx.attempt);
        return 'ok';
      });
    const retries: number[] = [];
    fn.events.on('retry', (e) => retries.push(e.attempt));
    await assert.rejects(clock.settle(fn()), FaultInjectedError);
    await fn.close();
    return { retries: retries.length, calls: calls.length };
  };
  assert.deepEqual(await attemptsFor({ httpStatus: 503 }), { retries: 2, calls: 0 });
  assert.deepEqual(await attemptsFor({ grpcStatus: 'UNAVAILABLE' }), { retries: 2, calls: 0 });
  assert.deepEqual(await attemptsFor({ httpStatus: 404 }), { retries: 0, calls: 0 });
  assert.deepEqual(await attemptsFor({ grpcStatus: 'INVALID_ARGUMENT' }), { retries: 0, calls: 0 });
  const judged = (error: unknown) => defaultClassifier.classifyError(error);
  assert.deepEqual(
    { ...judged(new FaultInjectedError({ grpcStatus: 4 })) },
    { kind: 'failure', status: 'timeout', retryable: true, retryAfterMs: undefined },
  );
  assert.equal(judged(new FaultInjectedError({ httpStatus: 429 })).status, '429');
});

test('fault-injection: a call already cancelled is not delayed, and a passed deadline never reports a negative timeout', async () => {
  const controller = new AbortController();
  controller.abort(new Error('caller left'));
  const clock = new VirtualClock();
  const mock = new MockService<[], string>().script({ value: 'ok' });
  const fn = new ServiceBuilder({ clock, registry: false })
    .faultInjection({ delay: { fixedDelay: '5s' } })
    .service(mock.fn, { context: () => ({ signal: controller.signal }) });
  const faults: unknown[] = [];
  fn.events.on('fault', (e) => faults.push(e));
  await assert.rejects(fn(), /caller left/);
  assert.equal(mock.calls.length, 0);
  assert.deepEqual(faults, [], 'no delay happened, none reported');
  assert.equal(clock.pendingTimers, 0);
  await fn.close();

  const late = new ServiceBuilder({ clock, registry: false })
    .faultInjection({ delay: { fixedDelay: '5s' } })
    .service(mock.fn, { context: () => ({ deadline: clock.now() - 3 }) });
  await assert.rejects(late(), (e: unknown) => e instanceof TimeoutError && e.timeoutMs >= 0);
  await late.close();
});
