/**
 * How a hedge marks the attempts it abandoned because another one answered. A lost attempt whose
 * callee ignores its signal still runs into the deadlines beneath it, and those expiries are no
 * timeouts of anything: nobody waits for the attempt any more. Being cancelled does not say that
 * alone — a caller cancelling while its deadline passes does get that timeout — so the hedge
 * cancels its losers with an error of its own and layers beneath ask for that one. It lives in
 * core, not in the hedge's folder, because the layers that ask (the timeout) must not reach into
 * another layer.
 *
 * @module
 */

import type { CallContext } from './context.js';
import { CancelledError } from './errors.js';

/** Errors the hedge cancelled losers with: a set rather than a subclass, so the public error type stays `CancelledError`. */
const losses = new WeakSet<CancelledError>();

/** @internal the error a hedge cancels the attempts that lost with. */
export function hedgeLoss(): CancelledError {
  const error = new CancelledError({ layer: 'hedge' });
  losses.add(error);
  return error;
}

/**
 * The error the attempt on `ctx` was cancelled with when a hedge abandoned it because another
 * attempt answered (also under a fork of such an attempt); otherwise `undefined`, also when the
 * caller cancelled first.
 */
export function lostToHedge(ctx: CallContext): CancelledError | undefined {
  if (!ctx.cancelled) return undefined;
  const reason = ctx.cancelReason;
  return losses.has(reason as CancelledError) ? (reason as CancelledError) : undefined;
}
