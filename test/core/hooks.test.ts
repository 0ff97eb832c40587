import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallContext,
  type CallHooks,
  callThroughHooks,
  FusedService,
  type Layer,
  type Service,
  ServiceBuilder,
} from '../../src/index.js';

/** A before/after layer that logs what it sees; `verdict` decides its admission. */
function hookLayer(name: string, log: string[], verdict: () => number | Promise<number> | Error = () => 0): Layer<unknown[], string> {
  return {
    name,
    wrap(inner: Service<unknown[], string>) {
      const service: Service<unknown[], string> & CallHooks = {
        call: (req, ctx) => callThroughHooks(service, inner, req, ctx),
        admit(_ctx: CallContext) {
          log.push(`admit ${name}`);
          return verdict();
        },
        settled(token, threw, outcome) {
          log.push(`settled ${name} ${token} ${threw ? 'threw' : 'ok'} ${outcome instanceof Error ? outcome.message : String(outcome)}`);
        },
        ready: () => inner.ready?.() ?? true,
        describe: () => [{ layer: name, params: {} }, ...(inner.describe?.() ?? [])],
      };
      return service;
    },
  };
}

test('consecutive hook layers run fused: admits outermost first, settles innermost first, one service call', async () => {
  const log: string[] = [];
  const fn = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log, () => 1))
    .layer(hookLayer('b', log, () => 2))
    .service(async () => {
      log.push('call');
      return 'v';
    });
  assert.ok(fn.stack instanceof FusedService);
  assert.equal((fn.stack as FusedService<unknown[], string>).hooks.length, 2);
  assert.equal(await fn(), 'v');
  assert.deepEqual(log, ['admit a', 'admit b', 'call', 'settled b 2 ok v', 'settled a 1 ok v']);
  assert.deepEqual(
    fn.describe().map((d) => d.layer),
    ['a', 'b', 'service'],
  );
});

test('a refusal is reported to the hooks that had admitted the call, and the service is not called', async () => {
  const log: string[] = [];
  const fn = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log))
    .layer(hookLayer('b', log, () => new Error('full')))
    .layer(hookLayer('c', log))
    .service(async () => {
      log.push('call');
      return 'v';
    });
  await assert.rejects(fn(), /full/);
  assert.deepEqual(log, ['admit a', 'admit b', 'settled a 0 threw full']);
});

test('an admission that waits is awaited, and a wait that fails unwinds', async () => {
  const log: string[] = [];
  let release!: (token: number) => void;
  const fn = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log))
    .layer(hookLayer('queue', log, () => new Promise<number>((resolve) => (release = resolve))))
    .layer(hookLayer('c', log, () => 3))
    .service(async () => 'v');
  const pending = fn();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['admit a', 'admit queue']);
  release(7);
  assert.equal(await pending, 'v');
  assert.deepEqual(log.slice(2), ['admit c', 'settled c 3 ok v', 'settled queue 7 ok v', 'settled a 0 ok v']);

  log.length = 0;
  const failing = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log))
    .layer(hookLayer('queue', log, () => Promise.reject(new Error('waited too long'))))
    .service(async () => 'v');
  await assert.rejects(failing(), /waited too long/);
  assert.deepEqual(log, ['admit a', 'admit queue', 'settled a 0 threw waited too long']);
});

test('a failing call is reported as thrown to every hook', async () => {
  const log: string[] = [];
  const fn = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log))
    .timeout('1s')
    .layer(hookLayer('b', log))
    .service(async () => {
      throw new Error('down');
    });
  await assert.rejects(fn(), /down/);
  assert.deepEqual(log, ['admit a', 'admit b', 'settled b 0 threw down', 'settled a 0 threw down']);
  await fn.close();
});

test("hooks above a retry settle from the retry's own reaction, for successes, retries and failures", async () => {
  const log: string[] = [];
  let failuresLeft = 1;
  const fn = new ServiceBuilder({ registry: false })
    .layer(hookLayer('a', log, () => 5))
    .retry({ attempts: 1, retryOn: ['error'], backoff: { base: '0ms' }, budget: false })
    .service(async (x: string) => {
      if (failuresLeft-- > 0) throw new Error('flaky');
      return x;
    });
  assert.equal(await fn('v'), 'v');
  failuresLeft = 5;
  await assert.rejects(fn('w'), /flaky/);
  assert.deepEqual(log, ['admit a', 'settled a 5 ok v', 'admit a', 'settled a 5 threw flaky']);
});
