/**
 * # retry
 *
 * Retries failed attempts — but only those that can help, only as often as the budget allows,
 * and never past the call's deadline. Each failure is classified once (network error, timed-out
 * attempt, 503 with `Retry-After`, ...); `retryOn` decides which classifications to retry; the
 * delay comes from the backoff (exponential with full, equal or decorrelated jitter, constant,
 * or custom), raised to a server's `Retry-After`; a shared {@link RetryBudget} keeps retries to
 * a fraction of traffic so an outage does not become a retry storm. A sleeping backoff wakes if
 * the call is cancelled or its deadline fires.
 *
 * When the layer gives up, the caller gets the last real failure — the thrown error or the
 * failed response — never a generic "retries exhausted". Why it gave up is counted in
 * {@link RetryStats} and published as a `retry-skipped` event: `budget`, `not-retryable`,
 * `attempts`, `deadline` or `cancelled`.
 *
 * Prior art: Tower's `Retry` and `TpsBudget`; linkerd2-proxy's retries and Finagle's
 * `RetryBudget` (ratio 0.2, 10/s, 10 s); Istio's `retries` (`attempts`, `perTryTimeout`,
 * `retryOn`); AWS's "Exponential Backoff and Jitter".
 *
 * @module
 */

import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { type RetryOptions, resolveRetryOptions } from './options.js';
import { RetryService } from './retry.js';

export { type BackoffFunction, type BackoffOptions, type BackoffParams, backoffDelay, type Jitter, resolveBackoff } from './backoff.js';
export { RetryBudget, type RetryBudgetOptions, type RetryBudgetParams, resolveRetryBudgetOptions } from './budget.js';
export { matchesRetryOn, type RetryOn, type RetryOptions, type RetryParams, type RetryPredicate, resolveRetryOptions } from './options.js';
export { RetryService, type RetryStats } from './retry.js';

/** The retry layer: `.layer(retry({ attempts: 3 }))`, or the builder's `.retry({ attempts: 3 })`. */
export function retry<Req, Res>(options: OptionsOrLive<RetryOptions> = {}): Layer<Req, Res> {
  const makeParam = prepareParam('retry', options, (o) => resolveRetryOptions(o));
  return {
    name: 'retry',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new RetryService(inner, makeParam(env), env),
  };
}
