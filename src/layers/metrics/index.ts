/**
 * # metrics
 *
 * Linkerd's golden metrics for a stack — requests by classification and status, a latency
 * histogram on Linkerd's buckets, requests in flight, retries by outcome (sent, or not sent
 * because of the budget, the attempt limit, the deadline, a failure that is not retryable) and
 * the events of other layers (breaker transitions, hedges, timeouts, ejections) and the calls a
 * layer refused (shed, rate-limited, circuit open: by error code) — per service, route and
 * endpoint.
 *
 * Why our own counters: a prom-client `Histogram.observe` costs about 0.7 µs, ten bare calls.
 * The hot path here bumps integers and a `Float64Array` slot in a series found once per
 * (route, endpoint, status) and then cached, and reads the clock twice. Exposition happens at
 * scrape time: {@link MetricsRegistry.text} renders Prometheus text without dependencies,
 * {@link MetricsRegistry.registerWith} feeds a prom-client `Registry` the user already serves
 * (prom-client is an optional peer, loaded only by {@link MetricsRegistry.promRegistry}), and
 * OpenTelemetry observable instruments report the same counters when a MeterProvider is
 * registered.
 *
 * Breaker states and each balancer endpoint's pending calls, Peak-EWMA and state are gauges
 * read at scrape time from the `describe()` of the layers the stack's outermost metrics layer
 * wraps (see `layer-state.ts`); retries are counted per route as well as per service.
 *
 * Two views, as Linkerd keeps them: with `scope: 'call'` (default; put it outermost) a logical
 * call is counted once with the outcome the caller saw — "effective"; a second layer with
 * `scope: 'attempt'` placed inside `retry` counts every attempt — "actual". Retry decisions are
 * read from the stack's `retry` / `retry-skipped` events by the call-scope layer.
 *
 * Prior art: linkerd2-proxy's `response_total` / `response_latency_ms` and `linkerd viz stat`;
 * Tower's metrics layers; Finagle's `StatsFilter`.
 *
 * @module
 */

import { z } from 'zod';
import { type Classification, type Classifier, SUCCESS } from '../../core/classify.js';
import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { InvalidOptionError, ServiceClosedError, SidecarlessError } from '../../core/errors.js';
import type { MeshEventName, RetrySkipReason, Subscription } from '../../core/events.js';
import { type CallHooks, callThroughHooks } from '../../core/hooks.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { int, parseOptions } from '../../core/validate.js';
import type { PromRegistryLike } from './exposition.js';
import { defaultMetricsRegistry, MetricsRegistry } from './registry.js';
import { MetricsState, RETRY_OUTCOMES, type RetryOutcome, type RouteStats } from './state.js';

export { bucketIndex, LATENCY_BUCKETS_MS, quantile } from './buckets.js';
export { collectFamilies, METRIC_NAMES, type MetricFamily, type PromRegistryLike, renderText, TEXT_CONTENT_TYPE } from './exposition.js';
export { CIRCUIT_STATES, collectLayerGauges, ENDPOINT_STATES, type LayerGauges } from './layer-state.js';
export type { MeterProviderLike } from './otel.js';
export { defaultMetricsRegistry, type LatencyPercentiles, MetricsRegistry, type ServiceStats, type SnapshotOptions } from './registry.js';
export { type MetricsScope, MetricsState, RETRY_OUTCOMES, type RetryOutcome } from './state.js';

/**
 * Events of other layers counted by default, when a layer of the stack publishes them.
 * (Discovery errors have a counter of their own, read from the balancer's description: a
 * discovery publishes on its own hub, which no stack hears.)
 */
export const DEFAULT_COUNTED_EVENTS: readonly string[] = Object.freeze([
  'timeout',
  'not-ready',
  'hedge',
  'hedge-skipped',
  'circuit-state',
  'fallback',
  'fault',
  'endpoint-ejected',
  'endpoint-restored',
  'balancer-panic',
]);

/** Events counted under a more telling name: a breaker transition by the state it entered. */
const EVENT_KEYS: Record<string, (event: any) => string> = {
  'circuit-state': (e: { to?: unknown }) => `circuit-${String(e.to)}`,
};

/** Options of the metrics layer. */
export interface MetricsOptions {
  /** The service label. Default: the stack's name. */
  service?: string;
  /** Where the layer registers for `/metrics` and the dashboard. Default {@link defaultMetricsRegistry}. */
  registry?: MetricsRegistry;
  /** `call` (default, outermost: what the caller saw) or `attempt` (inside retry: each attempt). */
  scope?: 'call' | 'attempt';
  /** A prom-client `Registry` to publish into as well (read at its scrapes). */
  prometheus?: PromRegistryLike;
  /** Distinct routes kept before further ones are counted as `overflow`. Default 100. */
  maxRoutes?: number;
  /** Distinct endpoints kept per route before further ones are counted as `overflow`. Default 256. */
  maxEndpoints?: number;
  /** Names of other layers' events to count. Default {@link DEFAULT_COUNTED_EVENTS}. */
  events?: readonly string[];
}

const schema = z.strictObject({
  service: z
    .string({ error: 'must be 1 to 128 letters, digits, "_", ".", ":" or "-"' })
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 letters, digits, "_", ".", ":" or "-"' })
    .optional(),
  registry: z.instanceof(MetricsRegistry, { error: 'must be a MetricsRegistry' }).optional(),
  scope: z.enum(['call', 'attempt'], { error: 'must be "call" or "attempt"' }).default('call'),
  prometheus: z
    .custom<PromRegistryLike>((v) => typeof (v as PromRegistryLike)?.registerMetric === 'function', {
      error: 'must be a prom-client Registry',
    })
    .optional(),
  maxRoutes: int(1, 10_000).default(100),
  maxEndpoints: int(1, 10_000).default(256),
  events: z.array(z.string().min(1), { error: 'must be a list of event names' }).default([...DEFAULT_COUNTED_EVENTS]),
});

const SKIP_OUTCOME: Record<RetrySkipReason, RetryOutcome> = {
  budget: 'budget',
  'not-retryable': 'not_retryable',
  attempts: 'exhausted',
  deadline: 'deadline',
  cancelled: 'cancelled',
};

const RETRIED = RETRY_OUTCOMES.indexOf('retried');
const SKIP_INDEX = Object.fromEntries(
  Object.entries(SKIP_OUTCOME).map(([reason, outcome]) => [reason, RETRY_OUTCOMES.indexOf(outcome)]),
) as Record<RetrySkipReason, number>;

/**
 * Per stack, the metrics layer that reports the stack's breaker and balancer states: the
 * outermost one (layers are wrapped innermost first, so the last built), as it sees the most
 * layers; a second reporter would export every gauge twice.
 */
const layerStateOwner = new WeakMap<object, MetricsState>();

/** Scopes already measured per stack: two call-scope layers in one stack would count twice. */
const scopesByStack = new WeakMap<object, Set<string>>();
const promBound = new WeakMap<MetricsRegistry, WeakSet<object>>();
const otelBound = new WeakSet<MetricsRegistry>();

/** The service of the metrics layer; see the module doc. */
export class MetricsService<Req, Res> implements Service<Req, Res>, CallHooks {
  readonly state: MetricsState;
  readonly #inner: Service<Req, Res>;
  readonly #env: StackEnv;
  readonly #registry: MetricsRegistry;
  readonly #clock: Clock;
  readonly #classifier: Classifier<unknown>;
  readonly #subscriptions: Subscription[] = [];
  #closed = false;

  constructor(inner: Service<Req, Res>, state: MetricsState, env: StackEnv, registry: MetricsRegistry, events: readonly string[]) {
    this.#clock = env.clock;
    this.#classifier = env.classifier;
    this.#inner = inner;
    this.state = state;
    this.#env = env;
    this.#registry = registry;
    if (state.scope === 'call') {
      this.#subscriptions.push(
        env.events.on('retry', (e) => state.countRetry(e.route, RETRIED)),
        env.events.on('retry-skipped', (e) => state.countRetry(e.route, SKIP_INDEX[e.reason])),
      );
      for (const name of events) {
        const key = EVENT_KEYS[name];
        this.#subscriptions.push(env.events.on(name as MeshEventName, (e: unknown) => state.countEvent(key ? key(e) : name)));
      }
    }
    const previous = layerStateOwner.get(env.events);
    if (previous !== undefined) previous.layerStates = undefined;
    layerStateOwner.set(env.events, state);
    // Read at scrape time only: a closure per layer, never per call.
    state.layerStates = () => inner.describe?.() ?? [];
    registry.add(state);
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return callThroughHooks(this, this.#inner, req, ctx);
  }

  /** @internal it reads the clock on every call: the stack shares those readings. */
  get timedBy(): Clock {
    return this.#clock;
  }

  /**
   * @internal the call starts: counted in flight; the token is its start time. Metrics only
   * look before and after, so the builder runs them fused with neighbouring before/after layers.
   */
  admit(ctx: CallContext): number | Error {
    if (this.#closed) return new ServiceClosedError({ layer: 'metrics' });
    this.state.route(ctx.route).inFlight++;
    return ctx.timeOn(this.#clock);
  }

  /**
   * @internal the call settled: recorded with its classification and latency. The route is
   * read again from the context: routes are chosen before a call enters the stack.
   */
  settled(start: number, threw: boolean, outcome: unknown, ctx: CallContext): void {
    const route = this.state.route(ctx.route);
    route.inFlight--;
    const classifier = this.#classifier;
    const verdict = threw
      ? this.#failure(route, outcome)
      : classifier.judgesResults === false
        ? SUCCESS
        : classifier.classifyResult(outcome);
    route.record(ctx.endpoint, verdict, ctx.timeOn(this.#clock) - start);
  }

  /** A call that threw: judged, and if a mesh layer ended it, counted by which one. */
  #failure(route: RouteStats, error: unknown): Classification {
    // Shed, rate-limited, open-circuit, timed-out calls: counted by the layer that ended them.
    if (error instanceof SidecarlessError) this.state.countRefusal(route, error.layer, error.code);
    return this.#classifier.classifyError(error);
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    // Lifetime totals only: a windowed snapshot would take a sample and shift the dashboard's window.
    const totals = this.state.totals();
    return describeChain(
      {
        layer: 'metrics',
        params: { service: this.state.service, scope: this.state.scope },
        state: {
          requests: totals.requests,
          successRate: totals.requests > 0 ? totals.successes / totals.requests : null,
          inFlight: totals.inFlight,
          routes: this.state.routes.length,
        },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const subscription of this.#subscriptions) subscription.dispose();
    this.#registry.delete(this.state);
    scopesByStack.get(this.#env.events)?.delete(this.state.scope);
    await this.#inner.close?.();
  }
}

/** The metrics layer: `.layer(metrics({ service: 'users' }))`, or the builder's `.metrics()`. */
export function metrics<Req, Res>(options: MetricsOptions = {}): Layer<Req, Res> {
  const o = parseOptions(schema, options, 'metrics');
  const registry = o.registry ?? defaultMetricsRegistry;
  return {
    name: 'metrics',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => {
      let scopes = scopesByStack.get(env.events);
      if (scopes === undefined) scopesByStack.set(env.events, (scopes = new Set()));
      if (scopes.has(o.scope)) {
        throw new InvalidOptionError(
          'metrics.scope',
          `this stack already has a "${o.scope}" metrics layer; give the one inside retry scope: "attempt" (got "${o.scope}" twice)`,
        );
      }
      scopes.add(o.scope);
      if (o.prometheus !== undefined) {
        let bound = promBound.get(registry);
        if (bound === undefined) promBound.set(registry, (bound = new WeakSet()));
        if (!bound.has(o.prometheus)) {
          bound.add(o.prometheus);
          registry.registerWith(o.prometheus);
        }
      }
      if (!otelBound.has(registry) && registry.bindOpenTelemetry() !== undefined) otelBound.add(registry);
      const state = new MetricsState(o.service ?? env.service, o.scope, env.clock, o.maxRoutes, o.maxEndpoints);
      return new MetricsService(inner, state, env, registry, o.events);
    },
  };
}
