/**
 * # fault-injection
 *
 * What Istio's `fault` does, in-process: delay and/or abort a configured percentage of calls,
 * to see in staging how the rest of the stack (timeouts, retries, breakers, fallbacks) and the
 * callers behave when a dependency is slow or failing. The delay comes first, then the abort,
 * as in Envoy's fault filter; an aborted call never reaches the service.
 *
 * Parameters are live: a control plane can switch faults on and off without a redeploy. The
 * draw uses the stack's `random` and the delay its clock, so a seeded test or the policy
 * simulator is deterministic. A delay never outlives the call's deadline: the call then fails
 * with `TimeoutError` at the deadline, and a cancelled call stops waiting at once.
 *
 * Why it is cheap when idle: with both percentages at 0 a call costs a parameter read; a
 * delayed call's wait is an entry in the shared deadline lists, not a `setTimeout`.
 *
 * Prior art: Istio's `HTTPFaultInjection` (`delay.fixedDelay`, `abort.httpStatus`,
 * `abort.grpcStatus`, `percentage.value`), Envoy's fault filter, Netflix's Chaos Monkey.
 *
 * @module
 */

import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { FaultInjectionService } from './fault-injection.js';
import { type FaultInjectionOptions, resolveFaultInjectionOptions } from './options.js';

export { FaultInjectionService, type FaultInjectionStats } from './fault-injection.js';
export {
  FaultInjectedError,
  type FaultInjectionOptions,
  type FaultInjectionParams,
  type FaultPercentage,
  resolveFaultInjectionOptions,
} from './options.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** A fault was injected: a call delayed by `delayMs`, or aborted with `status`. */
    fault: { service: string; kind: 'delay' | 'abort'; delayMs?: number; status?: string };
  }
}

/** The fault injection layer: `.faultInjection({ abort: { percentage: 10, httpStatus: 503 } })`. */
export function faultInjection<Req, Res>(options: OptionsOrLive<FaultInjectionOptions>): Layer<Req, Res> {
  const makeParam = prepareParam('fault-injection', options, (o) => resolveFaultInjectionOptions(o));
  return {
    name: 'fault-injection',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new FaultInjectionService(inner, makeParam(env), env),
  };
}
