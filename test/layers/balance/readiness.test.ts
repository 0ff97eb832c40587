import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/index.js';
import { StaticDiscovery } from '../../../src/discovery/index.js';
import type { BalanceOptions, BalanceStrategy } from '../../../src/layers/balance/index.js';
import { VirtualClock } from '../../../src/testing/index.js';
import { type Reply, replyClassifier, seeded } from './helpers.js';

// The balancer consults each endpoint service's own ready() (Tower's poll_ready) when picking,
// and the failure-accrual backoff stops growing at its 60 s cap. Virtual time throughout.

/** Endpoints as services with a `ready()` the test sets per address (`'throw'` makes it throw). */
function fleet(addresses: string[], options: BalanceOptions = {}) {
  const clock = new VirtualClock();
  const readiness = new Map<string, boolean | 'throw'>(addresses.map((a) => [a, true]));
  const status = new Map(addresses.map((a) => [a, 200]));
  const hits = new Map(addresses.map((a) => [a, 0]));
  const discovery = new StaticDiscovery(addresses.map((address) => ({ address, port: 80 })));
  const get = new ServiceBuilder({ clock, registry: false, random: seeded(7), classifier: replyClassifier }).balance(
    discovery,
    (endpoint) => ({
      call: async (): Promise<Reply> => {
        hits.set(endpoint.address, (hits.get(endpoint.address) ?? 0) + 1);
        return { status: status.get(endpoint.address) ?? 200, body: endpoint.address };
      },
      ready: () => {
        const ready = readiness.get(endpoint.address);
        if (ready === 'throw') throw new Error('broken ready()');
        return ready as boolean;
      },
    }),
    options,
  );
  const balancer = get.stack as unknown as { endpoints(): Record<string, unknown>[]; counts(): Record<string, unknown> };
  const run = async (calls: number): Promise<void> => {
    for (const a of addresses) hits.set(a, 0);
    for (let i = 0; i < calls; i++) await get();
  };
  return { get, clock, readiness, status, hits, balancer, run };
}

const strategies: BalanceStrategy[] = ['p2c-peak-ewma', 'p2c-least-request', 'round-robin', 'weighted'];

for (const strategy of strategies) {
  test(`${strategy}: an endpoint whose service is not ready is skipped while others are ready`, async () => {
    const f = fleet(['a', 'b', 'c'], { strategy, failureAccrual: false });
    f.readiness.set('b', false);
    await f.run(300);
    const skipped = f.hits.get('b') as number;
    // P2C always has a ready one in its pair and round robin moves on; weighted samples again
    // up to six times, so (1/3)^6 of its picks may still land there.
    if (strategy === 'weighted') assert.ok(skipped <= 3, `weighted sent ${skipped} of 300 to the busy endpoint`);
    else assert.equal(skipped, 0, `${strategy} sent ${skipped} of 300 to the busy endpoint`);
    assert.equal((f.hits.get('a') as number) + (f.hits.get('c') as number) + skipped, 300);
    // Ready again: it takes its share once more.
    f.readiness.set('b', true);
    await f.run(300);
    assert.ok((f.hits.get('b') as number) > 60, `b got ${f.hits.get('b')} of 300 once ready`);
    await f.get.close();
    assert.equal(f.clock.pendingTimers, 0);
  });
}

test('p2c over two endpoints: the not-ready one gets nothing', async () => {
  const f = fleet(['a', 'b'], { failureAccrual: false });
  f.readiness.set('a', false);
  await f.run(100);
  assert.deepEqual([f.hits.get('a'), f.hits.get('b')], [0, 100]);
  await f.get.close();
});

test('none ready: calls still go out (to any endpoint) rather than fail', async () => {
  for (const strategy of strategies) {
    const f = fleet(['a', 'b', 'c'], { strategy, failureAccrual: false });
    for (const a of ['a', 'b', 'c']) f.readiness.set(a, false);
    await f.run(90);
    const spread = [...f.hits.values()];
    assert.equal(
      spread.reduce((x, y) => x + y),
      90,
    );
    assert.ok(spread.filter((n) => n > 0).length >= 2, `${strategy} spread ${spread}`);
    await f.get.close();
  }
});

test('a throwing ready() counts as not ready: the endpoint is avoided and no call fails', async () => {
  const f = fleet(['a', 'b', 'c'], { failureAccrual: false });
  f.readiness.set('c', 'throw');
  await f.run(100);
  assert.equal(f.hits.get('c'), 0);
  await f.get.close();
});

test('endpoints() and describe() show each service readiness; counts() the busy total', async () => {
  const f = fleet(['a', 'b'], { failureAccrual: false });
  f.readiness.set('b', false);
  const byAddress = () => Object.fromEntries(f.balancer.endpoints().map((e) => [e.address, e.serviceReady]));
  assert.deepEqual(byAddress(), { a: true, b: false });
  assert.equal(f.balancer.counts().busy, 1);
  const state = f.get.describe()[0]?.state as { busy: number; endpoints: Record<string, unknown>[] };
  assert.equal(state.busy, 1);
  assert.deepEqual(state.endpoints.map((e) => e.serviceReady).sort(), [false, true]);
  f.readiness.set('b', true);
  assert.deepEqual(byAddress(), { a: true, b: true });
  assert.equal(f.balancer.counts().busy, 0);
  await f.get.close();
});

test('ejection backoff doubles from 1 s and is capped at 60 s, jitter included, probe after probe', async () => {
  // One failure ejects; two healthy endpoints keep the balancer out of panic.
  const f = fleet(['a', 'b', 'c'], { strategy: 'round-robin', failureAccrual: { consecutiveFailures: 1 } });
  const backoffs: number[] = [];
  f.get.events.on('endpoint-ejected', (e) => {
    if (e.endpoint === 'b:80') backoffs.push(e.backoffMs);
  });
  f.status.set('b', 503);
  await f.run(3);
  assert.equal(backoffs.length, 1);
  for (let ejection = 1; ejection < 10; ejection++) {
    const dump = f.balancer.endpoints().find((e) => e.address === 'b') as Record<string, unknown>;
    assert.equal(dump.state, 'ejected');
    assert.equal((dump.ejectedUntil as number) - f.clock.now(), backoffs.at(-1));
    assert.equal(f.clock.pendingTimers, 1, 'one ejection timer, no more');
    // Just before the backoff runs out, nothing reaches it; at the deadline, one probe does.
    await f.clock.advance((backoffs.at(-1) as number) - 1);
    await f.run(6);
    assert.equal(f.hits.get('b'), 0);
    await f.clock.advance(1);
    await f.run(1);
    assert.equal(f.hits.get('b'), 1, 'the probe');
    assert.equal(backoffs.length, ejection + 1, 'the failed probe ejects again');
  }
  for (const [k, backoff] of backoffs.entries()) {
    const base = Math.min(60_000, 1000 * 2 ** k);
    assert.ok(backoff >= base && backoff <= Math.min(60_000, base * 1.5), `backoff #${k + 1}: ${backoff} ms (base ${base})`);
  }
  // 2^6 s is past the cap: from the seventh ejection on, exactly 60 s whatever the jitter.
  assert.deepEqual(backoffs.slice(6), [60_000, 60_000, 60_000, 60_000]);
  await f.get.close();
  assert.equal(f.clock.pendingTimers, 0);
});
