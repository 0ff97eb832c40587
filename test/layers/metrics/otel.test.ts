import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metrics as otelMetrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  type CallContext,
  type Endpoint,
  type MeterProviderLike,
  MetricsRegistry,
  ServiceBuilder,
  SetDiscovery,
  StaticDiscovery,
  TimeoutError,
} from '../../../src/index.js';
import { FAMILIES } from '../../../src/layers/metrics/exposition.js';
import { VirtualClock } from '../../../src/testing/index.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

test('without a MeterProvider nothing is bound', () => {
  assert.equal(new MetricsRegistry().bindOpenTelemetry(), undefined);
});

test('observable instruments report requests, retries, in-flight and latency percentiles', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // A long interval: the test collects by forceFlush, never by the timer.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  const provider = new MeterProvider({ readers: [reader] });
  otelMetrics.setGlobalMeterProvider(provider);
  const registry = new MetricsRegistry();
  let n = 0;
  const fn = new ServiceBuilder({ name: 'inventory', registry: false })
    .metrics({ registry })
    .retry({ attempts: 2, backoff: { base: '1ms', jitter: 'none' } })
    .service(async () => {
      if (++n % 2 === 1) throw reset();
      return 'ok';
    });
  try {
    for (let i = 0; i < 4; i++) assert.equal(await fn(), 'ok');
    await reader.forceFlush();
    const scope = exporter
      .getMetrics()
      .at(-1)
      ?.scopeMetrics.find((s) => s.scope.name === 'sidecarless');
    assert.ok(scope, 'sidecarless meter exported');
    const metric = (name: string) => {
      const found = scope.metrics.find((m) => m.descriptor.name === name);
      assert.ok(found, `${name} among ${scope.metrics.map((m) => m.descriptor.name).join(', ')}`);
      return found.dataPoints as DataPoint<number>[];
    };
    const requests = metric('sidecarless.requests');
    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.value, 4);
    assert.deepEqual(
      {
        service: requests[0]?.attributes.service,
        scope: requests[0]?.attributes.scope,
        classification: requests[0]?.attributes.classification,
      },
      { service: 'inventory', scope: 'call', classification: 'success' },
    );
    const retried = metric('sidecarless.retries').find((p) => p.attributes.outcome === 'retried');
    assert.equal(retried?.value, 4);
    assert.equal(metric('sidecarless.requests.in_flight')[0]?.value, 0);
    const quantiles = metric('sidecarless.response.latency').map((p) => p.attributes.quantile);
    assert.deepEqual(quantiles.sort(), ['p50', 'p95', 'p99']);
    // Durations in seconds, as OpenTelemetry's conventions (and our Prometheus histogram) have them.
    const latency = scope.metrics.find((m) => m.descriptor.name === 'sidecarless.response.latency');
    assert.equal(latency?.descriptor.unit, 's');
    assert.match(latency?.descriptor.description ?? '', /percentiles in seconds/);
    const p99 = metric('sidecarless.response.latency').find((p) => p.attributes.quantile === 'p99')?.value;
    const p99Ms = registry.snapshot().find((s) => s.service === 'inventory')?.latencyMs.p99 ?? Number.NaN;
    assert.ok(Math.abs((p99 ?? Number.NaN) - p99Ms / 1000) < 1e-9, `p99 ${p99} s vs ${p99Ms} ms`);
    assert.equal(scope.metrics.find((m) => m.descriptor.name === 'sidecarless.requests')?.descriptor.unit, '{request}');
  } finally {
    await fn.close();
    otelMetrics.disable();
    await provider.shutdown();
  }
});

test('breaker state, endpoint gauges and per-route retries reach the OpenTelemetry SDK', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const registry = new MetricsRegistry();
  // Bound to this provider directly: no global state shared with the other test.
  const unbind = registry.bindOpenTelemetry(provider);
  assert.ok(unbind);
  let n = 0;
  const fn = new ServiceBuilder({ name: 'ledger', registry: false })
    .metrics({ registry })
    .circuitBreaker()
    .retry({ attempts: 1, backoff: { base: '1ms', jitter: 'none' } })
    .balance(
      new StaticDiscovery([{ address: 'x', port: 80 }]),
      () => async () => {
        if (++n === 1) throw reset();
        return 'ok';
      },
      { strategy: 'round-robin' },
    );
  try {
    assert.equal(await fn(), 'ok');
    await reader.forceFlush();
    const scope = exporter
      .getMetrics()
      .at(-1)
      ?.scopeMetrics.find((s) => s.scope.name === 'sidecarless');
    assert.ok(scope);
    const points = (name: string) => (scope.metrics.find((m) => m.descriptor.name === name)?.dataPoints ?? []) as DataPoint<number>[];
    const circuit = Object.fromEntries(points('sidecarless.circuit.state').map((p) => [p.attributes.state, p.value]));
    assert.deepEqual(circuit, { closed: 1, open: 0, 'half-open': 0, isolated: 0 });
    assert.deepEqual(
      points('sidecarless.endpoint.pending').map((p) => [p.attributes.endpoint, p.value]),
      [['x:80', 0]],
    );
    assert.equal(points('sidecarless.endpoint.rtt_ewma')[0]?.value, 0.03, 'round-robin keeps the seed estimate');
    const active = points('sidecarless.endpoint.state').find((p) => p.attributes.state === 'active');
    assert.equal(active?.value, 1);
    const retried = points('sidecarless.retries').find((p) => p.attributes.outcome === 'retried');
    assert.deepEqual([retried?.attributes.route, retried?.value], ['', 1]);
  } finally {
    unbind();
    await fn.close();
    await provider.shutdown();
  }
});

/** A discovery whose lookups fail when the test says so. */
class ScriptedDiscovery extends SetDiscovery {
  readonly kind = 'scripted';
  constructor(endpoints: readonly Endpoint[]) {
    super('inventory-srv', undefined);
    this.publish(endpoints);
  }
  lookupFails(): void {
    this.failed(new Error('lookup timed out'));
  }
}

/** The last export of the `sidecarless` meter, as name -> points. */
async function collect(reader: PeriodicExportingMetricReader, exporter: InMemoryMetricExporter): Promise<Map<string, DataPoint<number>[]>> {
  await reader.forceFlush();
  const scope = exporter
    .getMetrics()
    .at(-1)
    ?.scopeMetrics.find((s) => s.scope.name === 'sidecarless');
  return new Map((scope?.metrics ?? []).map((m) => [m.descriptor.name, m.dataPoints as DataPoint<number>[]]));
}

const rows = (points: readonly { labels: Readonly<Record<string, unknown>>; value: number }[]) =>
  points.map((p) => JSON.stringify([Object.entries(p.labels).sort(), p.value])).sort();

test('OpenTelemetry carries every Prometheus family with the same samples, discovery errors and refusals included', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const clock = new VirtualClock();
  const registry = new MetricsRegistry();
  const unbind = registry.bindOpenTelemetry(provider);
  assert.ok(unbind);
  const discovery = new ScriptedDiscovery([{ id: 'a:80', address: 'a', port: 80, weight: 1, metadata: {} }]);
  let hang = false;
  const fn = new ServiceBuilder({ name: 'inventory', clock, registry: false })
    .metrics({ registry })
    .timeout('50ms')
    .circuitBreaker()
    .retry({ attempts: 1, backoff: { base: '1ms', jitter: 'none' } })
    .balance(
      discovery,
      () => async (ctx: CallContext) => {
        if (!hang) return 'ok';
        const signal = ctx.signal;
        return new Promise<string>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      },
      { strategy: 'round-robin' },
    );
  try {
    assert.equal(await clock.settle(fn()), 'ok');
    hang = true;
    await assert.rejects(clock.settle(fn()), TimeoutError);
    discovery.lookupFails();
    discovery.lookupFails();
    const families = registry.families();
    const points = await collect(reader, exporter);
    FAMILIES.forEach((description, i) => {
      const family = families[i];
      assert.equal(family?.name, description.name);
      assert.ok(family.samples.length > 0, `${family.name} has samples in this scenario`);
      const exported = points.get(description.otel.name);
      assert.ok(exported, `${description.otel.name} exported for ${family.name}`);
      if (description.otel.instrument === 'quantiles') {
        assert.deepEqual(exported.map((p) => p.attributes.quantile).sort(), ['p50', 'p95', 'p99']);
        return;
      }
      assert.deepEqual(
        rows(exported.map((p) => ({ labels: p.attributes as Record<string, unknown>, value: p.value }))),
        rows(family.samples),
        `${description.otel.name} carries the samples of ${family.name}`,
      );
    });
    const errors = points.get('sidecarless.discovery.errors');
    assert.deepEqual(
      errors?.map((p) => [p.attributes, p.value]),
      [[{ service: 'inventory', discovery: 'inventory-srv' }, 2]],
    );
    assert.match(registry.text(), /^sidecarless_discovery_errors_total\{service="inventory",discovery="inventory-srv"\} 2$/m);
    const refusal = points.get('sidecarless.refusals')?.[0];
    assert.deepEqual([refusal?.attributes.code, refusal?.value], ['ERR_MESH_TIMEOUT', 1]);
    const timeouts = points.get('sidecarless.layer.events')?.find((p) => p.attributes.event === 'timeout');
    assert.equal(timeouts?.value, 1);
  } finally {
    unbind();
    await fn.close();
    await discovery.close();
    await provider.shutdown();
  }
});

/** A provider whose meters report which batch callbacks are registered on them. */
function countingProvider(provider: MeterProviderLike): MeterProviderLike & { readonly callbacks: Set<unknown> } {
  const callbacks = new Set<unknown>();
  return {
    callbacks,
    getMeter(name, version) {
      const meter = provider.getMeter(name, version);
      return Object.assign(Object.create(meter), {
        addBatchObservableCallback(callback: never, observables: never) {
          callbacks.add(callback);
          meter.addBatchObservableCallback(callback, observables);
        },
        removeBatchObservableCallback(callback: never, observables: never) {
          assert.ok(callbacks.delete(callback), 'removes a callback it registered');
          meter.removeBatchObservableCallback(callback, observables);
        },
      });
    },
  };
}

test('the OpenTelemetry callback is withdrawn when the last metrics layer closes, and made again by the next', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const counting = countingProvider(provider);
  // Through the global provider: what a metrics layer binds its registry to on its own.
  otelMetrics.setGlobalMeterProvider(counting as never);
  const registry = new MetricsRegistry();
  const build = () => new ServiceBuilder({ name: 'orders', registry: false }).metrics({ registry }).service(async () => 'ok');
  try {
    const first = build();
    const second = new ServiceBuilder({ name: 'users', registry: false }).metrics({ registry }).service(async () => 'ok');
    assert.equal(counting.callbacks.size, 1, 'one callback per registry');
    await first();
    await first.close();
    assert.equal(counting.callbacks.size, 1, 'still layers left');
    await second.close();
    assert.equal(counting.callbacks.size, 0, 'no layer left: the meter no longer holds the registry');
    const third = build();
    assert.equal(counting.callbacks.size, 1);
    await third();
    const requests = (await collect(reader, exporter)).get('sidecarless.requests');
    assert.deepEqual(
      requests?.map((p) => [p.attributes.service, p.value]),
      [['orders', 1]],
    );
    await third.close();
    assert.equal(counting.callbacks.size, 0);
  } finally {
    otelMetrics.disable();
    await provider.shutdown();
  }
});

test('a binding stopped by hand stays stopped when layers come and go', async () => {
  const provider = new MeterProvider({ readers: [] });
  const counting = countingProvider(provider);
  const registry = new MetricsRegistry();
  const unbind = registry.bindOpenTelemetry(counting);
  assert.ok(unbind);
  assert.equal(counting.callbacks.size, 0, 'nothing to observe yet');
  const fn = new ServiceBuilder({ name: 'orders', registry: false }).metrics({ registry }).service(async () => 'ok');
  try {
    assert.equal(counting.callbacks.size, 1);
    unbind();
    assert.equal(counting.callbacks.size, 0);
    await fn.close();
    assert.equal(counting.callbacks.size, 0, 'no second withdrawal');
    const again = new ServiceBuilder({ name: 'orders', registry: false }).metrics({ registry }).service(async () => 'ok');
    assert.equal(counting.callbacks.size, 0);
    await again.close();
  } finally {
    await fn.close(); // idempotent: for when an assertion threw first
    await provider.shutdown();
  }
});
