/**
 * OpenTelemetry metrics through `@opentelemetry/api`, with observable instruments only: the SDK
 * calls back at each collection and we report our counters, so the hot path never touches
 * OpenTelemetry. OpenTelemetry has no asynchronous histogram, so latency goes out as a gauge of
 * the recent percentiles (`quantile` attribute); the full histogram stays in Prometheus.
 *
 * @module
 */

import { type BatchObservableResult, createNoopMeter, type Meter, metrics, type Observable } from '@opentelemetry/api';
import type { MetricsRegistry } from './registry.js';
import { RETRY_OUTCOMES } from './state.js';

/** The part of an OpenTelemetry `MeterProvider` we use. */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): Meter;
}

const NoopMeter = createNoopMeter().constructor;

/** See {@link MetricsRegistry.bindOpenTelemetry}. */
export function bindOpenTelemetry(registry: MetricsRegistry, provider?: MeterProviderLike): (() => void) | undefined {
  const meter = (provider ?? metrics.getMeterProvider()).getMeter('sidecarless');
  if (meter instanceof NoopMeter) return undefined;
  const requests = meter.createObservableCounter('sidecarless.requests', { description: 'Settled requests.', unit: '{request}' });
  const inFlight = meter.createObservableUpDownCounter('sidecarless.requests.in_flight', {
    description: 'Requests in flight.',
    unit: '{request}',
  });
  const retries = meter.createObservableCounter('sidecarless.retries', { description: 'Retry decisions by outcome.', unit: '{decision}' });
  const latency = meter.createObservableGauge('sidecarless.response.latency', {
    description: 'Recent response latency percentiles (10 s window).',
    unit: 'ms',
  });
  const observables: Observable[] = [requests, inFlight, retries, latency];
  const callback = (result: BatchObservableResult): void => {
    for (const state of registry.states) {
      for (const route of state.routes) {
        result.observe(inFlight, route.inFlight, route.labels);
        for (const series of route.series) result.observe(requests, series.count, series.labels);
      }
      if (state.scope === 'call') {
        RETRY_OUTCOMES.forEach((outcome, i) => {
          result.observe(retries, state.retries[i] as number, { ...state.labels, outcome });
        });
      }
    }
    for (const stats of registry.snapshot()) {
      const attrs = { service: stats.service, scope: stats.scope };
      for (const q of ['p50', 'p95', 'p99'] as const) {
        const value = stats.latencyMs[q];
        if (value !== null) result.observe(latency, value, { ...attrs, quantile: q });
      }
    }
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => meter.removeBatchObservableCallback(callback, observables);
}
