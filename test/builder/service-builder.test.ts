import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { test } from 'node:test';
import {
  type CallContext,
  InvalidOptionError,
  type Layer,
  type Service,
  ServiceBuilder,
  ServiceClosedError,
  StackRegistry,
} from '../../src/index.js';
import { MockService, VirtualClock } from '../../src/testing/index.js';
import { observe } from '../support/leaks.js';

function tagging(name: string, log: string[]): Layer<unknown[], string> {
  return {
    name,
    wrap: (inner: Service<unknown[], string>): Service<unknown[], string> => ({
      async call(req, ctx) {
        log.push(`>${name}`);
        const result = await inner.call(req, ctx);
        log.push(`<${name}`);
        return `${name}(${result})`;
      },
    }),
  };
}

test('the first layer added sees the request first (Tower order)', async () => {
  const log: string[] = [];
  const fn = new ServiceBuilder({ registry: false })
    .layer(tagging('outer', log))
    .layer(tagging('inner', log))
    .service(async (x: string) => x);
  assert.equal(await fn('v'), 'outer(inner(v))');
  assert.deepEqual(log, ['>outer', '>inner', '<inner', '<outer']);
});

test('builders are immutable: adding a layer returns a new builder', () => {
  const a = new ServiceBuilder({ registry: false });
  const b = a.timeout('1s');
  assert.notEqual(a, b);
  assert.equal(a.layers.length, 0);
  assert.equal(b.layers.length, 1);
});

test('the function gets its arguments and the context last; the result type is kept', async () => {
  const fn = new ServiceBuilder({ registry: false }).service(async (a: number, b: string, ctx: CallContext) => `${a}-${b}-${ctx.attempt}`);
  assert.equal(await fn(1, 'x'), '1-x-1');
  const one = new ServiceBuilder({ registry: false }).service(async (id: string, ctx) => `${id}:${typeof ctx.signal}`);
  assert.equal(await one('42'), '42:object');
});

test('a caller passing fewer arguments still puts the context in its place', async () => {
  const fn = new ServiceBuilder({ registry: false }).service(
    async (a: number, b: string | undefined, ctx: CallContext) => `${a}-${b}-${ctx.attempt}`,
  );
  assert.equal(await (fn as unknown as (a: number) => Promise<string>)(1), '1-undefined-1');
});

test('wrap keeps the exact signature and passes no context', async () => {
  const seen: unknown[][] = [];
  const fn = new ServiceBuilder({ registry: false }).wrap(async (...args: unknown[]) => {
    seen.push(args);
    return args.length;
  });
  assert.equal(await fn('a', 'b'), 2);
  assert.deepEqual(seen, [['a', 'b']]);
});

test('a function that throws synchronously rejects instead', async () => {
  const fn = new ServiceBuilder({ registry: false }).wrap((): Promise<number> => {
    throw new Error('sync boom');
  });
  const outcome = observe(fn());
  await assert.rejects(fn(), /sync boom/);
  assert.equal(outcome.settled, 1);
});

test('the context option maps a caller signal and deadline onto the call', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[{ signal: AbortSignal }], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .timeout('10s')
    .service(mock.fn as (init: { signal: AbortSignal }, ctx: CallContext) => Promise<string>, {
      context: (init) => ({ signal: init.signal, route: 'GET /users' }),
    });
  const caller = new AbortController();
  const pending = observe(fn({ signal: caller.signal }));
  const call = await mock.nextCall();
  assert.equal(call.ctx.route, 'GET /users');
  const seen = call.ctx.signal;
  caller.abort(new Error('bye'));
  assert.equal(seen.aborted, true, 'the caller cancelling reaches the callee');
  call.fail(seen.reason);
  await clock.runAll();
  assert.equal(pending.settled, 1);
  assert.equal((pending.error as Error).message, 'bye');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('invalid builder options name the field', () => {
  assert.throws(
    () => new ServiceBuilder({ name: 'bad name!' }),
    (e: unknown) => e instanceof InvalidOptionError && /^name: /.test(e.message),
  );
  assert.throws(() => new ServiceBuilder({ clock: {} as never }), /clock: must be a Clock/);
  // A clock without clearTimer() used to build and then fail in close().
  assert.throws(
    () => new ServiceBuilder({ clock: { now: () => 0, setTimer: () => 0, wallTime: () => 0 } as never }),
    /clock: must be a Clock .*\(missing clearTimer\(\)\)/,
  );
  assert.throws(() => new ServiceBuilder().layer({} as never), /layer: must be a Layer/);
  assert.throws(() => new ServiceBuilder().service(42 as never), /service: must be a function/);
});

test('describe lists each layer with its live parameters; the registry lists stacks until closed', async () => {
  const registry = new StackRegistry();
  const fn = new ServiceBuilder({ name: 'users', registry })
    .timeout('250ms')
    .retry({ attempts: 3 })
    .service(async () => 1);
  assert.equal(fn.serviceName, 'users');
  const layers = fn.describe();
  assert.deepEqual(
    layers.map((l) => l.layer),
    ['timeout', 'retry', 'service'],
  );
  assert.deepEqual(layers[0]?.params, { timeout: '250ms' });
  assert.equal((layers[1]!.params as { attempts: number }).attempts, 3);
  assert.equal(registry.list()[0]?.name, 'users');
  assert.equal(fn.ready(), true);
  await fn.close();
  assert.equal(registry.size, 0);
  assert.equal(fn.ready(), false);
  await assert.rejects(fn(), ServiceClosedError);
});

test('events reach typed listeners and diagnostics_channel subscribers', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>().script({ error: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) }, { value: 'ok' });
  const fn = new ServiceBuilder({ clock, name: 'evt', registry: false })
    .retry({ attempts: 1, backoff: { base: '5ms', jitter: 'none' } })
    .service(mock.fn);
  const typed: number[] = [];
  const channel: unknown[] = [];
  const subscription = fn.events.on('retry', (e) => typed.push(e.delayMs));
  const onMessage = (message: unknown): void => {
    channel.push(message);
  };
  diagnostics.subscribe('sidecarless:retry', onMessage);
  assert.equal(await clock.settle(fn()), 'ok');
  diagnostics.unsubscribe('sidecarless:retry', onMessage);
  subscription.dispose();
  assert.deepEqual(typed, [5]);
  assert.equal((channel[0] as { service: string }).service, 'evt');
  assert.equal(fn.events.listenerCount(), 0);
  await fn.close();
});
