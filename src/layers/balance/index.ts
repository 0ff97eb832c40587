/**
 * # balance
 *
 * One logical service over many endpoints. Endpoints come from a {@link Discovery}; each gets
 * its own inner service from an {@link EndpointFactory} (an undici pool, a gRPC client, any
 * function), closed when the endpoint goes away — after the calls in flight on it finish.
 *
 * **Picking.** The default is power of two choices over peak EWMA: sample two endpoints, send
 * to the one with the lower `EWMA(rtt) × (pending + 1)`. The EWMA jumps to any slower sample
 * at once and decays over time (10 s), new endpoints start at 30 ms, and pending calls multiply
 * the cost, so a slow or overloaded endpoint is avoided within a call or two while every
 * endpoint still gets traffic. P2C needs no sort and no scan: the ready endpoints live in a
 * dense array with swap-remove, so a pick is two random indexes — O(1) at 3 or 10,000
 * endpoints — and their loads sit in one `Float64Array` rather than on scattered objects, so
 * the cost stays flat as the set outgrows the CPU cache. Round robin, least-request (P2C on
 * pending calls) and weighted (alias table) variants are there for backends where latency
 * says little; they read no clock at all.
 *
 * **Endpoint readiness.** Every strategy prefers endpoints whose inner service reports
 * `ready() !== false` (a full pool, an open per-endpoint breaker), as Tower's balancer skips
 * endpoints that are not ready: P2C takes the other of its pair when the winner is not ready
 * and samples a new pair when neither is, round robin moves on, weighted samples again — each
 * at most a few times, so a pick stays O(1). When none of the sampled endpoints is ready the
 * call goes to one of them anyway (its own layers queue or refuse it with a typed error) rather
 * than fail. `endpoints()` shows each one's `serviceReady`, `counts()` the `busy` total.
 *
 * **Cost.** The balancer returns the endpoint's own promise, so the caller awaits it directly
 * and the balancer adds no promise hop; its bookkeeping (pending count, EWMA, failure accrual)
 * is a reaction registered on that promise before the caller's, so it is done by the time the
 * caller resumes. Peak EWMA needs two clock reads per call (the pick reads the one it needs
 * for decay, which doubles as the start time).
 *
 * **Failure accrual.** Each endpoint counts consecutive failures (as the stack's classifier
 * judges them); at 7 it is ejected for a jittered backoff growing from 1 s to 60 s, after which
 * exactly one call probes it: success brings it back, failure ejects it again for longer. A
 * `Retry-After` (429, 503) counts as a round trip that long, pushing load away from a server
 * that asked for it. When fewer than half the endpoints are ready the balancer panics and picks
 * among all of them — a mesh that ejects everything fails everything. When it has nothing to
 * pick, {@link NoEndpointsError} says why: `none-discovered`, `factory-failed` (every endpoint's
 * factory threw; the latest error is the cause), `all-ejected` or `discovery-failing`.
 *
 * **Where it goes.** The balancer is the innermost service: its inner is the endpoint's.
 * As a {@link Layer} (`.layer(balance(...))`), the service it wraps is ignored and closed with
 * it — use it with `ServiceBuilder.build(...)`. The builder's `.balance(discovery, factory)`
 * ends the chain instead and returns the callable, as `.service(fn)` does; layers added before
 * it (timeout, retry) wrap the balancer, so a retry picks again and may land elsewhere.
 *
 * Prior art: Tower's `p2c::Balance` and `PeakEwma`; linkerd2-proxy's balancer and
 * `FailureAccrual` (consecutive failures, 1 s–60 s, jitter 0.5, single probe); Finagle's
 * `Aperture` and P2C; Envoy's least-request and panic threshold; Mitzenmacher's "The Power of
 * Two Choices in Randomized Load Balancing".
 *
 * @module
 */

import { FunctionService } from '../../builder/function-service.js';
import type { CallContext } from '../../core/context.js';
import { InvalidOptionError } from '../../core/errors.js';
import { isLive, type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import type { Discovery } from '../../discovery/types.js';
import { BalanceService, type EndpointFactory } from './balancer.js';
import { type BalanceOptions, resolveBalanceOptions } from './options.js';

export { BalanceService, type EndpointFactory } from './balancer.js';
export type { EndpointStateName } from './endpoint.js';
export {
  type BalanceOptions,
  type BalanceParams,
  type BalanceStrategy,
  type FailureAccrualOptions,
  resolveBalanceOptions,
} from './options.js';

/** Options of {@link balance} besides the balancing ones. */
export interface BalanceLayerOptions {
  /** Close the discovery when the balancer closes. Default true; false for a shared source. */
  closeDiscovery?: boolean;
}

/**
 * The balance layer: `builder.build(inner)` over `.layer(balance(discovery, (e) => service))`.
 * Options may be live: `configured(store, 'users').balance` follows the document's `loadBalancer`,
 * or `live(store, select)` with a selector of your own returning {@link BalanceOptions}.
 */
export function balance<Req, Res>(
  discovery: Discovery,
  factory: EndpointFactory<Req, Res>,
  options: OptionsOrLive<BalanceOptions> & BalanceLayerOptions = {},
): Layer<Req, Res> {
  if (typeof discovery?.subscribe !== 'function') throw new InvalidOptionError('balance.discovery', 'must be a Discovery');
  if (typeof factory !== 'function') throw new InvalidOptionError('balance.factory', 'must be a function (endpoint) => Service');
  const { closeDiscovery = true, ...rest } = options as BalanceOptions & BalanceLayerOptions;
  const makeParam = prepareParam('balance', isLive(options) ? options : rest, (o) => resolveBalanceOptions(o as BalanceOptions));
  return {
    name: 'balance',
    wrap: (inner: Service<Req, Res>, env: StackEnv) =>
      new BalanceService(discovery, factory, makeParam(env), env, {
        ownsDiscovery: closeDiscovery,
        inner: inner as Service<unknown, unknown>,
      }),
  };
}

/**
 * What a builder's endpoint function may return: a function (called with the caller's
 * arguments and the {@link CallContext} after them; it may ignore the context), a built stack,
 * or a service.
 */
export type EndpointTarget<P extends unknown[], R> =
  | (((...args: P) => R) & { close?: () => void | Promise<void> })
  | { readonly stack: Service<unknown[], Awaited<R>> }
  | Service<unknown[], Awaited<R>>;

/**
 * An endpoint function's parameters without a trailing {@link CallContext} (or a trailing
 * parameter typed `unknown`, as `_ctx: unknown` is written): what callers pass.
 */
export type CallerArgs<P extends unknown[]> = P extends [...infer Head, infer Last]
  ? [Last] extends [CallContext]
    ? Head
    : unknown extends Last
      ? Head
      : P
  : P;

/**
 * Turns what an endpoint function returned into the endpoint's service: a plain function gets
 * the call context as its last argument (as `.service(fn)` does), and its `close` property, if
 * any, is called when the endpoint goes away (to close its pool); a `MeshFunction` (a stack
 * built per endpoint, say with its own breaker) is called through its stack, sharing the call's
 * context; a {@link Service} is used as it is.
 */
export function endpointService<P extends unknown[], R>(target: EndpointTarget<P, R>): Service<unknown[], Awaited<R>> {
  const stack = (target as { stack?: Service<unknown[], Awaited<R>> }).stack;
  if (typeof stack?.call === 'function') return stack;
  if (typeof target === 'function') {
    const service = new FunctionService(target as (...args: unknown[]) => Awaited<R>, true);
    const close = target.close;
    return typeof close === 'function' ? Object.assign(service, { close: () => close.call(target) }) : service;
  }
  if (typeof (target as Service<unknown[], Awaited<R>>)?.call === 'function') return target as Service<unknown[], Awaited<R>>;
  throw new InvalidOptionError('balance.factory', 'must return a function, a built stack or a Service');
}
