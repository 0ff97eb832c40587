import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { systemClock } from '../../src/core/clock.js';
import { CallContext } from '../../src/core/context.js';
import { StaticDiscovery } from '../../src/discovery/index.js';
import { EndpointState, LoadTable, peakEwmaPrefersSecond } from '../../src/layers/balance/endpoint.js';
import { MetricsRegistry } from '../../src/layers/metrics/index.js';
import { MockService, VirtualClock } from '../../src/testing/index.js';
import '../support/leaks.js';

/** A virtual clock that counts its reads. */
class CountingClock extends VirtualClock {
  reads = 0;
  override now(): number {
    this.reads++;
    return super.now();
  }
}

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

test('a reading is shared while its opener runs and gone once it returns', () => {
  const clock = new CountingClock({ start: 100 });
  const ctx = new CallContext();
  assert.equal(ctx.openTime(clock), true, 'nothing shared: the first opener reads');
  assert.equal(clock.reads, 1);
  assert.equal(ctx.openTime(clock), false, 'already shared: a nested layer does not open again');
  assert.equal(ctx.timeOn(clock), 100);
  assert.equal(clock.reads, 1, 'layers inside the opener take the shared reading');
  const other = new CountingClock({ start: 7 });
  assert.equal(ctx.timeOn(other), 7, 'a reading of another clock is not shared');
  ctx.closeTime();
  assert.equal(ctx.timeOn(clock), 100);
  assert.equal(clock.reads, 2, 'closed: the next layer reads anew');
});

test('metrics, timeout, retry and balancer read the clock once when a call starts and once when it ends', async () => {
  const clock = new CountingClock();
  const registry = new MetricsRegistry();
  const endpoints = [1, 2, 3].map((i) => ({ address: `10.0.0.${i}`, port: 80 }));
  const get = new ServiceBuilder({ name: 'shared', clock, registry: false })
    .metrics({ registry })
    .timeout('1s')
    .retry({ attempts: 2, budget: false })
    .balance(new StaticDiscovery(endpoints), () => async (x: number) => x + 1);
  clock.reads = 0;
  for (let i = 0; i < 100; i++) assert.equal(await get(i), i + 1);
  assert.equal(clock.reads, 200, `${clock.reads} reads for 100 calls`);
  assert.equal(registry.snapshot()[0]?.requests, 100);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a reading never outlives its step: after a backoff the balancer times only the attempt', async () => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const mock = new MockService<[number], string>();
  const get = new ServiceBuilder({ name: 'steps', clock, registry: false })
    .metrics({ registry })
    .timeout('5s')
    .retry({ attempts: 1, backoff: { base: '100ms', jitter: 'none' }, budget: false })
    .balance(new StaticDiscovery([{ address: 'only', port: 80 }]), () => mock.fn);
  const pending = get(1);
  for (const outcome of ['fail', 'ok'] as const) {
    const call = await mock.nextCall();
    await clock.advance(40);
    if (outcome === 'fail') call.fail(reset());
    else call.respond('done');
    if (outcome === 'fail') await clock.advance(100);
  }
  assert.equal(await clock.settle(pending), 'done');
  const balance = get.describe().find((layer) => layer.layer === 'balance');
  const [endpoint] = (balance?.state?.endpoints ?? []) as { ewmaMs: number }[];
  // Each attempt took 40 ms; a start time kept from before the backoff would read 140.
  assert.equal(endpoint?.ewmaMs, 40);
  assert.match(registry.text(), /sidecarless_response_latency_seconds_sum\{service="steps",scope="call",[^}]*\} 0.18\b/);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});

test('the approximate clock holds one reading per turn of the event loop and never runs ahead', async () => {
  const approximateNow = systemClock.approximateNow as () => number;
  for (let i = 0; i < 70; i++) approximateNow(); // past any plain reads left from sparse turns
  const first = approximateNow();
  const busyUntil = performance.now() + 2;
  while (performance.now() < busyUntil) {
    // the same turn: time passes, the approximate reading does not
  }
  assert.equal(approximateNow(), first, 'one reading for the whole turn');
  assert.ok(first <= performance.now());
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  const next = approximateNow();
  assert.ok(next >= first + 2, `a later turn reads anew (${next - first} ms later)`);
  assert.ok(next <= performance.now());
});

test('when each turn reads once, the approximate clock reads plainly (no setImmediate per call) and tries caching again later', async () => {
  const approximateNow = systemClock.approximateNow as () => number;
  const nextTurn = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  };
  const busy = (ms: number) => {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      // time passes within the turn
    }
  };
  for (let i = 0; i < 70; i++) approximateNow(); // a turn that reuses its reading
  await nextTurn();
  approximateNow(); // a turn with a single read: nothing reused
  await nextTurn();
  const a = approximateNow();
  busy(1);
  assert.ok(approximateNow() > a, 'plain reads: the second read of the turn is later');
  for (let i = 0; i < 64; i++) approximateNow(); // the rest of the plain reads, then caching again
  const cached = approximateNow();
  busy(1);
  assert.equal(approximateNow(), cached, 'caching again after 64 plain reads');
  await nextTurn();
});

test('a timeout on the system clock fires after its duration, give or take the turn it started in', async () => {
  const get = new ServiceBuilder({ registry: false })
    .timeout('30ms')
    .service(
      (_x: number, ctx: CallContext) =>
        new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
    );
  const started = performance.now();
  await assert.rejects(get(1), { name: 'TimeoutError' });
  const took = performance.now() - started;
  assert.ok(took >= 25 && took < 1000, `timed out after ${took.toFixed(1)} ms`);
  await get.close();
});

test('peak EWMA decay: the pick and the update agree with Math.exp, short gaps included', () => {
  const noop = { call: async () => undefined };
  const endpoint = (address: string) => ({ id: `${address}:80`, address, port: 80, weight: 1, metadata: {} });
  for (const elapsed of [0.0001, 0.01, 0.5, 0.999, 1, 1.001, 50, 99.9, 100, 100.1, 10_000, 1e6]) {
    const table = new LoadTable();
    const a = new EndpointState(endpoint('a'), noop, table, 30, 0);
    const b = new EndpointState(endpoint('b'), noop, table, 30, 0);
    peakEwmaPrefersSecond(table.data, a.slot, b.slot, elapsed, 10_000);
    // The pick decays an estimate once 1/10,000 of the decay has passed (1 ms here).
    const decayed = elapsed > 1 ? 30 * Math.exp(-elapsed / 10_000) : 30;
    assert.ok(Math.abs(a.ewma - decayed) < 30 * 2e-7, `pick, elapsed ${elapsed}: ${a.ewma} vs ${decayed}`);
    // An update below the estimate blends in with the weight the elapsed time gives it.
    const c = new EndpointState(endpoint('c'), noop, table, 30, 0);
    c.observe(elapsed, 10, 10_000);
    const kept = Math.exp(-elapsed / 10_000);
    assert.ok(Math.abs(c.ewma - (30 * kept + 10 * (1 - kept))) < 30 * 2e-7, `update, elapsed ${elapsed}`);
  }
});

test('a balanced function passes the context after however many arguments it was called with', async () => {
  const seen: number[] = [];
  const get = new ServiceBuilder({ registry: false }).balance(
    new StaticDiscovery([{ address: 'a', port: 1 }]),
    () =>
      (...args: unknown[]) => {
        assert.ok(args.at(-1) instanceof CallContext);
        seen.push(args.length - 1);
        return args.length;
      },
  );
  const call = get as unknown as (...args: unknown[]) => Promise<number>;
  assert.equal(await call(), 1);
  assert.equal(await call('a'), 2);
  assert.equal(await call('a', 'b'), 3);
  assert.equal(await call('a', 'b', 'c', 'd'), 5);
  assert.deepEqual(seen, [0, 1, 2, 4]);
  await get.close();
});
