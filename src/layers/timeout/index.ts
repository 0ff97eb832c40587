/**
 * # timeout
 *
 * Bounds how long a call may take. The layer sets an absolute deadline on the call context, so
 * every layer beneath sees what is left (a retry will not sleep past it, a queue will not wait
 * past it), fires the callee's `AbortSignal` when time is up, and rejects with
 * {@link TimeoutError}. Placed above a retry it bounds the whole call; placed below (or as the
 * retry's `perTryTimeout`) it bounds each attempt.
 *
 * Nested timeouts report each expiry once, as one `timeout` event from the layer whose deadline
 * it was: an inner timeout whose own deadline is no earlier than the one it inherits leaves the
 * expiry (event and error) to the enclosing layer, whichever of the two the deadline lists reach
 * first. A caller's deadline (an incoming header) is reported by the outermost timeout layer.
 * An attempt a hedge above abandoned because another attempt answered is waited on by nobody:
 * when its callee ignores the signal and its deadline passes later, that is no timeout (no event)
 * and it ends with the hedge's `CancelledError`.
 *
 * Why it is cheap: there is no `setTimeout` per call. Pending deadlines sit in one shared
 * structure of per-duration lists (how Node's own timers work), with one clock timer per list;
 * the `AbortController` is only created if the callee reads `ctx.signal`, and a call that
 * succeeds never calls `abort()`.
 *
 * Prior art: Tower's `Timeout`, linkerd2-proxy's request and per-try timeouts, Envoy/Istio's
 * `timeout` and `perTryTimeout`, gRPC deadline propagation.
 *
 * @module
 */

import type { Duration } from '../../core/duration.js';
import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { resolveTimeoutOptions, type TimeoutOptions } from './options.js';
import { TimeoutService } from './timeout.js';

export { resolveTimeoutOptions, type TimeoutOptions, type TimeoutParams } from './options.js';
export { TimeoutService } from './timeout.js';

/** The timeout layer: `.layer(timeout('250ms'))`, or the builder's `.timeout('250ms')`. */
export function timeout<Req, Res>(options: OptionsOrLive<TimeoutOptions | Duration>): Layer<Req, Res> {
  const makeParam = prepareParam('timeout', options, (o) => resolveTimeoutOptions(o));
  return {
    name: 'timeout',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new TimeoutService(inner, makeParam(env), env.deadlines, env.events, env.service),
  };
}
