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
import { MetricsRegistry, ServiceBuilder } from '../../../src/index.js';

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
