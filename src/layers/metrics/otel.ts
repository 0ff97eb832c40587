/**
 * OpenTelemetry metrics through `@opentelemetry/api`, with observable instruments only: the SDK
 * calls back at each collection and we report our counters, so the hot path never touches
 * OpenTelemetry. The instruments are made from the same family list as the Prometheus
 * exposition (`FAMILIES` in `exposition.ts`) and observe the same samples, so both views carry
 * the same families. OpenTelemetry has no asynchronous histogram, so latency goes out as a gauge
 * of the recent percentiles (`quantile` attribute); the full histogram stays in Prometheus.
 *
 * The batch callback holds the registry: it is registered only while the registry has metrics
 * layers, so once the last one is closed the meter lets go of it (and collections stop calling
 * into an empty registry).
 *
 * @module
 */

import { type BatchObservableResult, createNoopMeter, type Meter, metrics, type Observable } from '@opentelemetry/api';
import { collectFamilies, FAMILIES, type OtelForm } from './exposition.js';
import type { MetricsState } from './state.js';

/** The part of an OpenTelemetry `MeterProvider` we use. */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): Meter;
}

/** What the bridge reads: the registry's layers and its windowed snapshot. */
export interface OtelSource {
  readonly states: readonly MetricsState[];
  snapshot(): readonly { service: string; scope: string; latencyMs: Readonly<Record<'p50' | 'p95' | 'p99', number | null>> }[];
}

/** The registration of a source's callback on one meter, which can be withdrawn and made again. */
export interface OtelBinding {
  /** Registers the callback (idempotent). */
  attach(): void;
  /** Withdraws the callback (idempotent): the meter keeps no reference to the source. */
  detach(): void;
}

const NoopMeter = createNoopMeter().constructor;
const QUANTILES = ['p50', 'p95', 'p99'] as const;

/**
 * The instruments of every family on `provider`'s (default: the global one's) `sidecarless`
 * meter, and a callback observing them; not yet attached. `undefined` when no provider is
 * registered.
 */
export function bindOpenTelemetry(source: OtelSource, provider?: MeterProviderLike): OtelBinding | undefined {
  const meter = (provider ?? metrics.getMeterProvider()).getMeter('sidecarless');
  if (meter instanceof NoopMeter) return undefined;
  const instruments: Observable[] = FAMILIES.map(({ help, otel }) => {
    const options = { description: (otel as OtelForm).description ?? help, unit: otel.unit };
    if (otel.instrument === 'counter') return meter.createObservableCounter(otel.name, options);
    if (otel.instrument === 'up-down-counter') return meter.createObservableUpDownCounter(otel.name, options);
    return meter.createObservableGauge(otel.name, options);
  });
  const callback = (result: BatchObservableResult): void => {
    const families = collectFamilies(source.states);
    FAMILIES.forEach(({ otel }, i) => {
      const instrument = instruments[i] as Observable;
      if (otel.instrument === 'quantiles') {
        for (const stats of source.snapshot()) {
          for (const quantile of QUANTILES) {
            const value = stats.latencyMs[quantile];
            if (value !== null) result.observe(instrument, value / 1000, { service: stats.service, scope: stats.scope, quantile });
          }
        }
        return;
      }
      for (const sample of (families[i] as (typeof families)[number]).samples) result.observe(instrument, sample.value, sample.labels);
    });
  };
  let attached = false;
  return {
    attach() {
      if (attached) return;
      attached = true;
      meter.addBatchObservableCallback(callback, instruments);
    },
    detach() {
      if (!attached) return;
      attached = false;
      meter.removeBatchObservableCallback(callback, instruments);
    },
  };
}
