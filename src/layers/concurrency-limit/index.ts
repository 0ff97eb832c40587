/**
 * # concurrency-limit
 *
 * A bulkhead: at most `max` calls in flight through this layer; up to `queue` more wait for a
 * permit in FIFO order; anything beyond is refused at once with {@link OverloadedError}, so an
 * overloaded dependency costs callers a fast refusal instead of unbounded memory and latency.
 *
 * A queued call waits no longer than its own deadline (a timeout layer above sets it) and the
 * optional `maxWait`. It registers as the context's waker, so a deadline firing above or the
 * caller's signal takes it out of the queue at once. Only queued calls get a clock timer (for a
 * deadline no layer above watches, or for `maxWait`); the admitted path allocates no timer,
 * closure or promise beyond the one `async` accounting frame.
 *
 * Priority partitions (`partitions: { high: 0.7, low: 0.3 }` with a `priority(ctx)` picker)
 * share the limit: idle capacity is lent to whoever asks, and when a permit frees, the waiting
 * partition furthest below its share gets it, so under contention each converges to its share
 * and a flood of low-priority calls cannot starve the high ones. The queue is split by the same
 * shares. `ready()` is false when no permit is free — a `loadShed()` above turns that into
 * immediate refusals instead of queueing.
 *
 * Prior art: Tower's `ConcurrencyLimit`, Netflix concurrency-limits' `SimpleLimiter` and
 * `AbstractPartitionedLimiter`, resilience4j's `Bulkhead` (max wait), Hystrix's semaphore
 * isolation, Envoy's `max_requests` / `max_pending_requests` circuit-breaker thresholds.
 *
 * @module
 */

import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { ConcurrencyLimitService } from './limit.js';
import { type ConcurrencyLimitOptions, resolveConcurrencyLimitOptions } from './options.js';

export { ConcurrencyLimitService } from './limit.js';
export {
  type ConcurrencyLimitOptions,
  type ConcurrencyLimitParams,
  type PriorityPicker,
  resolveConcurrencyLimitOptions,
} from './options.js';
export { type WaitEnd, Waiter, WaiterQueue, type WaitOwner } from './waiter.js';

/** The concurrency-limit layer: `.layer(concurrencyLimit({ max: 100, queue: 50 }))` or `.concurrencyLimit(...)`. */
export function concurrencyLimit<Req, Res>(options: OptionsOrLive<ConcurrencyLimitOptions>): Layer<Req, Res> {
  const makeParam = prepareParam('concurrency-limit', options, (o) => resolveConcurrencyLimitOptions(o));
  return {
    name: 'concurrency-limit',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new ConcurrencyLimitService(inner, makeParam(env), env),
  };
}
