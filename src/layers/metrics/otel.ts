/**
 * OpenTelemetry metrics through `@opentelemetry/api`, with observable instruments only: the SDK
 * calls back at each collection and we report our counters, so the hot path never touches
 * OpenTelemetry. OpenTelemetry has no asynchronous histogram, so latency goes out as a gauge of
 * the recent percentiles (`quantile` attribute); the full histogram stays in Prometheus. Breaker
 * and endpoint states are observable gauges read from the layers' descriptions at collection.
 *
 * @module
 */

import { type BatchObservableResult, createNoopMeter, type Meter, metrics, type Observable } from '@opentelemetry/api';
import { collectLayerGauges } from './layer-state.js';
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
  const circuit = meter.createObservableGauge('sidecarless.circuit.state', {
    description: 'Circuit breakers in each state: 1 for the state a lone breaker is in.',
    unit: '{breaker}',
  });
  const pending = meter.createObservableGauge('sidecarless.endpoint.pending', {
    description: 'Calls in flight per balancer endpoint.',
    unit: '{request}',
  });
  const ewma = meter.createObservableGauge('sidecarless.endpoint.rtt_ewma', {
    description: 'Peak-EWMA round-trip estimate per balancer endpoint.',
    unit: 's',
  });
  const endpointState = meter.createObservableGauge('sidecarless.endpoint.state', {
    description: 'Balancer endpoints in each state (active = ready, ejected, probing, removed): 1 for the endpoint state.',
    unit: '{endpoint}',
  });
  const observables: Observable[] = [requests, inFlight, retries, latency, circuit, pending, ewma, endpointState];
  const callback = (result: BatchObservableResult): void => {
    const states = registry.states;
    for (const state of states) {
      for (const route of state.routes) {
        result.observe(inFlight, route.inFlight, route.labels);
        for (const series of route.series) result.observe(requests, series.count, series.labels);
        if (state.scope === 'call') {
          RETRY_OUTCOMES.forEach((outcome, i) => {
            result.observe(retries, route.retries[i] as number, { ...route.labels, outcome });
          });
        }
      }
    }
    const gauges = collectLayerGauges(states);
    for (const [instrument, samples] of [
      [circuit, gauges.circuit],
      [pending, gauges.pending],
      [ewma, gauges.ewma],
      [endpointState, gauges.endpointState],
    ] as const) {
      for (const sample of samples) result.observe(instrument, sample.value, sample.labels);
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
