/**
 * From the mesh document to each layer's options. The mapping functions are pure (config in,
 * layer options out); {@link configured} wraps them as live options bound to a store, so a
 * builder reads them on every snapshot change:
 *
 * ```ts
 * const mesh = configured(store, 'users', { fallback: { timeout: '1s', retry: { attempts: 0 } } });
 * const getUser = new ServiceBuilder({ name: 'users' }).timeout(mesh.timeout).retry(mesh.retry).service(fn);
 * ```
 *
 * A route's sections override its service's, each section whole (a route's `retries` replaces
 * the service's `retries`, backoff and all). Against the builder's fallback, retry, balance and
 * the circuit breaker merge: each retry option the document gives (`retries.attempts`,
 * `retries.retryOn`, `retries.backoff` as a whole, `perTryTimeout`, `retryBudget`) replaces the
 * fallback's, `loadBalancer.simple` replaces the fallback's `strategy`, and `failureAccrual`
 * the breaker's `consecutiveFailures`, its backoff bounds (together) and jitter; the fallback's other options
 * stay (the balancer's failure accrual, panic threshold and peak EWMA, the breaker's failure-rate
 * window and probes, which the document cannot set).
 * For every other layer the fallback applies only while the document leaves its section out;
 * a section the document gives replaces the fallback whole.
 *
 * {@link layerProblems} runs each layer's own option check over what these selectors make of a
 * document, so the store refuses (NACKs) a document a layer would refuse later.
 *
 * @module
 */

import type { ConfigStore } from '../core/config-store.js';
import type { Duration } from '../core/duration.js';
import { InvalidOptionError, type OptionProblem } from '../core/errors.js';
import { type LiveOptions, live } from '../core/params.js';
import { parseEndpoints } from '../discovery/base.js';
import type { EndpointInput } from '../discovery/types.js';
import { type BalanceOptions, resolveBalanceOptions } from '../layers/balance/options.js';
import { type CircuitBreakerOptions, resolveCircuitBreakerOptions } from '../layers/circuit-breaker/options.js';
import { type ConcurrencyLimitOptions, resolveConcurrencyLimitOptions } from '../layers/concurrency-limit/options.js';
import { type FaultInjectionOptions, resolveFaultInjectionOptions } from '../layers/fault-injection/options.js';
import { type RateLimitOptions, resolveRateLimitOptions } from '../layers/rate-limit/options.js';
import type { RetryBudgetOptions } from '../layers/retry/budget.js';
import { type RetryOptions, resolveRetryOptions } from '../layers/retry/options.js';
import { resolveSplitOptions, type SplitOptions } from '../layers/split/options.js';
import { resolveTimeoutOptions, type TimeoutOptions } from '../layers/timeout/options.js';
import { hostPort, type MeshConfig, type ServiceConfig } from './schema.js';

/** The policies in force for a service, or one of its routes: the route's fields over the service's. */
export function policiesOf(config: MeshConfig, service: string, route?: string): ServiceConfig | undefined {
  const svc: ServiceConfig | undefined = Object.hasOwn(config.services, service) ? config.services[service] : undefined;
  if (svc === undefined) return undefined;
  const overrides = route !== undefined && svc.routes !== undefined && Object.hasOwn(svc.routes, route) ? svc.routes[route] : undefined;
  if (overrides === undefined) return svc;
  return { ...svc, ...stripUndefined(overrides) } as ServiceConfig;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Timeout layer options for a service (or route), or `undefined` when the document sets none. */
export function timeoutOf(config: MeshConfig, service: string, route?: string): TimeoutOptions | undefined {
  const timeout = policiesOf(config, service, route)?.timeout;
  return timeout === undefined ? undefined : { timeout: timeout as Duration };
}

/**
 * Retry layer options for a service (or route): Istio's `retries` and `perTryTimeout` with
 * Linkerd's `retryBudget`, over `fallback`; `undefined` when the document sets none of them.
 */
export function retryOf(config: MeshConfig, service: string, route?: string, fallback: RetryOptions = {}): RetryOptions | undefined {
  const p = policiesOf(config, service, route);
  if (p === undefined || (p.retries === undefined && p.perTryTimeout === undefined && p.retryBudget === undefined)) return undefined;
  const options: RetryOptions = { ...fallback };
  if (p.retries !== undefined) {
    options.attempts = p.retries.attempts;
    if (p.retries.retryOn !== undefined) {
      options.retryOn = typeof p.retries.retryOn === 'string' ? p.retries.retryOn.split(',').map((w) => w.trim()) : p.retries.retryOn;
    }
    if (p.retries.backoff !== undefined) options.backoff = p.retries.backoff as RetryOptions['backoff'];
  }
  if (p.perTryTimeout !== undefined) options.perTryTimeout = p.perTryTimeout as Duration;
  if (p.retryBudget !== undefined) options.budget = p.retryBudget as RetryBudgetOptions;
  return options;
}

/** Circuit breaker options from Linkerd's consecutive failure accrual. */
export function failureAccrualOf(config: MeshConfig, service: string): CircuitBreakerOptions | undefined {
  const fa = policiesOf(config, service)?.failureAccrual;
  if (fa === undefined) return undefined;
  const backoff: NonNullable<CircuitBreakerOptions['backoff']> = {};
  if (fa.minPenalty !== undefined) backoff.min = fa.minPenalty as Duration;
  if (fa.maxPenalty !== undefined) backoff.max = fa.maxPenalty as Duration;
  if (fa.jitterRatio !== undefined) backoff.jitter = fa.jitterRatio;
  return { consecutiveFailures: fa.maxFailures, backoff };
}

/** Concurrency limit options: `maxConcurrent` in flight, `maxPending` queued. */
export function concurrencyLimitOf(config: MeshConfig, service: string): ConcurrencyLimitOptions | undefined {
  const cl = policiesOf(config, service)?.concurrencyLimit;
  return cl === undefined ? undefined : { max: cl.maxConcurrent, queue: cl.maxPending ?? 0 };
}

/** Rate limit options from Envoy's token bucket: `tokensPerFill` per `fillInterval`, `maxTokens` burst. */
export function rateLimitOf(config: MeshConfig, service: string): RateLimitOptions | undefined {
  const rl = policiesOf(config, service)?.rateLimit;
  return rl === undefined ? undefined : { rate: rl.tokensPerFill, interval: rl.fillInterval as Duration, burst: rl.maxTokens };
}

/** Fault injection options (Istio's `fault`), for a service or route. */
export function faultOf(config: MeshConfig, service: string, route?: string): FaultInjectionOptions | undefined {
  const fault = policiesOf(config, service, route)?.fault;
  if (fault === undefined) return undefined;
  const options: FaultInjectionOptions = {};
  if (fault.delay !== undefined) options.delay = { percentage: fault.delay.percentage, fixedDelay: fault.delay.fixedDelay as Duration };
  if (fault.abort !== undefined) options.abort = { percentage: fault.abort.percentage, httpStatus: fault.abort.httpStatus };
  return options;
}

// Istio's names; RANDOM is the weighted random pick, uniform when endpoints weigh the same.
const STRATEGIES = {
  PEAK_EWMA: 'p2c-peak-ewma',
  LEAST_REQUEST: 'p2c-least-request',
  ROUND_ROBIN: 'round-robin',
  RANDOM: 'weighted',
} as const satisfies Record<string, BalanceOptions['strategy']>;

/** Balance layer options from Istio's `loadBalancer.simple` (`RANDOM` picks at random by weight). */
export function loadBalancerOf(config: MeshConfig, service: string): BalanceOptions | undefined {
  const lb = policiesOf(config, service)?.loadBalancer;
  return lb === undefined ? undefined : { strategy: STRATEGIES[lb.simple] };
}

/**
 * Split layer options from Gateway API `backendRefs`, for a service or route: each ref's weight
 * under its name. The names are the split's backends (`primary` is the wrapped service); a name
 * the split was not built with is refused by that process's layer (`param-rejected`), since the
 * document cannot know each process's backends.
 */
export function splitOf(config: MeshConfig, service: string, route?: string): SplitOptions | undefined {
  const refs = policiesOf(config, service, route)?.backendRefs;
  if (refs === undefined) return undefined;
  // The schema refuses the names "__proto__", "constructor" and "prototype": the split layer reads
  // these weights as a record, which would drop such a name (or take it as the prototype).
  return { weights: Object.fromEntries(refs.map((ref) => [ref.name, ref.weight])) };
}

/** Endpoints for {@link configDiscovery}: `configDiscovery(store, (c) => endpointsOf(c, 'users'))`. */
export function endpointsOf(config: MeshConfig, service: string): EndpointInput[] | undefined {
  const endpoints = policiesOf(config, service)?.endpoints;
  if (endpoints === undefined) return undefined;
  return endpoints.map((e) => {
    // The schema takes only host:port, an IPv6 host in brackets (which discovery adds back in ids).
    const { host, port } = hostPort(e.address) ?? { host: e.address, port: Number.NaN };
    const input: { address: string; port: number; weight?: number; metadata?: Record<string, string> } = { address: host, port };
    if (e.weight !== undefined) input.weight = e.weight;
    if (e.metadata !== undefined) input.metadata = e.metadata;
    return input;
  });
}

/**
 * How one document section reaches a layer: the selector that makes the layer's options, the
 * layer's own check of them, and how that check's field names lead back to the document.
 */
export interface LayerSection {
  /** The field prefix the check names its problems with. */
  readonly layer: string;
  /** Whether a route may override it (the selector then takes the route). */
  readonly perRoute: boolean;
  readonly select: (config: MeshConfig, service: string, route?: string) => unknown;
  readonly check: (options: any, field: string) => unknown;
  /**
   * Option paths (dotted, after the prefix) to document paths: the longest that matches wins,
   * `*` stands for one segment (carried over in order), `''` matches any path.
   */
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * Every section of the document that feeds a layer (or the discovery under the balancer).
 * The document schema checks shape and ranges, and whatever else the published JSON Schema can
 * say; these checks add what only the layer knows: its defaults (a backoff `max` below the
 * default `base`), what it asks of a whole section (a split with no weight above 0).
 */
export const LAYER_SECTIONS: readonly LayerSection[] = [
  { layer: 'timeout', perRoute: true, select: timeoutOf, check: resolveTimeoutOptions, fields: { timeout: 'timeout' } },
  {
    layer: 'retry',
    perRoute: true,
    select: retryOf,
    check: resolveRetryOptions,
    fields: {
      attempts: 'retries.attempts',
      retryOn: 'retries.retryOn',
      backoff: 'retries.backoff',
      perTryTimeout: 'perTryTimeout',
      budget: 'retryBudget',
    },
  },
  { layer: 'faultInjection', perRoute: true, select: faultOf, check: resolveFaultInjectionOptions, fields: { '': 'fault' } },
  {
    layer: 'split',
    perRoute: true,
    select: splitOf,
    check: (o: SplitOptions, field) => resolveSplitOptions(o, Object.keys(o.weights ?? {}), field),
    fields: { weights: 'backendRefs', '': 'backendRefs' },
  },
  {
    layer: 'circuitBreaker',
    perRoute: false,
    select: failureAccrualOf,
    check: resolveCircuitBreakerOptions,
    fields: {
      consecutiveFailures: 'failureAccrual.maxFailures',
      'backoff.min': 'failureAccrual.minPenalty',
      'backoff.max': 'failureAccrual.maxPenalty',
      'backoff.jitter': 'failureAccrual.jitterRatio',
      '': 'failureAccrual',
    },
  },
  {
    layer: 'concurrencyLimit',
    perRoute: false,
    select: concurrencyLimitOf,
    check: resolveConcurrencyLimitOptions,
    fields: { max: 'concurrencyLimit.maxConcurrent', queue: 'concurrencyLimit.maxPending', '': 'concurrencyLimit' },
  },
  {
    layer: 'rateLimit',
    perRoute: false,
    select: rateLimitOf,
    check: resolveRateLimitOptions,
    fields: { rate: 'rateLimit.tokensPerFill', interval: 'rateLimit.fillInterval', burst: 'rateLimit.maxTokens', '': 'rateLimit' },
  },
  {
    layer: 'balance',
    perRoute: false,
    select: loadBalancerOf,
    check: resolveBalanceOptions,
    fields: { strategy: 'loadBalancer.simple', '': 'loadBalancer' },
  },
  {
    layer: 'endpoints',
    perRoute: false,
    select: endpointsOf,
    check: parseEndpoints,
    fields: { '*.port': 'endpoints.*.address', '': 'endpoints' },
  },
];

/** The document path (from the service or route) of an option path the layer named. */
function documentPath(section: LayerSection, optionPath: string): string {
  const rest = optionPath === section.layer ? [] : optionPath.slice(section.layer.length + 1).split('.');
  let best: { key: string[]; to: string } | undefined;
  for (const [written, to] of Object.entries(section.fields)) {
    const key = written === '' ? [] : written.split('.');
    const matches = key.length <= rest.length && key.every((segment, i) => segment === '*' || segment === rest[i]);
    if (matches && (best === undefined || key.length > best.key.length)) best = { key, to };
  }
  if (best === undefined) return rest.join('.');
  const { key, to } = best;
  const wild = key.flatMap((segment, i) => (segment === '*' ? [rest[i] as string] : []));
  return [to.replace(/\*/g, () => wild.shift() ?? '*'), ...rest.slice(key.length)].join('.');
}

/**
 * What each layer would refuse in a document the schema accepted, by document path: every
 * service, and every route for the sections a route may override. A problem a route inherits
 * from its service is reported once, at the service. `sections` are the checks to run (all of them).
 */
export function layerProblems(config: MeshConfig, sections: readonly LayerSection[] = LAYER_SECTIONS): OptionProblem[] {
  const problems = new Map<string, OptionProblem>();
  for (const [service, svc] of Object.entries(config.services)) {
    const scopes: (string | undefined)[] = [undefined, ...Object.keys(svc.routes ?? {})];
    for (const route of scopes) {
      // A problem is the route's when the route gives the section (its top field) itself.
      const own = (top: string): boolean => route !== undefined && Object.hasOwn(svc.routes?.[route] ?? {}, top);
      const prefix = (owned: boolean): string[] => ['services', service, ...(owned ? ['routes', route as string] : [])];
      for (const section of sections) {
        if (route !== undefined && !section.perRoute) continue;
        const options = section.select(config, service, route);
        if (options === undefined) continue;
        try {
          section.check(options, section.layer);
        } catch (error) {
          // A validator that throws would take the store down with it: any failure is a problem.
          if (!(error instanceof InvalidOptionError)) {
            const tops = Object.values(section.fields).map((to) => to.split('.')[0] as string);
            const field = prefix(tops.some(own)).join('.');
            const message = `could not be checked by the ${section.layer} layer: ${String(error)}`;
            problems.set(`${field}\n${message}`, { field, message });
            continue;
          }
          // Layers name their fields in messages too ("must be at least retry.backoff.base").
          const mentioned = new RegExp(`(?<![\\w.])${section.layer}(?:\\.[\\w-]+)+`, 'g');
          for (const p of error.problems) {
            const path = documentPath(section, p.field);
            const field = [...prefix(own(path.split('.')[0] as string)), path].join('.');
            const message = p.message.replace(mentioned, (m) => documentPath(section, m));
            problems.set(`${field}\n${message}`, { field, message });
          }
        }
      }
    }
  }
  return [...problems.values()];
}

/**
 * The breaker's options from the document over the builder's. The document's penalty bounds
 * replace the builder's `min` and `max` together: mixing one bound from each could give a `min`
 * above the `max` that the breaker would refuse after the document was ACKed. `jitterRatio`
 * replaces the builder's jitter alone, and the builder's `multiplier` (which the document cannot
 * set) stays.
 */
function breakerWithFallback(
  options: CircuitBreakerOptions | undefined,
  fallback: CircuitBreakerOptions | undefined,
): CircuitBreakerOptions | undefined {
  const merged = withFallback(options, fallback);
  if (merged === undefined) return undefined;
  const given = options?.backoff ?? {};
  const builder = fallback?.backoff ?? {};
  const bounds = given.min !== undefined || given.max !== undefined ? given : builder;
  const backoff: NonNullable<CircuitBreakerOptions['backoff']> = {};
  if (bounds.min !== undefined) backoff.min = bounds.min;
  if (bounds.max !== undefined) backoff.max = bounds.max;
  const jitter = given.jitter ?? builder.jitter;
  if (jitter !== undefined) backoff.jitter = jitter;
  if (builder.multiplier !== undefined) backoff.multiplier = builder.multiplier;
  return { ...merged, backoff };
}

/** `options` over `fallback`, or `undefined` when the document sets none (the fallback then applies whole). */
function withFallback<O extends object>(options: O | undefined, fallback: O | undefined): O | undefined {
  return options === undefined ? undefined : { ...fallback, ...options };
}

/** Options of {@link configured}. */
export interface ConfiguredOptions {
  /** A route of the service whose overrides apply. */
  route?: string;
  /** The builder's own options, used for whatever the document does not set. */
  fallback?: {
    timeout?: TimeoutOptions | Duration;
    retry?: RetryOptions;
    circuitBreaker?: CircuitBreakerOptions;
    concurrencyLimit?: ConcurrencyLimitOptions;
    rateLimit?: RateLimitOptions;
    fault?: FaultInjectionOptions;
    balance?: BalanceOptions;
    split?: SplitOptions;
  };
}

/** Live options for each layer of one service, bound to a store. */
export interface ConfiguredService {
  readonly service: string;
  readonly timeout: LiveOptions<MeshConfig, TimeoutOptions | Duration>;
  readonly retry: LiveOptions<MeshConfig, RetryOptions>;
  /** For `circuitBreaker()`, from `failureAccrual`. */
  readonly circuitBreaker: LiveOptions<MeshConfig, CircuitBreakerOptions>;
  /** For `concurrencyLimit()`; give a fallback when the document may not set one. */
  readonly concurrencyLimit: LiveOptions<MeshConfig, ConcurrencyLimitOptions>;
  /** For `rateLimit()`; give a fallback when the document may not set one. */
  readonly rateLimit: LiveOptions<MeshConfig, RateLimitOptions>;
  /** For `faultInjection()`. */
  readonly fault: LiveOptions<MeshConfig, FaultInjectionOptions>;
  /** For `balance()`, from `loadBalancer`: its strategy over the fallback's options. */
  readonly balance: LiveOptions<MeshConfig, BalanceOptions>;
  /** For `split()`, from `backendRefs` (the route's, when it has its own). */
  readonly split: LiveOptions<MeshConfig, SplitOptions>;
  /** The raw policies in force, for layers configured by hand. */
  policies(): ServiceConfig | undefined;
}

/**
 * Live options for the layers of `service` (or one of its routes) from `store`: pass
 * `mesh.timeout` to `.timeout()`, `mesh.retry` to `.retry()`. Each is derived once per snapshot.
 */
export function configured(store: ConfigStore<MeshConfig>, service: string, options: ConfiguredOptions = {}): ConfiguredService {
  const { route, fallback = {} } = options;
  // The retry layer keeps its budget's window while the budget options object stays the same:
  // reuse the previous object when a new snapshot leaves the budget unchanged.
  let lastBudget: { key: string; value: RetryBudgetOptions } | undefined;
  const stableBudget = (retry: RetryOptions | undefined): RetryOptions | undefined => {
    const budget = retry?.budget;
    if (
      retry === undefined ||
      budget === undefined ||
      budget === false ||
      typeof (budget as { withdraw?: unknown }).withdraw === 'function'
    ) {
      return retry;
    }
    const key = JSON.stringify(budget);
    if (lastBudget?.key !== key) lastBudget = { key, value: budget as RetryBudgetOptions };
    return { ...retry, budget: lastBudget.value };
  };
  return {
    service,
    timeout: live(store, (c: MeshConfig) => timeoutOf(c, service, route), fallback.timeout),
    retry: live(store, (c: MeshConfig) => stableBudget(retryOf(c, service, route, fallback.retry)), fallback.retry),
    circuitBreaker: live(
      store,
      (c: MeshConfig) => breakerWithFallback(failureAccrualOf(c, service), fallback.circuitBreaker),
      fallback.circuitBreaker,
    ),
    concurrencyLimit: live(store, (c: MeshConfig) => concurrencyLimitOf(c, service), fallback.concurrencyLimit),
    rateLimit: live(store, (c: MeshConfig) => rateLimitOf(c, service), fallback.rateLimit),
    fault: live(store, (c: MeshConfig) => faultOf(c, service, route), fallback.fault),
    balance: live(store, (c: MeshConfig) => withFallback(loadBalancerOf(c, service), fallback.balance), fallback.balance),
    split: live(store, (c: MeshConfig) => splitOf(c, service, route), fallback.split),
    policies: () => policiesOf(store.current.value, service, route),
  };
}
