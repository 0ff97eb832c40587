/**
 * # hedge
 *
 * Cuts tail latency by asking twice. When a call has not answered after a delay — fixed, or
 * the chosen percentile (say p95) of recent calls — the layer sends the same request again on
 * a forked context; the first success wins, and the losers' signals fire (their fork is
 * cancelled with a `CancelledError` from layer `hedge`) so the callee can stop work. A loser
 * whose callee ignores the signal reports no timeout when a deadline beneath passes later.
 *
 * Why it cannot storm: every hedge is withdrawn from a `RetryBudget` — the same one a
 * retry layer uses, when given the instance — so hedges add at most the budget's ratio of
 * extra load, and stop when a slow backend has used it up.
 *
 * How a hedge is named: it keeps the attempt number of the attempt it hedges (`ctx.attempt`,
 * which a retry above owns) and carries its own index, `ctx.hedge` (1 for the first hedge, 0 for
 * the primary), so metrics, tracing and events below tell a hedge from a retry. A call whose first attempt fails
 * before the delay is not hedged: the failure propagates (a retry above may handle it).
 *
 * Why it is cheap: the delay timer is an entry in the stack's shared deadline lists (no
 * `setTimeout` per call), the latency percentile comes from a fixed-bucket histogram rotated
 * lazily by the clock (O(1) per call; the percentile is recomputed once per window), and a call
 * that cannot be hedged (no estimate yet, past its deadline) goes straight through. A hedged
 * call costs one forked context per attempt.
 *
 * Prior art: Tower's `Hedge` (percentile of a rotating histogram, minimum data points),
 * Finagle's backup requests, Dean and Barroso's "The Tail at Scale", gRPC's hedging policy.
 *
 * @module
 */

import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { HedgeService, type HedgeSkipReason } from './hedge.js';
import { type HedgeOptions, resolveHedgeOptions } from './options.js';

export { HedgeService, type HedgeSkipReason, type HedgeStats } from './hedge.js';
export { LatencyWindow } from './latency.js';
export { type HedgeOptions, type HedgeParams, resolveHedgeOptions } from './options.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /**
     * A hedge was sent: `hedge` is its number (1 for the first) after `delayMs`, as the hedged
     * attempt's `ctx.hedge`; `attempt` is the number of the attempt it hedges (its `ctx.attempt`).
     */
    hedge: { service: string; attempt: number; hedge: number; delayMs: number };
    /** A hedge was due but not sent, and why. */
    'hedge-skipped': { service: string; attempt: number; reason: HedgeSkipReason };
  }
}

/** The hedge layer: `.layer(hedge({ percentile: 95 }))`, or the builder's `.hedge({ delay: '50ms' })`. */
export function hedge<Req, Res>(options: OptionsOrLive<HedgeOptions> = {}): Layer<Req, Res> {
  const makeParam = prepareParam('hedge', options, (o) => resolveHedgeOptions(o));
  return {
    name: 'hedge',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new HedgeService(inner, makeParam(env), env),
  };
}
