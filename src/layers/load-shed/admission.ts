/**
 * Helpers shared by the admission-control layers (circuit breaker, concurrency limit, adaptive
 * concurrency, rate limit, load shed). These layers look at a call before it starts and after it
 * settles, but never change its control flow, so they share one way of running the inner call
 * and reporting its outcome: {@link runAndAccount}, with no closure per call — the layer itself
 * is the hook and a number is the per-call token.
 *
 * @module
 */

import type { CallContext } from '../../core/context.js';
import type { Service } from '../../core/service.js';

/** What an admission layer learns when a call it admitted settles. */
export interface SettleHook {
  /**
   * Called exactly once per admitted call.
   * @param token the number the layer chose at admission (a generation, a start time, a partition).
   * @param threw whether the inner call rejected.
   * @param outcome the value or the error.
   */
  settled(token: number, threw: boolean, outcome: unknown, ctx: CallContext): void;
}

/**
 * Runs `inner.call` and reports its outcome to `hook` once, then passes the outcome on
 * unchanged. A hook that throws is a bug of ours; it must not turn a success into a failure, so
 * it is reported as a warning instead.
 */
export async function runAndAccount<Req, Res>(
  inner: Service<Req, Res>,
  req: Req,
  ctx: CallContext,
  hook: SettleHook,
  token: number,
): Promise<Res> {
  let value: Res;
  try {
    value = await inner.call(req, ctx);
  } catch (error) {
    report(hook, token, true, error, ctx);
    throw error;
  }
  report(hook, token, false, value, ctx);
  return value;
}

function report(hook: SettleHook, token: number, threw: boolean, outcome: unknown, ctx: CallContext): void {
  try {
    hook.settled(token, threw, outcome, ctx);
  } catch (error) {
    process.emitWarning(`sidecarless: admission accounting failed: ${String(error)}`, 'SidecarlessInternalWarning');
  }
}

/** Whether the inner service would admit a call now (absent `ready()` means yes). */
export function innerReady(inner: Service<unknown, unknown>): boolean {
  return inner.ready?.() ?? true;
}
