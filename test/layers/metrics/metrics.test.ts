import assert from 'node:assert/strict';
import { test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Registry } from 'prom-client';
import {
  type CallContext,
  classification,
  InvalidOptionError,
  LATENCY_BUCKETS_MS,
  type Layer,
  MetricsRegistry,
  metrics,
  OverloadedError,
  quantile,
  ServiceBuilder,
  type ServiceStats,
} from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

function find(stats: ServiceStats[], scope: 'call' | 'attempt'): ServiceStats {
  const found = stats.find((s) => s.scope === scope);
  assert.ok(found, `no ${scope} stats in ${JSON.stringify(stats)}`);
  return found;
}

test('effective and actual views: one call, three attempts, latencies from the virtual clock', async () => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const mock = new MockService<[string], string>();
  const get = new ServiceBuilder({ name: 'users', clock, registry: false })
    .metrics({ registry })
    .retry({ attempts: 3, backoff: { base: '10ms', jitter: 'none' } })
    .metrics({ registry, scope: 'attempt' })
    .service(mock.fn as (id: string, ctx: CallContext) => Promise<string>);
  const pending = get('42');
  // Attempt latencies 25, 25 and 3 ms; backoffs 10 then 20 ms between them.
  for (const [backoff, delay, outcome] of [
    [0, 25, 'fail'],
    [10, 25, 'fail'],
    [20, 3, 'ok'],
  ] as const) {
    await clock.advance(backoff);
    const call = await mock.nextCall();
    await clock.advance(delay);
    if (outcome === 'fail') call.fail(reset());
    else call.respond('user 42');
  }
  assert.equal(await clock.settle(pending), 'user 42');
  const stats = registry.snapshot();
  const call = find(stats, 'call');
  const attempt = find(stats, 'attempt');
  assert.equal(call.requests, 1);
  assert.equal(call.successRate, 1);
  assert.equal(call.retries.retried, 2);
  assert.equal(attempt.requests, 3);
  assert.ok(Math.abs((attempt.successRate ?? 0) - 1 / 3) < 1e-9);
  // 25 + 10 + 25 + 20 + 3 = 83 ms end to end: in the (50, 100] bucket.
  const text = registry.text();
  assert.match(
    text,
    /sidecarless_response_latency_seconds_bucket\{service="users",scope="call",route="",endpoint="",classification="success",status="ok",le="0.05"\} 0/,
  );
  assert.match(
    text,
    /sidecarless_response_latency_seconds_bucket\{service="users",scope="call",route="",endpoint="",classification="success",status="ok",le="0.1"\} 1/,
  );
  assert.match(text, /sidecarless_response_latency_seconds_sum\{service="users",scope="call",[^}]*\} 0.083/);
  assert.match(
    text,
    /sidecarless_requests_total\{service="users",scope="attempt",route="",endpoint="",classification="failure",status="error"\} 2/,
  );
  await get.close();
  assert.equal(registry.states.length, 0, 'closing the stack unregisters its metrics');
  assert.equal(get.events.listenerCount(), 0, 'no listener left behind');
});

test('retry outcomes: exhausted and not retryable; routes and endpoints label the series', async () => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const mock = new MockService<[string], string>().script(
    { error: reset() },
    { error: reset() },
    { error: new Error('bad request') },
    { value: 'ok' },
  );
  const get = new ServiceBuilder({ name: 'orders', clock, registry: false })
    .metrics({ registry })
    .retry({ attempts: 1, backoff: { base: '1ms', jitter: 'none' } })
    .service(mock.fn as (id: string, ctx: CallContext) => Promise<string>, {
      context: (id: string) => ({ route: id === 'x' ? 'GET /x' : 'GET /y' }),
    });
  await assert.rejects(clock.settle(get('x')));
  await assert.rejects(clock.settle(get('y')));
  assert.equal(await clock.settle(get('y')), 'ok');
  const s = find(registry.snapshot(), 'call');
  assert.equal(s.retries.retried, 1);
  assert.equal(s.retries.exhausted, 1);
  assert.equal(s.retries.not_retryable, 1);
  assert.deepEqual(s.routes.map((r) => [r.route, r.requests]).sort(), [
    ['GET /x', 1],
    ['GET /y', 2],
  ]);
  await get.close();
});

test('custom classifications become status labels; route cardinality is bounded', async () => {
  const registry = new MetricsRegistry();
  const classifier = {
    classifyResult: (r: number) => (r >= 500 ? classification('failure', String(r), true) : classification('success', String(r))),
    classifyError: () => classification('failure', 'error'),
  };
  const fn = new ServiceBuilder({ name: 'api', classifier, registry: false })
    .metrics({ registry, maxRoutes: 2 })
    .service(async (status: number) => status, { context: (status: number) => ({ route: `r${status}` }) });
  for (const status of [200, 200, 503, 404]) await fn(status);
  const families = parsePrometheusTextFormat(registry.text());
  const requests = families.find((f) => f.name === 'sidecarless_requests_total');
  assert.ok(requests);
  const byKey = Object.fromEntries(requests.metrics.map((m: any) => [`${m.labels.route}/${m.labels.status}`, Number(m.value)]));
  assert.deepEqual(byKey, { 'r200/200': 2, 'r503/503': 1, 'overflow/404': 1 });
  const failures = requests.metrics.filter((m: any) => m.labels.classification === 'failure');
  assert.equal(failures.length, 1);
  await fn.close();
});

test('a prom-client Registry the user gives serves our metrics at its scrapes', async () => {
  const registry = new MetricsRegistry();
  const prom = new Registry();
  const fn = new ServiceBuilder({ name: 'prom', registry: false }).metrics({ registry, prometheus: prom }).service(async () => 1);
  await fn();
  await fn();
  const text = await prom.metrics();
  const families = parsePrometheusTextFormat(text);
  const requests = families.find((f) => f.name === 'sidecarless_requests_total');
  assert.equal(requests?.type, 'COUNTER');
  assert.equal(Number(requests?.metrics[0]?.value), 2);
  const latency = families.find((f) => f.name === 'sidecarless_response_latency_seconds');
  assert.equal(latency?.type, 'HISTOGRAM');
  // The parser folds labelled histograms into one bucket map (its limitation): check the bucket
  // bounds through it and the per-series count in the text.
  const buckets = latency?.metrics[0]?.buckets ?? {};
  assert.equal(Object.keys(buckets).length, LATENCY_BUCKETS_MS.length + 1);
  assert.equal(buckets['+Inf'], '2');
  assert.match(text, /sidecarless_response_latency_seconds_count\{service="prom",scope="call"[^}]*\} 2\n/);
  await fn.close();
});

test('windowed RPS and percentiles follow the clock', async () => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const fn = new ServiceBuilder({ name: 'rps', clock, registry: false }).metrics({ registry }).service(async () => 'ok');
  for (let i = 0; i < 50; i++) await fn();
  await clock.advance(5_000);
  assert.ok(Math.abs(find(registry.snapshot(), 'call').rps - 10) < 1e-9, '50 calls over 5 s');
  for (let i = 0; i < 30; i++) await fn();
  await clock.advance(1_000);
  assert.equal(find(registry.snapshot({ windowMs: 10_000 }), 'call').windowRequests, 80, 'the 10 s window holds every call');
  const s = find(registry.snapshot({ windowMs: 1_000 }), 'call');
  assert.equal(s.windowRequests, 30, 'a 1 s window holds only the calls after the sample at 5 s');
  assert.ok(Math.abs(s.rps - 30) < 1e-9);
  assert.equal(s.latencyMs.p50, 0.5, 'zero-latency calls interpolate inside the first bucket');
  await fn.close();
});

test('quantile interpolates like histogram_quantile', () => {
  const counts = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  counts[5] = 100; // (5, 10] ms
  assert.equal(quantile(counts, 0.5), 7.5);
  assert.equal(quantile(counts, 0.99), 9.95);
  assert.equal(quantile(new Float64Array(26), 0.5), null);
});

test('bad options are refused with the field named; two call-scope layers in one stack too', () => {
  assert.throws(
    () => metrics({ maxRoutes: 0 }),
    (e: unknown) => e instanceof InvalidOptionError && /metrics\.maxRoutes/.test(e.message) && /1 to 10000/.test(e.message),
  );
  assert.throws(() => metrics({ scope: 'both' as 'call' }), /metrics\.scope.*"call" or "attempt"/);
  assert.throws(() => metrics({ service: 'has space' }), /metrics\.service/);
  const registry = new MetricsRegistry();
  assert.throws(
    () =>
      new ServiceBuilder({ registry: false })
        .metrics({ registry })
        .metrics({ registry })
        .service(async () => 1),
    (e: unknown) => e instanceof InvalidOptionError && /scope: "attempt"/.test(e.message),
  );
});

test('calls a layer refused are counted by code; breaker transitions by the state entered', async () => {
  const registry = new MetricsRegistry();
  let n = 0;
  const shedder: Layer<unknown[], unknown> = {
    name: 'shedder',
    wrap: (inner, env) => ({
      call(req, ctx) {
        if (++n % 2 === 0) return inner.call(req, ctx);
        env.events.emit('circuit-state', {
          service: env.service,
          from: 'closed',
          to: 'open',
          reason: 'failures',
          retryAt: undefined,
        } as never);
        return Promise.reject(new OverloadedError('queue full'));
      },
    }),
  };
  const fn = new ServiceBuilder({ name: 'shed', registry: false })
    .metrics({ registry })
    .layer(shedder)
    .service(async () => 'ok');
  for (let i = 0; i < 4; i++) await fn().catch(() => {});
  const s = find(registry.snapshot(), 'call');
  assert.deepEqual(s.refusals, { ERR_MESH_OVERLOADED: 2 });
  assert.deepEqual(s.events, { 'circuit-open': 2 });
  assert.match(
    registry.text(),
    /sidecarless_refusals_total\{service="shed",scope="call",route="",layer="load-shed",code="ERR_MESH_OVERLOADED"\} 2/,
  );
  await fn.close();
});

test('refusals are counted per route: a timeout on one route does not show on another', async () => {
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const fn = new ServiceBuilder({ name: 'routes', clock, registry: false })
    .metrics({ registry })
    .timeout('10ms')
    .service(
      (path: string, ctx: CallContext) =>
        new Promise<string>((resolve, reject) => {
          if (path === '/fast') resolve('ok');
          else ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason));
        }),
      { context: (path: string) => ({ route: `GET ${path}` }) },
    );
  assert.equal(await fn('/fast'), 'ok');
  await assert.rejects(clock.settle(fn('/slow')), { name: 'TimeoutError' });
  await assert.rejects(clock.settle(fn('/slow')), { name: 'TimeoutError' });
  const text = registry.text();
  assert.match(
    text,
    /sidecarless_refusals_total\{service="routes",scope="call",route="GET \/slow",layer="timeout",code="ERR_MESH_TIMEOUT"\} 2/,
  );
  assert.doesNotMatch(text, /sidecarless_refusals_total\{[^}]*route="GET \/fast"/);
  assert.deepEqual(find(registry.snapshot(), 'call').refusals, { ERR_MESH_TIMEOUT: 2 }, 'the service total is kept');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('refusals keep the layer that refused when layers share an error code', async () => {
  const registry = new MetricsRegistry();
  let n = 0;
  // Two layers refusing with the same code: load-shed, then a concurrency limit.
  const refusing: Layer<unknown[], unknown> = {
    name: 'refusing',
    wrap: () => ({
      call: () =>
        Promise.reject(++n === 1 ? new OverloadedError('not ready') : new OverloadedError('limit reached', { layer: 'concurrency-limit' })),
    }),
  };
  const fn = new ServiceBuilder({ name: 'codes', registry: false })
    .metrics({ registry })
    .layer(refusing)
    .service(async () => 'ok');
  for (let i = 0; i < 3; i++) await fn().catch(() => {});
  const text = registry.text();
  assert.match(text, /sidecarless_refusals_total\{[^}]*layer="load-shed",code="ERR_MESH_OVERLOADED"\} 1/);
  assert.match(text, /sidecarless_refusals_total\{[^}]*layer="concurrency-limit",code="ERR_MESH_OVERLOADED"\} 2/);
  assert.deepEqual(find(registry.snapshot(), 'call').refusals, { ERR_MESH_OVERLOADED: 3 });
  await fn.close();
});
