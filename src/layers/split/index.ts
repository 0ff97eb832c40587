/**
 * # split
 *
 * Sends each call to one of several backend groups: by weight (a canary taking 5%, a
 * blue/green switch from 100/0 to 0/100) or by request attributes (A/B by header, pinning a
 * tenant), the rules tried first, in order. Each backend is a whole {@link Service} — usually
 * its own stack with its own balancer — and the wrapped service is the backend named
 * `primary`. Weights and rules may be live (`live(store, select)`): a new snapshot changes the
 * split on the next call, with no rebuild. A pick costs one random number and a scan of a
 * handful of cumulative weights; rules read `ctx.attributes` only when there are rules.
 *
 * Who closes what: a split owns what it wraps — closing the stack closes the primary, as every
 * layer closes its inner service — but not the backends it is handed. Those are built by the
 * caller and may be shared (one canary stack behind two splits, or also called directly), so
 * closing one split must not break the others: the caller closes each backend once, when all
 * its users are done.
 *
 * Prior art: Linkerd's `HTTPRoute` backendRefs weights and SMI `TrafficSplit`; Istio's
 * `VirtualService` weighted routes and header matches; Flagger's canary steps.
 *
 * @module
 */

import { InvalidOptionError } from '../../core/errors.js';
import { type OptionsOrLive, prepareParam } from '../../core/params.js';
import type { Layer, Service, StackEnv } from '../../core/service.js';
import { PRIMARY, resolveSplitOptions, type SplitOptions } from './options.js';
import { SplitService } from './split.js';

export { type CompiledRule, PRIMARY, resolveSplitOptions, type SplitOptions, type SplitParams, type SplitRule } from './options.js';
export { SplitService } from './split.js';

/**
 * The split layer: `.split({ canary: canaryStack }, { weights: { primary: 95, canary: 5 } })`.
 *
 * @param backends services by name, besides the wrapped `primary`. They remain the caller's:
 *   closing the stack closes the primary but leaves them open (they may be shared), so close
 *   each of them yourself once nothing calls it.
 */
export function split<Req, Res>(
  backends: Readonly<Record<string, Service<Req, Res>>>,
  options: OptionsOrLive<SplitOptions> = {},
): Layer<Req, Res> {
  if (backends === null || typeof backends !== 'object') throw new InvalidOptionError('split.backends', 'must be an object of services');
  const names = [PRIMARY];
  const services: Service<Req, Res>[] = [];
  for (const [name, service] of Object.entries(backends)) {
    if (name === PRIMARY) throw new InvalidOptionError(`split.backends.${name}`, `is reserved for the wrapped service`);
    if (typeof service?.call !== 'function')
      throw new InvalidOptionError(`split.backends.${name}`, 'must be a Service with call(req, ctx)');
    names.push(name);
    services.push(service);
  }
  const makeParam = prepareParam('split', options, (o) => resolveSplitOptions(o, names));
  return {
    name: 'split',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new SplitService(names, [inner, ...services], makeParam(env), env.random),
  };
}
