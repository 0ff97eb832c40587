import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/index.js';
import { type Classifier, classification, SUCCESS } from '../../../src/core/classify.js';
import { ConfigStore } from '../../../src/core/config-store.js';
import { InvalidOptionError, NoEndpointsError } from '../../../src/core/errors.js';
import { configDiscovery, type Endpoint, StaticDiscovery } from '../../../src/discovery/index.js';
import type { BalanceOptions } from '../../../src/layers/balance/index.js';
import { VirtualClock } from '../../../src/testing/index.js';
import { type Reply, seeded } from './helpers.js';

/** 5xx fail; 429 fails with the Retry-After the endpoint put in `retryAfterMs`. */
const classifier: Classifier<unknown> = {
  classifyResult: (r) => {
    const reply = r as Reply & { retryAfterMs?: number };
    if (reply.status === 429) return classification('failure', '429', true, reply.retryAfterMs);
    return reply.status >= 500 ? classification('failure', String(reply.status), true) : SUCCESS;
  },
  classifyError: () => classification('failure', 'error', true),
};

/** Endpoints answering with the status the test sets per endpoint address. */
function fleet(addresses: string[], options: BalanceOptions = {}, latencyMs = 0) {
  const clock = new VirtualClock();
  const status = new Map(addresses.map((a) => [a, 200]));
  const hits = new Map(addresses.map((a) => [a, 0]));
  const closed: string[] = [];
  const discovery = new StaticDiscovery(addresses.map((address) => ({ address, port: 80 })));
  const get = new ServiceBuilder({ clock, registry: false, random: seeded(42), classifier }).balance(
    discovery,
    (endpoint: Endpoint) =>
      Object.assign(
        async (): Promise<Reply & { retryAfterMs?: number }> => {
          hits.set(endpoint.address, (hits.get(endpoint.address) ?? 0) + 1);
          if (latencyMs > 0) await new Promise<void>((resolve) => clock.setTimer(() => resolve(), latencyMs));
          const code = status.get(endpoint.address) ?? 200;
          return { status: code, body: endpoint.address, retryAfterMs: code === 429 ? 5000 : undefined };
        },
        { close: () => void closed.push(endpoint.id) },
      ),
    options,
  );
  const balancer = get.stack as unknown as { endpoints(): Record<string, unknown>[]; counts(): Record<string, unknown> };
  const dump = (address: string) => balancer.endpoints().find((e) => e.address === address) as Record<string, unknown>;
  return { get, clock, status, hits, closed, discovery, dump, balancer };
}

test('seven consecutive failures eject with a jittered backoff; one probe brings the endpoint back', async () => {
  const f = fleet(['a', 'b', 'c'], { strategy: 'round-robin' });
  const events: string[] = [];
  f.get.events.on('endpoint-ejected', (e) => events.push(`ejected ${e.endpoint} ${e.ejections}`));
  f.get.events.on('endpoint-restored', (e) => events.push(`restored ${e.endpoint}`));
  f.status.set('b', 503);
  for (let i = 0; i < 21; i++) await f.get();
  assert.equal(f.hits.get('b'), 7);
  assert.deepEqual(events, ['ejected b:80 1']);
  const ejected = f.dump('b');
  assert.equal(ejected.state, 'ejected');
  const backoff = (ejected.ejectedUntil as number) - f.clock.now();
  assert.ok(backoff >= 1000 && backoff <= 1500, `first backoff ${backoff}ms within 1s plus jitter 0.5`);

  for (let i = 0; i < 20; i++) await f.get();
  assert.equal(f.hits.get('b'), 7, 'nothing reaches an ejected endpoint');
  // The backoff runs out: exactly one call probes, fails, and the next backoff is longer.
  await f.clock.advance(1500);
  for (let i = 0; i < 10; i++) await f.get();
  assert.equal(f.hits.get('b'), 8);
  const second = (f.dump('b').ejectedUntil as number) - f.clock.now();
  assert.ok(second >= 2000 && second <= 3000, `second backoff ${second}ms`);
  assert.deepEqual(events, ['ejected b:80 1', 'ejected b:80 2']);
  // Healthy again: the next probe restores it and it takes its share once more.
  f.status.set('b', 200);
  await f.clock.advance(3000);
  for (let i = 0; i < 9; i++) await f.get();
  assert.equal(f.dump('b').state, 'active');
  assert.deepEqual(events.at(-1), 'restored b:80');
  assert.ok((f.hits.get('b') as number) >= 8 + 3);
  await f.get.close();
  assert.equal(f.clock.pendingTimers, 0);
  assert.deepEqual(f.closed.sort(), ['a:80', 'b:80', 'c:80']);
});

test('panic: when too many are ejected, calls go to all endpoints rather than fail', async () => {
  const f = fleet(['a', 'b'], { failureAccrual: { consecutiveFailures: 2 } });
  const panics: boolean[] = [];
  f.get.events.on('balancer-panic', (e) => panics.push(e.active));
  f.status.set('a', 503);
  f.status.set('b', 503);
  for (let i = 0; i < 8; i++) await f.get();
  assert.equal(f.balancer.counts().ready, 0);
  const reply = (await f.get()) as Reply;
  assert.equal(reply.status, 503, 'panic routes to an ejected endpoint');
  assert.deepEqual(panics, [true]);
  f.status.set('a', 200);
  f.status.set('b', 200);
  for (let i = 0; i < 8; i++) await f.get();
  assert.equal(f.balancer.counts().ready, 1, 'an answer during panic restores its endpoint');
  assert.deepEqual(panics, [true, false], 'one ready of two meets the threshold of 0.5');
  await f.clock.advance(2000); // the other one's backoff runs out: its probe restores it
  for (let i = 0; i < 4; i++) await f.get();
  assert.equal(f.balancer.counts().ready, 2);
  await f.get.close();
  assert.equal(f.clock.pendingTimers, 0);
});

test('NoEndpointsError says why: all ejected, none discovered, discovery failing', async () => {
  const f = fleet(['a'], { panicThreshold: 0, failureAccrual: { consecutiveFailures: 1 } });
  f.status.set('a', 503);
  await f.get();
  await assert.rejects(f.get(), (e: NoEndpointsError) => e.reason === 'all-ejected' && /next probe in/.test(e.message));
  await f.get.close();

  const none = new ServiceBuilder({ registry: false }).balance(new StaticDiscovery([]), () => async () => 'x');
  await assert.rejects(none(), (e: NoEndpointsError) => e instanceof NoEndpointsError && e.reason === 'none-discovered');
  await none.close();

  const store = new ConfigStore<{ endpoints?: unknown }>({ initial: { endpoints: [{ address: '' }] } });
  const failing = configDiscovery(store, (c) => c.endpoints as Endpoint[]);
  const broken = new ServiceBuilder({ registry: false }).balance(failing, () => async () => 'x');
  await assert.rejects(broken(), (e: NoEndpointsError) => e.reason === 'discovery-failing' && e.cause instanceof InvalidOptionError);
  await broken.close();
  assert.equal(store.subscriberCount, 0, 'closing the balancer closed the discovery it owns');
});

test('a 429 with Retry-After penalises the endpoint in P2C until the penalty decays', async () => {
  const f = fleet(['a'], {}, 2);
  f.hits.set('b', 0);
  const call = () => f.clock.settle(f.get());
  f.status.set('a', 429);
  await call();
  f.status.set('a', 200);
  f.discovery.add({ address: 'b', port: 80 });
  const before = f.hits.get('a');
  for (let i = 0; i < 50; i++) await call();
  assert.equal(f.hits.get('a'), before, 'two endpoints: P2C always compares both and avoids the penalised one');
  assert.ok((f.dump('a').ewmaMs as number) > 4900, 'Retry-After 5s counted as a 5s round trip');
  await f.clock.advance(120_000); // 12 decay periods: the penalty is gone
  for (let i = 0; i < 50; i++) await call();
  assert.ok((f.hits.get('a') as number) > (before as number));
  await f.get.close();
});

test('least-request avoids the endpoint with calls pending; weighted follows weights', async () => {
  const clock = new VirtualClock();
  const held: (() => void)[] = [];
  const discovery = new StaticDiscovery([{ address: 'a' }, { address: 'b' }]);
  const get = new ServiceBuilder({ clock, registry: false, random: seeded(5) }).balance(
    discovery,
    (endpoint: Endpoint) => () => (endpoint.address === 'a' ? new Promise<string>((r) => held.push(() => r('a'))) : Promise.resolve('b')),
    { strategy: 'p2c-least-request' },
  );
  const started: Promise<string>[] = [];
  for (let i = 0; i < 100 && held.length === 0; i++) started.push(get());
  assert.equal(held.length, 1);
  await new Promise((resolve) => setImmediate(resolve)); // the calls that went to b settle
  for (let i = 0; i < 20; i++) assert.equal(await get(), 'b');
  for (const release of held) release();
  await Promise.all(started);
  await get.close();

  const weighted = new StaticDiscovery([
    { address: 'light', weight: 1 },
    { address: 'heavy', weight: 3 },
  ]);
  const pick = new ServiceBuilder({ registry: false, random: seeded(9) }).balance(weighted, (e: Endpoint) => async () => e.address, {
    strategy: 'weighted',
  });
  let heavy = 0;
  for (let i = 0; i < 4000; i++) if ((await pick()) === 'heavy') heavy++;
  // Expected 3000; 4000 draws have a standard deviation of ~27, so ±150 is over 5 sigma.
  assert.ok(Math.abs(heavy - 3000) < 150, `heavy got ${heavy} of 4000`);
  weighted.add({ address: 'heavy', weight: 1 });
  heavy = 0;
  for (let i = 0; i < 4000; i++) if ((await pick()) === 'heavy') heavy++;
  assert.ok(Math.abs(heavy - 2000) < 150, `after a weight update heavy got ${heavy} of 4000`);
  await pick.close();
});

test('discovery updates: weight changes in place, a new address gets a new service', async () => {
  const f = fleet(['a', 'b']);
  f.discovery.add({ address: 'a', port: 80, weight: 5 });
  assert.equal(f.dump('a').weight, 5);
  assert.deepEqual(f.closed, []);
  f.discovery.add({ address: 'c', port: 80, id: 'b:80' });
  assert.deepEqual(f.closed, ['b:80']);
  assert.equal(f.dump('c').id, 'b:80');
  await f.get.close();
});

test('options are checked at build time, naming the field', () => {
  const d = new StaticDiscovery([]);
  const make = (options: unknown) => new ServiceBuilder({ registry: false }).balance(d, () => async () => 1, options as BalanceOptions);
  assert.throws(
    () => make({ strategy: 'random' }),
    (e: InvalidOptionError) => e.problems[0]?.field === 'balance.strategy',
  );
  assert.throws(
    () => make({ panicThreshold: 2 }),
    (e: InvalidOptionError) => /panicThreshold: must be a number from 0 to 1/.test(e.message),
  );
  assert.throws(
    () => make({ failureAccrual: { backoff: { min: '10s', max: '1s' } } }),
    (e: InvalidOptionError) => e.problems[0]?.field === 'balance.failureAccrual.backoff.min',
  );
  assert.throws(
    () => new StaticDiscovery([{ address: 'x', weight: 0 }]),
    (e: InvalidOptionError) => e.problems[0]?.field === 'endpoints.0.weight',
  );
});

test('describe() shows strategy, accrual and every endpoint with its state and EWMA', async () => {
  const f = fleet(['a']);
  await f.get();
  const [entry] = f.get.describe();
  assert.equal(entry?.layer, 'balance');
  assert.equal(entry?.params.strategy, 'p2c-peak-ewma');
  assert.deepEqual(entry?.params.peakEwma, { defaultRtt: '30ms', decay: '10s' });
  const state = entry?.state as { endpoints: Record<string, unknown>[]; total: number };
  assert.equal(state.total, 1);
  assert.deepEqual(Object.keys(state.endpoints[0] as object).slice(0, 8), [
    'id',
    'address',
    'port',
    'weight',
    'state',
    'ewmaMs',
    'pending',
    'failures',
  ]);
  await f.get.close();
});

test('an endpoint restored by a late success while waiting for its probe is not then taken for a probe', async () => {
  const clock = new VirtualClock();
  let release!: () => void;
  let bCalls = 0;
  const get = new ServiceBuilder({ clock, registry: false, random: () => 0, classifier }).balance(
    new StaticDiscovery([
      { address: 'a', port: 80 },
      { address: 'b', port: 80 },
    ]),
    (endpoint: Endpoint) => async (): Promise<Reply> => {
      if (endpoint.address === 'a') return { status: 200, body: 'a' };
      // b: fails, then holds one call (which will succeed), then fails again.
      const n = ++bCalls;
      if (n === 2) await new Promise<void>((resolve) => (release = resolve));
      return { status: n === 2 ? 200 : 500, body: 'b' };
    },
    { strategy: 'round-robin', failureAccrual: { consecutiveFailures: 2, backoff: { min: '1s', max: '10s', jitter: 0 } } },
  );
  const balancer = get.stack as unknown as { endpoints(): { address: string; state: string }[]; counts(): { ready: number } };
  const stateOf = (address: string) => balancer.endpoints().find((e) => e.address === address)?.state;
  const held: Promise<unknown>[] = [];
  for (let i = 0; i < 6; i++) held.push(get().catch(() => undefined)); // a, b(fail), a, b(held), a, b(fail)
  await clock.advance(0);
  assert.equal(stateOf('b'), 'ejected');
  await clock.advance(1000); // the backoff ends: b waits for its probe
  release(); // the call sent before the ejection succeeds: b is healthy again
  await clock.advance(0);
  assert.equal(stateOf('b'), 'active');
  await get();
  await get();
  assert.equal(stateOf('b'), 'active', 'not marked probing while in the ready set');
  assert.equal(balancer.counts().ready, 2);
  await Promise.all(held);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});
