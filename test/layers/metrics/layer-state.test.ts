// Retries per route, and breaker / balancer state as scrape-time gauges, with the real circuit
// breaker and the real balancer in virtual time; each scrape is parsed with a Prometheus text
// parser and linted by promtool.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { Registry } from 'prom-client';
import {
  type CallContext,
  CircuitOpenError,
  type Endpoint,
  MetricsRegistry,
  ServiceBuilder,
  type ServiceStats,
  StaticDiscovery,
} from '../../../src/index.js';
import { VirtualClock } from '../../../src/testing/index.js';
import { assertPromtoolClean } from './promtool.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

/** The value of the one sample of `name` whose labels include `labels`; `undefined` if none. */
function value(families: ParsedFamily[], name: string, labels: Record<string, string>): number | undefined {
  const family = families.find((f) => f.name === name);
  const hits = (family?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  assert.ok(hits.length <= 1, `${name} ${JSON.stringify(labels)} matches ${hits.length} series`);
  return hits[0] === undefined ? undefined : Number(hits[0].value);
}

const callStats = (registry: MetricsRegistry): ServiceStats => {
  const found = registry.snapshot().find((s) => s.scope === 'call');
  assert.ok(found);
  return found;
};

test('retries are counted per route (same route limit and overflow) and still per service', async (t) => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  // Per route, what the callee does: fail once then answer, fail always, or a non-retryable failure.
  const get = new ServiceBuilder({ name: 'cart', clock, registry: false })
    .metrics({ registry, maxRoutes: 2 })
    .retry({ attempts: 1, backoff: { base: '1ms', jitter: 'none' }, budget: false })
    .service(
      async (kind: string, ctx: CallContext) => {
        if (kind === 'flaky' && ctx.attempt > 1) return 'ok';
        throw kind === 'bad' ? new Error('bad request') : reset();
      },
      { context: (kind: string) => ({ route: `GET /${kind}` }) },
    );
  assert.equal(await clock.settle(get('flaky')), 'ok');
  await assert.rejects(clock.settle(get('down')));
  await assert.rejects(clock.settle(get('bad')), /bad request/); // third route: overflow
  const families = parsePrometheusTextFormat(registry.text());
  const retries = (route: string, outcome: string) => value(families, 'sidecarless_retries_total', { route, outcome });
  assert.equal(retries('GET /flaky', 'retried'), 1);
  assert.equal(retries('GET /flaky', 'exhausted'), 0);
  assert.equal(retries('GET /down', 'retried'), 1);
  assert.equal(retries('GET /down', 'exhausted'), 1);
  assert.equal(retries('overflow', 'not_retryable'), 1, 'the retry joins the route its request was counted under');
  assert.equal(retries('GET /bad', 'not_retryable'), undefined, 'no route past the limit');
  const s = callStats(registry);
  assert.deepEqual(
    { retried: s.retries.retried, exhausted: s.retries.exhausted, not_retryable: s.retries.not_retryable },
    { retried: 2, exhausted: 1, not_retryable: 1 },
    'the service totals the dashboard and stat read',
  );
  const down = s.routes.find((r) => r.route === 'GET /down');
  assert.equal(down?.retries.exhausted, 1);
  assertPromtoolClean(t, registry.text());
  await get.close();
  assert.equal(get.events.listenerCount(), 0);
});

/**
 * Endpoints (default a, b, c, round-robin: a predictable spread) on the real balancer under the
 * real breaker, each doing what the test sets in `mode`.
 */
function fleet(registry: MetricsRegistry, { maxEndpoints = 256, addresses = ['a', 'b', 'c'], strategy = 'round-robin' } = {}) {
  const clock = new VirtualClock();
  const mode = new Map<string, 'ok' | 'fail' | 'hold' | 'slow'>(addresses.map((a) => [a, 'ok']));
  const held: (() => void)[] = [];
  const get = new ServiceBuilder({ name: 'pay', clock, registry: false })
    .metrics({ registry, maxEndpoints })
    .circuitBreaker({ consecutiveFailures: 3 })
    .metrics({ registry, scope: 'attempt' })
    .balance(
      new StaticDiscovery(addresses.map((address) => ({ address, port: 80 }))),
      (endpoint: Endpoint) => async () => {
        const m = mode.get(endpoint.address);
        if (m === 'fail') throw reset();
        if (m === 'hold') await new Promise<void>((resolve) => held.push(resolve));
        if (m === 'slow') await new Promise<void>((resolve) => clock.setTimer(() => resolve(), 200));
        return endpoint.address;
      },
      { strategy: strategy as 'round-robin', failureAccrual: { consecutiveFailures: 2 } },
    );
  return { clock, mode, held, get };
}

test('breaker state and endpoint pending, EWMA and state are gauges read at scrape time', async (t) => {
  const registry = new MetricsRegistry();
  const prom = new Registry();
  registry.registerWith(prom);
  const f = fleet(registry);
  const scrape = () => parsePrometheusTextFormat(registry.text());
  let m = scrape();
  assert.deepEqual(
    ['closed', 'open', 'half-open', 'isolated'].map((state) => value(m, 'sidecarless_circuit_state', { service: 'pay', state })),
    [1, 0, 0, 0],
  );
  assert.equal(value(m, 'sidecarless_endpoint_rtt_ewma_seconds', { endpoint: 'a:80' }), 0.03, 'the 30 ms seed RTT');
  assert.equal(m.find((f) => f.name === 'sidecarless_circuit_state')?.metrics.length, 4, 'one reporter per stack, not two');

  // a holds its calls, b fails (ejected after two), c takes 200 ms: round-robin sends two to each.
  f.mode.set('a', 'hold').set('b', 'fail').set('c', 'slow');
  const calls = Array.from({ length: 6 }, () => f.get().catch((e: unknown) => e));
  await f.clock.advance(200);
  m = scrape();
  assert.equal(value(m, 'sidecarless_endpoint_pending', { service: 'pay', endpoint: 'a:80' }), 2);
  assert.equal(value(m, 'sidecarless_endpoint_pending', { endpoint: 'c:80' }), 0);
  assert.equal(value(m, 'sidecarless_endpoint_state', { endpoint: 'b:80', state: 'ejected' }), 1);
  assert.equal(value(m, 'sidecarless_endpoint_state', { endpoint: 'b:80', state: 'active' }), 0);
  assert.equal(value(m, 'sidecarless_endpoint_state', { endpoint: 'a:80', state: 'active' }), 1);
  assert.equal(value(m, 'sidecarless_circuit_state', { state: 'closed' }), 1, 'successes in between keep it closed');
  for (const release of f.held.splice(0)) release();
  await Promise.all(calls);
  assert.equal(value(scrape(), 'sidecarless_endpoint_pending', { endpoint: 'a:80' }), 0);

  // Everything fails: three in a row open the breaker, which then refuses calls itself.
  f.mode.set('a', 'fail').set('c', 'fail');
  for (let i = 0; i < 3; i++) await assert.rejects(f.clock.settle(f.get()));
  await assert.rejects(f.get(), CircuitOpenError);
  m = scrape();
  assert.equal(value(m, 'sidecarless_circuit_state', { state: 'open' }), 1);
  assert.equal(value(m, 'sidecarless_circuit_state', { state: 'closed' }), 0);

  // The prom-client collect hook serves the same gauges, typed.
  const fromProm = parsePrometheusTextFormat(await prom.metrics());
  assert.equal(fromProm.find((x) => x.name === 'sidecarless_circuit_state')?.type, 'GAUGE');
  assert.equal(value(fromProm, 'sidecarless_circuit_state', { state: 'open' }), 1);
  assert.equal(value(fromProm, 'sidecarless_endpoint_state', { endpoint: 'b:80', state: 'ejected' }), 1);
  assertPromtoolClean(t, registry.text());
  assertPromtoolClean(t, await prom.metrics());
  await f.get.close();
  assert.equal(f.clock.pendingTimers, 0);
  m = scrape();
  assert.equal(m.find((x) => x.name === 'sidecarless_circuit_state')?.metrics.length ?? 0, 0, 'a closed stack leaves the scrape');
});

test('the EWMA gauge follows the round trips under peak EWMA, in seconds', async () => {
  const registry = new MetricsRegistry();
  const f = fleet(registry, { addresses: ['c'], strategy: 'p2c-peak-ewma' });
  const ewma = () => value(parsePrometheusTextFormat(registry.text()), 'sidecarless_endpoint_rtt_ewma_seconds', { endpoint: 'c:80' });
  assert.equal(ewma(), 0.03, 'the 30 ms seed RTT');
  f.mode.set('c', 'slow');
  assert.equal(await f.clock.settle(f.get()), 'c');
  assert.equal(ewma(), 0.2, 'a slower round trip replaces the estimate at once');
  f.mode.set('c', 'ok');
  await f.clock.advance(10_000);
  assert.equal(await f.get(), 'c');
  const decayed = ewma() as number;
  // One decay time later a 0 ms sample weighs 1 - 1/e: 0.2 / e.
  assert.ok(Math.abs(decayed - 0.2 / Math.E) < 1e-3, `decayed to ${decayed}`);
  await f.get.close();
});

test('endpoints past the limit are summed into overflow, without an EWMA', async (t) => {
  const registry = new MetricsRegistry();
  const f = fleet(registry, { maxEndpoints: 2 });
  f.mode.set('a', 'hold').set('b', 'hold').set('c', 'hold');
  const calls = Array.from({ length: 3 }, () => f.get());
  await f.clock.advance(0);
  const m = parsePrometheusTextFormat(registry.text());
  const endpoints = m.find((x) => x.name === 'sidecarless_endpoint_pending')?.metrics.map((s) => s.labels?.endpoint);
  assert.deepEqual(endpoints?.sort(), ['a:80', 'b:80', 'overflow']);
  assert.equal(value(m, 'sidecarless_endpoint_pending', { endpoint: 'overflow' }), 1);
  assert.equal(value(m, 'sidecarless_endpoint_state', { endpoint: 'overflow', state: 'active' }), 1);
  assert.equal(value(m, 'sidecarless_endpoint_rtt_ewma_seconds', { endpoint: 'overflow' }), undefined);
  assertPromtoolClean(t, registry.text());
  for (const release of f.held.splice(0)) release();
  await Promise.all(calls);
  await f.get.close();
});

test('a layer that cannot describe itself costs its gauges, not the scrape', async () => {
  const registry = new MetricsRegistry();
  const fn = new ServiceBuilder({ name: 'odd', registry: false })
    .metrics({ registry })
    .layer({
      name: 'breaker-ish',
      wrap: (inner) => ({
        call: (req, ctx) => inner.call(req, ctx),
        describe: () => {
          throw new Error('no description today');
        },
      }),
    })
    .service(async () => 1);
  await fn();
  const m = parsePrometheusTextFormat(registry.text());
  assert.equal(value(m, 'sidecarless_requests_total', { service: 'odd' }), 1);
  assert.equal(m.find((x) => x.name === 'sidecarless_circuit_state')?.metrics.length ?? 0, 0);
  await fn.close();
});

test('requests are counted under the endpoint that served them, over more endpoints than the recent-endpoint cache holds', async () => {
  const registry = new MetricsRegistry();
  const addresses = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const f = fleet(registry, { addresses });
  f.mode.set('c', 'fail');
  for (let i = 0; i < 7 * 6; i++) await f.get().catch(() => undefined);
  const m = parsePrometheusTextFormat(registry.text());
  const served = (endpoint: string, classification: string) =>
    value(m, 'sidecarless_requests_total', { scope: 'attempt', endpoint: `${endpoint}:80`, classification }) ?? 0;
  // Round robin: six calls each, until c was ejected after its two failures; its share went to the others.
  assert.equal(served('c', 'failure'), 2);
  assert.equal(served('c', 'success'), 0);
  const successes = addresses.filter((a) => a !== 'c').map((a) => served(a, 'success'));
  assert.equal(
    successes.reduce((a, b) => a + b, 0),
    40,
  );
  for (const count of successes) assert.ok(count >= 6 && count <= 7, `each healthy endpoint served 6 or 7 (${successes.join(' ')})`);
  await f.get.close();
});

test('discovery errors are counted per service and source, a discovery shared by two stacks once', async (t) => {
  // A DNS source failing: what `discovery-error` reports on the discovery's own hub.
  class FailingDiscovery extends StaticDiscovery {
    lookupFails(): void {
      this.failed(new Error('ENOTFOUND'));
    }
  }
  const registry = new MetricsRegistry();
  const shared = new FailingDiscovery([{ address: 'a', port: 80 }], { name: 'users.internal' });
  const own = new FailingDiscovery([{ address: 'b', port: 80 }], { name: 'orders.internal' });
  const stack = (name: string, discovery: StaticDiscovery) =>
    new ServiceBuilder({ name, registry: false }).metrics({ registry }).balance(discovery, () => async () => 'ok');
  const users = [stack('users', shared), stack('users', shared)];
  const orders = stack('orders', own);
  try {
    shared.lookupFails();
    shared.lookupFails();
    own.lookupFails();
    const text = registry.text();
    const families = parsePrometheusTextFormat(text);
    const errors = (service: string, discovery: string) => value(families, 'sidecarless_discovery_errors_total', { service, discovery });
    assert.equal(errors('users', 'users.internal'), 2, 'two balancers of one service share the source: not summed');
    assert.equal(errors('orders', 'orders.internal'), 1);
    assert.equal(families.find((f) => f.name === 'sidecarless_discovery_errors_total')?.type, 'COUNTER');
    assertPromtoolClean(t, text);
  } finally {
    for (const fn of [...users, orders]) await fn.close();
    await shared.close();
    await own.close();
  }
});
