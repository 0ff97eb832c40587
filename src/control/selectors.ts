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
 * Fields given in the document override the builder's fallback field by field; a route's
 * fields override its service's.
 *
 * @module
 */

import type { ConfigStore } from '../core/config-store.js';
import type { Duration } from '../core/duration.js';
import { type LiveOptions, live } from '../core/params.js';
import type { CircuitBreakerOptions } from '../layers/circuit-breaker/options.js';
import type { ConcurrencyLimitOptions } from '../layers/concurrency-limit/options.js';
import type { FaultInjectionOptions } from '../layers/fault-injection/options.js';
import type { RateLimitOptions } from '../layers/rate-limit/options.js';
import type { RetryBudgetOptions, RetryOptions } from '../layers/retry/index.js';
import type { TimeoutOptions } from '../layers/timeout/index.js';
import type { MeshConfig, ServiceConfig } from './schema.js';

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
    circuitBreaker: live(store, (c: MeshConfig) => failureAccrualOf(c, service), fallback.circuitBreaker),
    concurrencyLimit: live(store, (c: MeshConfig) => concurrencyLimitOf(c, service), fallback.concurrencyLimit),
    rateLimit: live(store, (c: MeshConfig) => rateLimitOf(c, service), fallback.rateLimit),
    fault: live(store, (c: MeshConfig) => faultOf(c, service, route), fallback.fault),
    policies: () => policiesOf(store.current.value, service, route),
  };
}
