import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  CircuitOpenError,
  type Classifier,
  classification,
  defaultClassifier,
  InvalidOptionError,
  type MeshFunction,
  ServiceBuilder,
  ServiceClosedError,
  SUCCESS,
  TimeoutError,
} from '../../../src/index.js';
import { type FallbackOptions, type FallbackService, fallback } from '../../../src/layers/fallback/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';

function setup<Res = string>(options: FallbackOptions<unknown[], Res>, build: (b: ServiceBuilder) => ServiceBuilder = (b) => b) {
  const clock = new VirtualClock();
  const mock = new MockService<[string], Res>();
  const fn = build(new ServiceBuilder({ clock, registry: false }))
    .layer(fallback(options))
    .service(mock.fn) as unknown as MeshFunction<[string], Res>;
  return { clock, mock, fn, layer: fn.stack as unknown as FallbackService<unknown, unknown> };
}

test('fallback: a value answers any failure; success passes through untouched', async () => {
  const { mock, fn, layer } = setup({ value: 'default' });
  const used: unknown[] = [];
  fn.events.on('fallback', (e) => used.push(e.status));
  mock.script({ value: 'real' }, { error: new Error('boom') });
  assert.equal(await fn('a'), 'real');
  assert.equal(await fn('b'), 'default');
  assert.deepEqual(layer.stats, { calls: 2, used: 1, passed: 0 });
  assert.deepEqual(used, ['error']);
  assert.deepEqual(fn.describe()[0]?.params, { kind: 'value', on: 'failure' });
  await fn.close();
  await assert.rejects(fn('c'), ServiceClosedError);
});

test('fallback: a handler gets the failure and the request, and may be async', async () => {
  const seen: unknown[] = [];
  const { mock, fn } = setup({
    handler: async (failure, req) => {
      seen.push((failure as Error).message, req[0]);
      return `cached ${String(req[0])}`;
    },
  });
  mock.script({ error: new Error('down') });
  assert.equal(await fn('42'), 'cached 42');
  assert.deepEqual(seen, ['down', '42']);
  await fn.close();
});

test('fallback: `on` error classes and statuses choose which failures fall back', async () => {
  const { clock, mock, fn, layer } = setup({ value: 'fallback', on: [CircuitOpenError, 'timeout'] });
  const other = new Error('bad request');
  mock.script({ error: new CircuitOpenError(1000, 1000) }, { error: other });
  assert.equal(await fn('a'), 'fallback');
  await assert.rejects(fn('b'), (e) => e === other);
  assert.deepEqual(layer.stats, { calls: 2, used: 1, passed: 1 });
  await fn.close();

  // "timeout" (any case) is the classification of a TimeoutError from a timeout layer beneath.
  const slow = new MockService<[string], string>();
  const get = new ServiceBuilder({ clock, registry: false })
    .layer(fallback({ value: 'late', on: ['TIMEOUT'] }))
    .timeout('10ms')
    .service(slow.fn) as unknown as MeshFunction<[string], string>;
  assert.equal(await clock.settle(get('a')), 'late');
  assert.equal(slow.calls[0]?.ctx.signal.aborted, true);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});

test('fallback: a predicate decides, given the failure and its classification', async () => {
  const { mock, fn } = setup({ value: 'fb', on: (failure, c) => c.status === 'error' && (failure as Error).message === 'soft' });
  mock.script({ error: new Error('soft') }, { error: new Error('hard') });
  assert.equal(await fn('a'), 'fb');
  await assert.rejects(fn('b'), /hard/);
  await fn.close();
});

test('fallback: a returned value the classifier calls a failure falls back too, matched by status', async () => {
  const http: Classifier<{ status: number }> = {
    classifyResult: (r) => (r.status >= 500 ? classification('failure', String(r.status), true) : SUCCESS),
    classifyError: (e) => defaultClassifier.classifyError(e),
  };
  const clock = new VirtualClock();
  const mock = new MockService<[string], { status: number }>();
  const fn = new ServiceBuilder({ clock, registry: false, classifier: http })
    .fallback({ value: { status: 200 }, on: ['503'] })
    .service(mock.fn) as unknown as MeshFunction<[string], { status: number }>;
  mock.script({ value: { status: 503 } }, { value: { status: 500 } }, { value: { status: 404 } });
  assert.deepEqual(await fn('a'), { status: 200 });
  assert.deepEqual(await fn('b'), { status: 500 });
  assert.deepEqual(await fn('c'), { status: 404 });
  await fn.close();
});

test('fallback: a cancelled call is never answered by the fallback', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .layer(fallback({ value: 'fb' }))
    .service((id: string, _init: { signal?: AbortSignal }, ctx: CallContext) => mock.call([id], ctx), {
      context: (_id, init) => ({ signal: init.signal }),
    });
  const controller = new AbortController();
  const p = fn('a', { signal: controller.signal });
  const call = await mock.nextCall();
  controller.abort(new Error('caller gave up'));
  call.fail(new Error('aborted'));
  await assert.rejects(p, /aborted/);
  await fn.close();
});

test('fallback: a throwing handler rejects with its error', async () => {
  const broken = new Error('no cache either');
  const { mock, fn } = setup({
    handler: () => {
      throw broken;
    },
  });
  mock.script({ error: new TimeoutError(5) });
  await assert.rejects(fn('a'), (e) => e === broken);
  assert.deepEqual(fn.describe()[0]?.params, { kind: 'function', on: 'failure' });
  await fn.close();
});

test('fallback: options are checked at build time, naming the field', () => {
  assert.throws(
    () => fallback({}),
    (e: unknown) => e instanceof InvalidOptionError && e.problems[0]?.field === 'fallback',
  );
  assert.throws(() => fallback({ value: 1, handler: () => 2 }), /exactly one of value/);
  assert.throws(() => fallback({ handler: 'x' as never }), /fallback\.handler: must be a function/);
  assert.throws(() => fallback({ value: 1, on: [] }), /fallback\.on: must be a non-empty list/);
  assert.throws(() => fallback({ value: 1, on: [42 as never] }), /fallback\.on/);
  // An arrow function is no class: `instanceof` it would throw in place of the real failure.
  assert.throws(() => fallback({ value: 1, on: [TypeError, (() => true) as never] }), /fallback\.on\.1: must be an error class/);
  assert.throws(() => fallback({ value: 1, retries: 2 } as never), /unknown field "retries"/);
  assert.deepEqual(fallback({ value: undefined, on: [TimeoutError, 'timeout'] }).name, 'fallback');
});
