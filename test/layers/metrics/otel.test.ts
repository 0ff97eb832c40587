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
import { MetricsRegistry, ServiceBuilder, StaticDiscovery } from '../../../src/index.js';

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
