import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/index.js';
import { ConfigStore } from '../../../src/core/config-store.js';
import { CallContext } from '../../../src/core/context.js';
import type { InvalidOptionError } from '../../../src/core/errors.js';
import { live } from '../../../src/core/params.js';
import type { Service } from '../../../src/core/service.js';
import { StaticDiscovery } from '../../../src/discovery/index.js';
import { type SplitOptions, split } from '../../../src/layers/split/index.js';
import { seeded } from '../balance/helpers.js';

/** A backend answering its own name, recording whether it was closed. */
function backend(name: string): Service<unknown[], string> & { closed: boolean } {
  return {
    closed: false,
    call: async () => name,
    close() {
      this.closed = true;
    },
  };
}

test('weights are honoured within statistical error (seeded)', async () => {
  const canary = backend('canary');
  const get = new ServiceBuilder({ registry: false, random: seeded(1) })
    .split({ canary }, { weights: { primary: 90, canary: 10 } })
    .service(async () => 'primary');
  const counts = { primary: 0, canary: 0 };
  for (let i = 0; i < 10_000; i++) counts[(await get()) as 'primary' | 'canary']++;
  // Expected 1000 for the canary, standard deviation 30: ±200 is over 6 sigma.
  assert.ok(Math.abs(counts.canary - 1000) < 200, `canary got ${counts.canary}`);
  const [entry] = get.describe();
  assert.deepEqual((entry?.state as { calls: unknown } | undefined)?.calls, counts);
  await get.close();
  assert.equal(canary.closed, false, "a backend handed in is the caller's to close");
});

test('weights change live: blue/green switch from one snapshot to the next', async () => {
  const store = new ConfigStore<{ split?: SplitOptions }>({ initial: { split: { weights: { primary: 1 } } } });
  const green = backend('green');
  const get = new ServiceBuilder({ registry: false, random: seeded(2) })
    .split(
      { green },
      live(store, (c) => c.split),
    )
    .service(async () => 'blue');
  const rejected: string[] = [];
  get.events.on('param-rejected', (e) => rejected.push(e.problems[0]?.field ?? ''));
  for (let i = 0; i < 50; i++) assert.equal(await get(), 'blue');
  store.swap({ split: { weights: { primary: 0, green: 1 } } }, '2');
  for (let i = 0; i < 50; i++) assert.equal(await get(), 'green');
  store.swap({ split: { weights: { primary: 1, teal: 1 } } }, '3');
  assert.equal(await get(), 'green', 'a bad snapshot keeps the weights in force');
  assert.deepEqual(rejected, ['split.weights.teal']);
  await get.close();
});

test('rules route by header and by attribute before the weights', async () => {
  const b = backend('b');
  const tenant = backend('tenant');
  const stack = new ServiceBuilder({ registry: false }).layer(
    split(
      { b, tenant },
      {
        weights: { primary: 1 },
        rules: [
          { header: 'X-Variant', equals: 'b', backend: 'b' },
          { attribute: 'tenant', matches: '^acme-', backend: 'tenant' },
        ],
      },
    ),
  );
  const service = stack.build(backend('a'));
  const call = (attributes: Record<string, unknown>) => {
    const ctx = new CallContext();
    Object.assign(ctx.attributes, attributes);
    return service.call([ctx], ctx);
  };
  assert.equal(await call({}), 'a');
  assert.equal(await call({ headers: { 'x-variant': 'b' } }), 'b');
  assert.equal(await call({ headers: new Headers({ 'X-Variant': 'b' }) }), 'b');
  assert.equal(await call({ headers: { 'x-variant': 'c' } }), 'a');
  assert.equal(await call({ tenant: 'acme-eu' }), 'tenant');
  assert.equal(await call({ tenant: 'other' }), 'a');
  await service.close?.();
});

test('options are checked against the backends, naming the field', () => {
  const canary = backend('canary');
  const problem = (options: unknown) => {
    try {
      split({ canary }, options as SplitOptions);
    } catch (error) {
      return (error as InvalidOptionError).problems.map((p) => p.field);
    }
    return [];
  };
  assert.deepEqual(problem({ weights: { blue: 1 } }), ['split.weights.blue']);
  assert.deepEqual(problem({ weights: { primary: 0 } }), ['split.weights']);
  assert.deepEqual(problem({ weights: { canary: -1 } }), ['split.weights.canary']);
  assert.deepEqual(problem({ rules: [{ backend: 'canary' }] }), ['split.rules.0']);
  assert.deepEqual(problem({ rules: [{ backend: 'canary', header: 'x', matches: '(' }] }), ['split.rules.0.matches']);
  assert.deepEqual(problem({ rules: [{ backend: 'canary', header: 'x', equals: 'a', matches: 'b' }] }), ['split.rules.0']);
  assert.throws(() => split({ primary: canary }), /reserved/);
  assert.deepEqual(problem({ weights: { primary: 1, canary: 1 } }), []);
});

test('a canary split over two balancers: each backend is a whole stack with its own endpoints', async () => {
  const canary = new ServiceBuilder({ name: 'users-canary', registry: false }).balance(
    new StaticDiscovery([{ address: 'c1' }]),
    (e) => async (path: string) => `canary ${e.address} ${path}`,
  );
  const get = new ServiceBuilder({ name: 'users', registry: false, random: seeded(4) })
    .split({ canary: canary.stack }, { weights: { primary: 3, canary: 1 } })
    .balance(new StaticDiscovery([{ address: 's1' }, { address: 's2' }]), (e) => async (path: string) => `stable ${e.address} ${path}`, {
      strategy: 'round-robin',
    });
  const seen = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const answer = await get('/x');
    seen.set(answer, (seen.get(answer) ?? 0) + 1);
  }
  assert.deepEqual([...seen.keys()].sort(), ['canary c1 /x', 'stable s1 /x', 'stable s2 /x']);
  // Expected 100 of 400 for the canary, standard deviation ~8.7: ±50 is over 5 sigma.
  assert.ok(Math.abs((seen.get('canary c1 /x') ?? 0) - 100) < 50);
  await get.close();
  assert.equal(canary.ready(), true, 'the canary stack was handed in: the caller closes it');
  await canary.close();
});

test('closing a split closes its primary but not a backend shared with another split or called directly', async () => {
  const shared = backend('canary');
  const primary = backend('primary');
  const only = { weights: { canary: 1 } };
  const a = new ServiceBuilder({ name: 'a', registry: false }).split({ canary: shared }, only).build(primary);
  const b = new ServiceBuilder({ name: 'b', registry: false }).split({ canary: shared }, only).service(async () => 'b');
  await a.close?.();
  assert.equal(primary.closed, true, 'the wrapped service is part of the stack: it closes with it');
  assert.equal(shared.closed, false);
  assert.equal(await b(), 'canary', 'the other split still reaches the shared backend');
  await b.close();
  assert.equal(shared.closed, false, 'nor does the last split close it: it was handed in');
  assert.equal(await shared.call([], new CallContext()), 'canary', 'a direct caller still reaches it');
});
