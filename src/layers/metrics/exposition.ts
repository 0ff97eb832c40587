/**
 * Scrape-time exposition. The hot path only bumps our own counters; this module turns them into
 * metric families once per scrape and hands them out as Prometheus text (our own renderer, no
 * dependency) or to prom-client, whose `Registry` accepts any metric object with a `get()` — its
 * collect hook — so our numbers appear in a registry the user already serves, next to theirs.
 *
 * @module
 */

import { LATENCY_BUCKETS_MS } from './buckets.js';
import { collectLayerGauges } from './layer-state.js';
import { type MetricsState, RETRY_OUTCOMES } from './state.js';

/** One sample line: suffix (`_bucket`, `_sum`, `_count` or none), labels, value. */
export interface Sample {
  readonly suffix: '' | '_bucket' | '_sum' | '_count';
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A metric family as Prometheus knows it. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly samples: Sample[];
}

/** How OpenTelemetry publishes a family: instrument name, unit and kind. */
export interface OtelForm {
  readonly name: string;
  readonly unit: string;
  /** The instrument's description when the Prometheus help does not fit it (a histogram seen as quantiles). */
  readonly description?: string;
  /**
   * `counter`, `up-down-counter` and `gauge` carry the Prometheus samples as they are;
   * `quantiles` stands for a histogram, which OpenTelemetry cannot observe asynchronously: a
   * gauge of the recent p50/p95/p99 per service and scope (`quantile` attribute) instead.
   */
  readonly instrument: 'counter' | 'up-down-counter' | 'gauge' | 'quantiles';
}

/** One family as both expositions know it: the single description they are built from. */
export interface FamilyDescription {
  readonly key: string;
  /** Prometheus name. */
  readonly name: string;
  readonly help: string;
  readonly type: MetricFamily['type'];
  readonly otel: OtelForm;
}

/**
 * Every family, in the order {@link collectFamilies} returns them: Prometheus text, the
 * prom-client collectors and the OpenTelemetry instruments are all made from this list, so a
 * family added here reaches all three.
 */
export const FAMILIES = [
  {
    key: 'requests',
    name: 'sidecarless_requests_total',
    help: 'Settled requests by route, endpoint, classification and status.',
    type: 'counter',
    otel: { name: 'sidecarless.requests', unit: '{request}', instrument: 'counter' },
  },
  {
    key: 'latency',
    name: 'sidecarless_response_latency_seconds',
    help: 'Response latency in seconds (Linkerd buckets).',
    type: 'histogram',
    otel: {
      name: 'sidecarless.response.latency',
      // Seconds, as OpenTelemetry's semantic conventions measure durations (and as Prometheus here).
      unit: 's',
      instrument: 'quantiles',
      description: 'Recent response latency percentiles in seconds (10 s window), by quantile.',
    },
  },
  {
    key: 'inFlight',
    name: 'sidecarless_requests_in_flight',
    help: 'Requests in flight.',
    type: 'gauge',
    otel: { name: 'sidecarless.requests.in_flight', unit: '{request}', instrument: 'up-down-counter' },
  },
  {
    key: 'retries',
    name: 'sidecarless_retries_total',
    help: 'Retry decisions per route: retries sent and failures not retried, by reason.',
    type: 'counter',
    otel: { name: 'sidecarless.retries', unit: '{decision}', instrument: 'counter' },
  },
  {
    key: 'events',
    name: 'sidecarless_layer_events_total',
    help: 'Events of other layers (breaker, shedding, rate limit, hedge, timeout).',
    type: 'counter',
    otel: { name: 'sidecarless.layer.events', unit: '{event}', instrument: 'counter' },
  },
  {
    key: 'refusals',
    name: 'sidecarless_refusals_total',
    help: 'Calls refused or ended by a mesh layer (load shed, rate limit, open circuit, timeout, no endpoints), by route and error code.',
    type: 'counter',
    otel: { name: 'sidecarless.refusals', unit: '{request}', instrument: 'counter' },
  },
  {
    key: 'circuitState',
    name: 'sidecarless_circuit_state',
    help: 'Circuit breakers in each state (closed, open, half-open, isolated): 1 for the state a lone breaker is in.',
    type: 'gauge',
    otel: { name: 'sidecarless.circuit.state', unit: '{breaker}', instrument: 'gauge' },
  },
  {
    key: 'endpointPending',
    name: 'sidecarless_endpoint_pending',
    help: 'Calls in flight per balancer endpoint.',
    type: 'gauge',
    otel: { name: 'sidecarless.endpoint.pending', unit: '{request}', instrument: 'gauge' },
  },
  {
    key: 'endpointEwma',
    name: 'sidecarless_endpoint_rtt_ewma_seconds',
    help: 'Peak-EWMA round-trip estimate per balancer endpoint, in seconds (the load the balancer compares).',
    type: 'gauge',
    otel: { name: 'sidecarless.endpoint.rtt_ewma', unit: 's', instrument: 'gauge' },
  },
  {
    key: 'endpointState',
    name: 'sidecarless_endpoint_state',
    help: "Balancer endpoints in each state (active = ready, ejected, probing, removed = draining): 1 for the endpoint's state.",
    type: 'gauge',
    otel: { name: 'sidecarless.endpoint.state', unit: '{endpoint}', instrument: 'gauge' },
  },
  {
    key: 'discoveryErrors',
    name: 'sidecarless_discovery_errors_total',
    help: 'Failed lookups of the discovery feeding each balancer (the last good endpoint set stays in force), by discovery source.',
    type: 'counter',
    otel: { name: 'sidecarless.discovery.errors', unit: '{lookup}', instrument: 'counter' },
  },
] as const satisfies readonly FamilyDescription[];

type FamilyKey = (typeof FAMILIES)[number]['key'];

/** Metric names by family, shared by the exposition, the OpenTelemetry bridge and the tests. */
export const METRIC_NAMES = Object.freeze(Object.fromEntries(FAMILIES.map((f) => [f.key, f.name]))) as {
  readonly [F in (typeof FAMILIES)[number] as F['key']]: F['name'];
};

const LE = [...LATENCY_BUCKETS_MS.map((ms) => String(ms / 1000)), '+Inf'];

/** The families of a set of metrics layers, in the order of {@link FAMILIES}. */
export function collectFamilies(states: Iterable<MetricsState>): MetricFamily[] {
  // Iterated twice (counters, then layer states): a one-shot iterable must not run dry.
  const list = [...states];
  const requests: Sample[] = [];
  const latency: Sample[] = [];
  const inFlight: Sample[] = [];
  const retries: Sample[] = [];
  const events: Sample[] = [];
  const refusals: Sample[] = [];
  for (const state of list) {
    for (const route of state.routes) {
      inFlight.push({ suffix: '', labels: route.labels, value: route.inFlight });
      for (const series of route.series) {
        requests.push({ suffix: '', labels: series.labels, value: series.count });
        let cumulative = 0;
        for (let i = 0; i < LE.length; i++) {
          cumulative += series.buckets[i] as number;
          latency.push({ suffix: '_bucket', labels: { ...series.labels, le: LE[i] as string }, value: cumulative });
        }
        latency.push({ suffix: '_sum', labels: series.labels, value: series.sumMs / 1000 });
        latency.push({ suffix: '_count', labels: series.labels, value: series.count });
      }
    }
    // Per route: the service totals are the sum, and a per-route series lets an operator see
    // which route burns the budget.
    if (state.scope === 'call') {
      for (const route of state.routes) {
        RETRY_OUTCOMES.forEach((outcome, i) => {
          retries.push({ suffix: '', labels: { ...route.labels, outcome }, value: route.retries[i] as number });
        });
      }
    }
    for (const [event, value] of state.events) events.push({ suffix: '', labels: { ...state.labels, event }, value });
    for (const route of state.routes) {
      for (const { layer, code, count } of route.refusals.values())
        refusals.push({ suffix: '', labels: { ...route.labels, layer, code }, value: count });
    }
  }
  const gauges = collectLayerGauges(list);
  const samples: Record<FamilyKey, Sample[]> = {
    requests,
    latency,
    inFlight,
    retries,
    events,
    refusals,
    circuitState: gauges.circuit,
    endpointPending: gauges.pending,
    endpointEwma: gauges.ewma,
    endpointState: gauges.endpointState,
    discoveryErrors: gauges.discoveryErrors,
  };
  return FAMILIES.map((f) => ({ name: f.name, help: f.help, type: f.type, samples: samples[f.key] }));
}

const escapeLabel = (value: string): string => value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** Prometheus text exposition format 0.0.4. */
export function renderText(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels)
        .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
        .join(',');
      lines.push(`${family.name}${sample.suffix}${labels ? `{${labels}}` : ''} ${formatValue(sample.value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Content type of {@link renderText}. */
export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The part of prom-client's `Registry` we use; any registry instance fits. */
export interface PromRegistryLike {
  registerMetric(metric: any): void;
  getSingleMetric(name: string): unknown;
  removeSingleMetric(name: string): void;
  metrics(): Promise<string>;
  readonly contentType: string;
}

/**
 * Registers one collector per family in a prom-client registry: each reads our counters when
 * the registry is scraped. Returns a function that removes them again.
 */
export function registerCollectors(prom: PromRegistryLike, source: () => MetricFamily[]): () => void {
  // A scrape asks every collector in one synchronous loop: compute the families once for all.
  let cached: MetricFamily[] | undefined;
  const families = (): MetricFamily[] => {
    if (cached === undefined) {
      cached = source();
      queueMicrotask(() => {
        cached = undefined;
      });
    }
    return cached;
  };
  const collectors = FAMILIES.map(({ name }, index) => ({
    name,
    help: '',
    type: '',
    aggregator: 'sum',
    async get() {
      const family = families()[index] as MetricFamily;
      return {
        name,
        help: family.help,
        type: family.type,
        aggregator: 'sum',
        values: family.samples.map((s) => ({ metricName: `${name}${s.suffix}`, labels: s.labels, value: s.value })),
      };
    },
    reset() {},
  }));
  for (const collector of collectors) {
    if (prom.getSingleMetric(collector.name) !== undefined) prom.removeSingleMetric(collector.name);
    prom.registerMetric(collector);
  }
  return () => {
    for (const collector of collectors) if (prom.getSingleMetric(collector.name) === collector) prom.removeSingleMetric(collector.name);
  };
}
