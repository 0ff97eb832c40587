import { type Classifier, defaultClassifier } from '../core/classify.js';
import { type Clock, systemClock } from '../core/clock.js';
import type { CallContext } from '../core/context.js';
import { deadlineQueueFor } from '../core/deadlines.js';
import type { Duration } from '../core/duration.js';
import { InvalidOptionError } from '../core/errors.js';
import { EventHub } from '../core/events.js';
import { FusedService, isHooked } from '../core/hooks.js';
import type { OptionsOrLive } from '../core/params.js';
import { defaultRegistry, type StackRegistry } from '../core/registry.js';
import type { Layer, Service, StackEnv } from '../core/service.js';
import type { Discovery, Endpoint } from '../discovery/types.js';
import { type AdaptiveConcurrencyOptions, adaptiveConcurrency } from '../layers/adaptive-concurrency/index.js';
import {
  type BalanceLayerOptions,
  type BalanceOptions,
  balance,
  type CallerArgs,
  type EndpointTarget,
  endpointService,
} from '../layers/balance/index.js';
import {
  type CircuitBreakerLayer,
  type CircuitBreakerOptions,
  circuitBreaker,
  isCircuitBreakerLayer,
} from '../layers/circuit-breaker/index.js';
import { type ConcurrencyLimitOptions, concurrencyLimit } from '../layers/concurrency-limit/index.js';
import { type FallbackOptions, fallback } from '../layers/fallback/index.js';
import { type FaultInjectionOptions, faultInjection } from '../layers/fault-injection/index.js';
import { type HedgeOptions, hedge } from '../layers/hedge/index.js';
import { loadShed } from '../layers/load-shed/index.js';
import { type MetricsOptions, metrics } from '../layers/metrics/index.js';
import { type RateLimitOptions, rateLimit } from '../layers/rate-limit/index.js';
import { type Readiness, type ReadinessOptions, readiness } from '../layers/readiness/index.js';
import { type RetryOptions, retry } from '../layers/retry/index.js';
import { type SplitOptions, split } from '../layers/split/index.js';
import { type TimeoutOptions, timeout } from '../layers/timeout/index.js';
import { type TracingOptions, tracing } from '../layers/tracing/index.js';
import { FunctionService } from './function-service.js';
import { type MeshFunction, meshFunction, type ServiceOptions } from './mesh-function.js';

/** Options of a {@link ServiceBuilder}. */
export interface BuilderOptions {
  /** Name of the logical service, for metrics, events, config and `/stack`. Default `"default"`. */
  name?: string;
  /** The clock every layer uses. Default the system clock; a `VirtualClock` in tests. */
  clock?: Clock;
  /** How outcomes are judged. Default: values succeed, network errors are retryable. */
  classifier?: Classifier<any>;
  /** Random numbers for jitter and sampling. Default `Math.random`. */
  random?: () => number;
  /** Where the built stack registers for the admin endpoint; `false` for nowhere. */
  registry?: StackRegistry | false;
}

/** The argument list of a one-argument function: none when its only parameter is the context. */
export type ArgsOf<A1> = [A1] extends [CallContext] ? [] : unknown extends A1 ? [] : [A1];

const DEFAULTS = { name: 'default', clock: systemClock, classifier: defaultClassifier as Classifier<any>, random: Math.random };

/**
 * An immutable chain of layers, Tower's `ServiceBuilder`: each method returns a new builder,
 * the first layer added sees the request first, and {@link ServiceBuilder.service} ends the
 * chain and returns a function with the wrapped function's argument and result types.
 *
 * ```ts
 * const getUser = new ServiceBuilder({ name: 'users' })
 *   .timeout('250ms')
 *   .retry({ attempts: 3 })
 *   .service(async (id: string, ctx) => (await fetch(url(id), { signal: ctx.signal })).json());
 * await getUser('42');
 * ```
 *
 * The wrapped function receives the {@link CallContext} as one more argument after its own
 * declared parameters (after the caller's arguments if the caller passed more).
 */
export class ServiceBuilder {
  readonly #layers: readonly Layer<any, any>[];
  readonly #options: Readonly<BuilderOptions>;

  constructor(options: BuilderOptions = {}, layers: readonly Layer<any, any>[] = []) {
    checkBuilderOptions(options);
    this.#options = options;
    this.#layers = layers;
  }

  /** Adds any layer; it wraps every layer added after it. */
  layer(layer: Layer<any, any>): ServiceBuilder {
    if (typeof layer?.wrap !== 'function' || typeof layer.name !== 'string') {
      throw new InvalidOptionError('layer', 'must be a Layer: an object with a name and a wrap(inner, env) function');
    }
    return new ServiceBuilder(this.#options, [...this.#layers, layer]);
  }

  /** A copy with other builder options (name, clock, classifier, ...). */
  with(options: BuilderOptions): ServiceBuilder {
    return new ServiceBuilder({ ...this.#options, ...options }, this.#layers);
  }

  /** A copy for the named logical service. */
  named(name: string): ServiceBuilder {
    return this.with({ name });
  }

  /** Adds a {@link timeout} layer. */
  timeout(options: OptionsOrLive<TimeoutOptions | Duration>): ServiceBuilder {
    return this.layer(timeout(options));
  }

  /** Adds a {@link retry} layer. */
  retry(options: OptionsOrLive<RetryOptions> = {}): ServiceBuilder {
    return this.layer(retry(options));
  }

  /** Adds a {@link readiness} layer. */
  readiness(gate: Readiness, options?: ReadinessOptions): ServiceBuilder {
    return this.layer(readiness(gate, options));
  }

  /** Adds a {@link hedge} layer: a second attempt after a fixed delay or a latency percentile. */
  hedge(options: OptionsOrLive<HedgeOptions> = {}): ServiceBuilder {
    return this.layer(hedge(options));
  }

  /** Adds a {@link fallback} layer: a value or function answering chosen failures. */
  fallback<Res = any>(options: OptionsOrLive<FallbackOptions<unknown[], Res>>): ServiceBuilder {
    return this.layer(fallback(options));
  }

  /** Adds a {@link faultInjection} layer (Istio's `fault`): delay and/or abort a share of calls. */
  faultInjection(options: OptionsOrLive<FaultInjectionOptions>): ServiceBuilder {
    return this.layer(faultInjection(options));
  }

  /**
   * Adds a {@link split} layer: calls go to the named `backends` or, as `primary`, to the rest
   * of the chain, by weight or by rule (`{ weights: { primary: 95, canary: 5 } }`). The backends
   * stay yours to close (another split may share them); closing the stack closes its primary.
   */
  split(backends: Readonly<Record<string, Service<any, any>>>, options: OptionsOrLive<SplitOptions> = {}): ServiceBuilder {
    return this.layer(split(backends, options));
  }

  /**
   * Ends the chain over a balancer, as `.service(fn)` ends it over one function: `endpointFn`
   * makes each endpoint's function (called with the caller's arguments and the context last),
   * or a stack built per endpoint; layers added before wrap the balancer, so a retry picks
   * again. The balancer is the innermost service because it has nothing to wrap; to compose it
   * with `build()`, use `.layer(balance(discovery, factory))`, whose inner service is ignored.
   */
  balance<P extends unknown[], R>(
    discovery: Discovery,
    endpointFn: (endpoint: Endpoint) => EndpointTarget<P, R>,
    options: OptionsOrLive<BalanceOptions> & BalanceLayerOptions = {},
  ): MeshFunction<CallerArgs<P>, Awaited<R>> {
    if (typeof endpointFn !== 'function') throw new InvalidOptionError('balance.factory', 'must be a function (endpoint) => function');
    const layer = balance(discovery, (endpoint: Endpoint) => endpointService(endpointFn(endpoint)), options);
    const unreachable = (): never => {
      throw new Error('unreachable: the balancer calls its endpoints');
    };
    return this.layer(layer).service(unreachable as (...args: unknown[]) => R) as unknown as MeshFunction<CallerArgs<P>, Awaited<R>>;
  }

  /**
   * Adds a {@link circuitBreaker} layer. Pass a layer made with `circuitBreaker(...)` to keep a
   * handle for `isolate()`, `reset()` and `export()`.
   */
  circuitBreaker(options: OptionsOrLive<CircuitBreakerOptions> | CircuitBreakerLayer = {}): ServiceBuilder {
    return this.layer(isCircuitBreakerLayer(options) ? options : circuitBreaker(options));
  }

  /** Adds a {@link concurrencyLimit} layer (a bulkhead with a bounded queue). */
  concurrencyLimit(options: OptionsOrLive<ConcurrencyLimitOptions>): ServiceBuilder {
    return this.layer(concurrencyLimit(options));
  }

  /** Adds a {@link loadShed} layer: refuses at once when the layers beneath are not ready. */
  loadShed(): ServiceBuilder {
    return this.layer(loadShed());
  }

  /** Adds an {@link adaptiveConcurrency} layer (AIMD or Gradient2). */
  adaptiveConcurrency(options: OptionsOrLive<AdaptiveConcurrencyOptions> = {}): ServiceBuilder {
    return this.layer(adaptiveConcurrency(options));
  }

  /** Adds a {@link rateLimit} layer (a token bucket). */
  rateLimit(options: OptionsOrLive<RateLimitOptions>): ServiceBuilder {
    return this.layer(rateLimit(options));
  }

  /** Adds a {@link metrics} layer (golden metrics; `scope: 'attempt'` inside retry for per-attempt counts). */
  metrics(options?: MetricsOptions): ServiceBuilder {
    return this.layer(metrics(options));
  }

  /** Adds a {@link tracing} layer (a span per call; `scope: 'attempt'` inside retry for a span per attempt). */
  tracing(options?: TracingOptions): ServiceBuilder {
    return this.layer(tracing(options));
  }

  /** The layers, outermost first. */
  get layers(): readonly Layer<any, any>[] {
    return this.#layers;
  }

  /** The environment the layers of a stack built now would share. */
  env(): StackEnv {
    const clock = this.#options.clock ?? DEFAULTS.clock;
    return {
      service: this.#options.name ?? DEFAULTS.name,
      clock,
      classifier: this.#options.classifier ?? DEFAULTS.classifier,
      events: new EventHub(),
      deadlines: deadlineQueueFor(clock),
      random: this.#options.random ?? DEFAULTS.random,
    };
  }

  /** Wraps a {@link Service} in the layers (innermost last); for integrations and composition. */
  build<Req, Res>(inner: Service<Req, Res>, env: StackEnv = this.env()): Service<Req, Res> {
    let service: Service<any, any> = inner;
    for (let i = this.#layers.length - 1; i >= 0; i--) {
      const wrapped = (this.#layers[i] as Layer<any, any>).wrap(service, env);
      // Consecutive before/after layers share one continuation (see core/hooks.ts).
      service = isHooked(wrapped) ? FusedService.over(wrapped, service) : wrapped;
    }
    return service;
  }

  /**
   * Ends the chain over a function whose last parameter is the {@link CallContext}, and returns
   * one with the same arguments (without the context) and result. One-argument functions get
   * `ctx` typed for them; with more arguments, annotate it (`ctx: CallContext`).
   */
  service<A1, R>(fn: (arg: A1, ctx: CallContext) => R, options?: ServiceOptions<ArgsOf<A1>>): MeshFunction<ArgsOf<A1>, Awaited<R>>;
  service<A extends unknown[], R>(fn: (...args: [...A, CallContext]) => R, options?: ServiceOptions<A>): MeshFunction<A, Awaited<R>>;
  service(fn: (...args: any[]) => unknown, options: ServiceOptions<any[]> = {}): MeshFunction<any[], unknown> {
    if (typeof fn !== 'function') throw new InvalidOptionError('service', `must be a function (got ${typeof fn})`);
    return this.#finish(fn, true, options);
  }

  /**
   * Ends the chain over a function that takes no context, returning a function with exactly its
   * signature (`wrap(fetch)` is still a `fetch`). Layers still apply; the callee just does not
   * see the context (use an integration, such as `meshFetch`, to map its signal).
   */
  wrap<A extends unknown[], R>(fn: (...args: A) => R, options?: ServiceOptions<A>): MeshFunction<A, Awaited<R>> {
    if (typeof fn !== 'function') throw new InvalidOptionError('wrap', `must be a function (got ${typeof fn})`);
    return this.#finish(fn as (...args: any[]) => unknown, false, options ?? {}) as MeshFunction<A, Awaited<R>>;
  }

  #finish(fn: (...args: any[]) => unknown, passContext: boolean, options: ServiceOptions<any[]>): MeshFunction<any[], unknown> {
    const env = this.env();
    const stack = this.build(new FunctionService(fn, passContext), env) as Service<unknown[], unknown>;
    const registry = this.#options.registry === undefined ? defaultRegistry : this.#options.registry;
    return meshFunction(fn, passContext, options, stack, env, registry || undefined);
  }
}

function checkBuilderOptions(options: BuilderOptions): void {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('options', 'must be an object');
  const problems: { field: string; message: string }[] = [];
  if (options.name !== undefined && (typeof options.name !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(options.name))) {
    problems.push({
      field: 'name',
      message: `must be 1 to 128 letters, digits, "_", ".", ":" or "-" (got ${JSON.stringify(options.name)})`,
    });
  }
  if (options.clock !== undefined) {
    const missing = (['now', 'setTimer', 'clearTimer', 'wallTime'] as const).filter(
      (method) => typeof (options.clock as unknown as Record<string, unknown> | null)?.[method] !== 'function',
    );
    if (missing.length > 0) {
      problems.push({
        field: 'clock',
        message: `must be a Clock with now(), setTimer(), clearTimer() and wallTime() (missing ${missing.map((m) => `${m}()`).join(', ')})`,
      });
    }
  }
  if (
    options.classifier !== undefined &&
    (typeof options.classifier?.classifyError !== 'function' || typeof options.classifier.classifyResult !== 'function')
  ) {
    problems.push({ field: 'classifier', message: 'must be a Classifier with classifyResult() and classifyError()' });
  }
  if (options.random !== undefined && typeof options.random !== 'function')
    problems.push({ field: 'random', message: 'must be a function returning [0, 1)' });
  if (problems.length > 0) throw new InvalidOptionError(problems);
}
