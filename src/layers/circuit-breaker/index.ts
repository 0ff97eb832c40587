/**
 * # circuit-breaker
 *
 * Stops sending calls to a backend that keeps failing, so it can recover and callers fail fast
 * instead of queueing behind it. Two ways to trip, either enough:
 *
 * - **consecutive failures** — Linkerd's failure accrual: 7 failures in a row by default;
 * - **failure rate** of a rolling window with a minimum volume — the last N calls, or the last
 *   duration in buckets (resilience4j's count- and time-based windows). Both keep running sums
 *   in a ring, so a call costs O(1) whatever the window's size: no scan or sort per call.
 *
 * Open, it refuses calls at once with {@link CircuitOpenError}, which says when the next probe
 * will be let through. After a backoff (1 s, doubling per failed probe to 60 s, with jitter 0.5
 * from `env.random` so a fleet does not probe in lockstep) the circuit turns half-open on the
 * next call and admits `probes` probes (default 1); enough successes close it, one failure opens
 * it again with a longer wait. There is no timer: the open → half-open move happens lazily when
 * a call (or `ready()`) finds the backoff over, so a closed stack leaves nothing behind.
 *
 * What counts as a failure is the stack's classifier's word (`kind === 'failure'`), the same
 * judgement retry and metrics use: with the HTTP classifier a 404 is a success for the breaker.
 * A call the caller cancelled counts as nothing; outcomes of calls admitted before a state
 * change are ignored. `isolate()` opens the circuit by hand until `reset()`; `export()` and
 * `restore()` carry the state across a restart. State changes are published as
 * `circuit-state` events; `ready()` is false while open.
 *
 * Place a timeout beneath (or rely on the callee honouring `ctx.signal`) so a hung probe
 * settles: the breaker waits for its probes' outcome.
 *
 * Prior art: Linkerd's failure accrual and `ExponentialBackoff`, Finagle's
 * `FailureAccrualFactory`, resilience4j's sliding windows, Hystrix, opossum and cockatiel's
 * `ConsecutiveBreaker`/`SamplingBreaker`.
 *
 * @module
 */

import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { CircuitBreakerService, type CircuitReason, type CircuitState } from './breaker.js';
import { type CircuitBreakerOptions, resolveCircuitBreakerOptions } from './options.js';

export { CircuitBreakerService, type CircuitReason, type CircuitSnapshot, type CircuitState } from './breaker.js';
export {
  type BreakerBackoffOptions,
  type CircuitBreakerOptions,
  type CircuitBreakerParams,
  type FailureRateOptions,
  probeDelay,
  resolveCircuitBreakerOptions,
  type WindowOptions,
} from './options.js';
export type { WindowSnapshot } from './window.js';
export { CountWindow, type RollingWindow, TimeWindow } from './window.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** A circuit changed state; `retryAt` is the clock time of the next probe when it opened. */
    'circuit-state': { service: string; from: CircuitState; to: CircuitState; reason: CircuitReason; retryAt: number | undefined };
  }
}

/**
 * The circuit-breaker layer, and the handle to the breakers it builds: keep it to
 * `isolate()` or `reset()` by hand, or to reach the {@link CircuitBreakerService} of a stack.
 */
export interface CircuitBreakerLayer<Req = any, Res = any> extends Layer<Req, Res> {
  /** The breaker of the stack built most recently from this layer. */
  readonly breaker: CircuitBreakerService<Req, Res> | undefined;
  /** Every live breaker built from this layer (one per stack). */
  readonly breakers: ReadonlySet<CircuitBreakerService<Req, Res>>;
  /** Opens every breaker built from this layer until {@link CircuitBreakerLayer.reset}. */
  isolate(): void;
  /** Closes every breaker built from this layer. */
  reset(): void;
}

/** The circuit-breaker layer: `.layer(circuitBreaker({ consecutiveFailures: 5 }))` or `.circuitBreaker(...)`. */
export function circuitBreaker<Req, Res>(options: OptionsOrLive<CircuitBreakerOptions> = {}): CircuitBreakerLayer<Req, Res> {
  const makeParam = prepareParam('circuit-breaker', options, (o) => resolveCircuitBreakerOptions(o));
  const breakers = new Set<CircuitBreakerService<Req, Res>>();
  let latest: CircuitBreakerService<Req, Res> | undefined;
  return {
    name: 'circuit-breaker',
    wrap(inner: Service<Req, Res>, env: StackEnv) {
      const service = new CircuitBreakerService(inner, makeParam(env), env);
      const close = service.close.bind(service);
      // Forget a closed stack's breaker so the handle does not keep it alive.
      service.close = async () => {
        breakers.delete(service);
        if (latest === service) latest = undefined;
        await close();
      };
      breakers.add(service);
      latest = service;
      return service;
    },
    get breaker() {
      return latest;
    },
    breakers,
    isolate() {
      for (const b of breakers) b.isolate();
    },
    reset() {
      for (const b of breakers) b.reset();
    },
  };
}

/** Whether `value` is a layer made by {@link circuitBreaker} (for the builder shortcut). */
export function isCircuitBreakerLayer(value: unknown): value is CircuitBreakerLayer {
  return typeof value === 'object' && value !== null && (value as Layer<unknown, unknown>).name === 'circuit-breaker' && 'isolate' in value;
}
