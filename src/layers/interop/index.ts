/**
 * # interop
 *
 * Moves a service into a stack one policy at a time. A team with a cockatiel policy or an
 * opossum breaker keeps it, tuned as it is, as a layer: `fromCockatiel(policy)` runs calls
 * through `policy.execute` with the call's signal, `fromOpossum(breaker)` through
 * `breaker.fire`. Their events are re-published on the stack's hub (`cockatiel` and `opossum`
 * events, and so on `sidecarless:cockatiel` / `sidecarless:opossum` diagnostics channels), so
 * the stack's metrics and logs see them next to ours. Both libraries are optional peers: this
 * module only imports their types and receives the objects.
 *
 * Interop layers cost what the libraries cost (a closure and promise hops per call); replace
 * them with the native `retry`, `timeout` and `circuitBreaker` layers when convenient.
 *
 * @module
 */

import type { CockatielEventName } from './cockatiel.js';
import type { OpossumEventName } from './opossum.js';

export { type CockatielEventName, CockatielService, fromCockatiel } from './cockatiel.js';
export { fromOpossum, OPOSSUM_EVENTS, type OpossumEventName, type OpossumLayerOptions, OpossumService, opossumAction } from './opossum.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** An event of a cockatiel policy in the stack; `detail` is cockatiel's payload. */
    cockatiel: { service: string; event: CockatielEventName; detail: unknown };
    /** An event of an opossum breaker in the stack; `detail` is opossum's first argument. */
    opossum: { service: string; event: OpossumEventName; detail: unknown };
  }
}
