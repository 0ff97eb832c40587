/**
 * How every outbound integration (fetch, undici, gRPC) builds its stack: the caller's builder
 * (outer layers, clock, name), then a total timeout, then retries guarded by the replay rules,
 * over the integration's own innermost service. The result is a handle with the same
 * conveniences a built `MeshFunction` has: events, `describe()`, `ready()`, `close()`.
 *
 * @module
 */

import { z } from 'zod';
import { ServiceBuilder } from '../../builder/service-builder.js';
import { type Classification, type Classifier, isNetworkError } from '../../core/classify.js';
import type { Duration } from '../../core/duration.js';
import type { EventHub } from '../../core/events.js';
import { isLive, live, type OptionsOrLive } from '../../core/params.js';
import { defaultRegistry, type StackRegistry } from '../../core/registry.js';
import type { Layer, LayerDescription, Service, StackEnv } from '../../core/service.js';
import type { Discovery, Endpoint } from '../../discovery/types.js';
import { type BalanceOptions, balance } from '../../layers/balance/index.js';
import { matchesRetryOn, type RetryOptions, type RetryPredicate, resolveRetryOptions } from '../../layers/retry/index.js';
import type { TimeoutOptions } from '../../layers/timeout/index.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** A failure that would have been retried was not, because the request cannot be replayed. */
    'replay-refused': { service: string; reason: string; status: string };
  }
}

/** Options every outbound integration takes. */
export interface OutboundOptions {
  /** Name of the logical service (metrics, events, config, `/stack`). Default the builder's. */
  name?: string;
  /** Outer layers and builder options (clock, random); the integration adds timeout and retry. */
  builder?: ServiceBuilder;
  /** Total deadline of a call, retries included (`"2s"`). Default none. */
  timeout?: OptionsOrLive<TimeoutOptions | Duration>;
  /** Retry policy, static or live from a config store; `false` for none. Default 2 retries with budget. */
  retry?: OptionsOrLive<RetryOptions> | false;
  /** Overrides the protocol's classifier. */
  classifier?: Classifier<any>;
  /** Where the stack registers for the admin endpoint; `false` for nowhere. Default the shared one. */
  registry?: StackRegistry | false;
  /**
   * Where the service's endpoints come from (static, DNS, the control plane): each attempt goes
   * to one of them through the balance layer (P2C over peak-EWMA by default, failure accrual).
   */
  discovery?: Discovery;
  /** Options of the balance layer (strategy, EWMA, failure accrual), static or live. */
  loadBalancer?: OptionsOrLive<BalanceOptions>;
}

/**
 * The zod shape of {@link OutboundOptions} for an integration's strict schema: checked later by
 * the builder and the layers themselves (which name the field), so only their presence here.
 */
export const outboundShape = {
  name: z.unknown().optional(),
  builder: z.instanceof(ServiceBuilder, { error: 'must be a ServiceBuilder' }).optional(),
  timeout: z.unknown().optional(),
  retry: z.unknown().optional(),
  classifier: z.unknown().optional(),
  registry: z.unknown().optional(),
  discovery: z.custom<Discovery>((v) => typeof (v as Discovery)?.subscribe === 'function', { error: 'must be a Discovery' }).optional(),
  loadBalancer: z.unknown().optional(),
};

/** What an outbound client exposes besides its call signature. */
export interface OutboundHandle {
  /** The built stack. */
  readonly stack: Service<any, any>;
  /** Typed listeners: `client.events.on('retry', ...)`. */
  readonly events: EventHub;
  readonly serviceName: string;
  /** Requests that failed retryably but were not retried because they could not be replayed, by reason. */
  readonly replayRefused: Record<string, number>;
  describe(): LayerDescription[];
  ready(): boolean;
  /** Releases the stack's timers and the integration's connections. */
  close(): Promise<void>;
}

/**
 * Outcomes (responses, errors) of requests that must not be sent again, with the reason. The
 * innermost service marks them; the guarded `retryOn` reads the mark. A WeakMap, so a response
 * the caller drops is not kept alive.
 */
const refusals = new WeakMap<object, string>();

function refuseReplay(outcome: unknown, reason: string): void {
  if (typeof outcome === 'object' && outcome !== null) refusals.set(outcome, reason);
}

/**
 * `promise`, whose outcome (response or error) is marked in {@link refusals} as not to be sent
 * again, for `reason`; `promise` itself when there is no reason.
 */
export function refusingReplay<T>(promise: Promise<T>, reason: string | undefined): Promise<T> {
  if (reason === undefined) return promise;
  return promise.then(
    (value) => {
      refuseReplay(value, reason);
      return value;
    },
    (error: unknown) => {
      refuseReplay(error, reason);
      throw error;
    },
  );
}

/** Wraps `retryOn` so that outcomes marked in {@link refusals} are never retried, and say why. */
function guardRetryOn(retryOn: RetryOptions['retryOn'], onRefused: (reason: string, verdict: Classification) => void): RetryPredicate {
  const resolved = typeof retryOn === 'function' ? retryOn : resolveRetryOptions({ retryOn }).retryOn;
  return (verdict, outcome) => {
    const threw = 'error' in outcome;
    const allowed =
      typeof resolved === 'function'
        ? resolved(verdict, outcome)
        : matchesRetryOn(resolved, verdict, threw, outcome.error, outcome.result, isNetworkError);
    if (!allowed) return false;
    const target = threw ? outcome.error : outcome.result;
    const reason = typeof target === 'object' && target !== null ? refusals.get(target) : undefined;
    if (reason === undefined) return true;
    onRefused(reason, verdict);
    return false;
  };
}

/** What the balance layer wraps: nothing (it calls its endpoints), closed with it. */
const NOTHING_BELOW: Service<unknown, unknown> = {
  call: () => Promise.reject(new Error('unreachable: the balancer calls its endpoints')),
};

/**
 * Builds an outbound stack. `discard` releases a response that will be retried (cancels its
 * body); the replay guard and `discard` are folded into the retry options, live ones included
 * (once per snapshot, not per call). With a `discovery` (the integration's own, or the caller's
 * `options.discovery`) the innermost service is the balancer over `makeInner(env, endpoint)`
 * per endpoint — below the retry, so each attempt picks again; without, `makeInner(env)`.
 * `perCall` is a layer of the integration's own that runs once per call, under the total
 * timeout and above the retries (the fetch integrations read a stream body there) — once per
 * attempt of the caller's `builder`, when its own layers include a retry or a hedge: the layer
 * must then keep its per-call work to the call (the fetch replay read does).
 */
export function buildOutbound<Req, Res>(
  options: OutboundOptions,
  classifier: Classifier<any>,
  discard: (result: unknown) => void,
  makeInner: (env: StackEnv, endpoint?: Endpoint) => Service<Req, Res>,
  discovery: Discovery | undefined = options.discovery,
  perCall?: Layer<Req, Res>,
): { service: Service<Req, Res>; env: StackEnv; handle: OutboundHandle } {
  let builder = options.builder ?? new ServiceBuilder();
  builder = builder.with(
    options.name === undefined
      ? { classifier: options.classifier ?? classifier }
      : { name: options.name, classifier: options.classifier ?? classifier },
  );
  if (options.timeout !== undefined) builder = builder.timeout(options.timeout);
  if (perCall !== undefined) builder = builder.layer(perCall);
  const replayRefused: Record<string, number> = Object.create(null);
  // Filled in once the stack's environment exists; the guard only runs during calls.
  let events: EventHub | undefined;
  let serviceName = '';
  const onRefused = (reason: string, verdict: Classification): void => {
    replayRefused[reason] = (replayRefused[reason] ?? 0) + 1;
    if (events?.wants('replay-refused')) events.emit('replay-refused', { service: serviceName, reason, status: verdict.status });
  };
  const adapt = (raw: RetryOptions | undefined): RetryOptions => ({
    ...raw,
    retryOn: guardRetryOn(raw?.retryOn, onRefused),
    discard: raw?.discard ?? discard,
  });
  const retryOptions = options.retry ?? {};
  if (retryOptions !== false) {
    builder = builder.retry(
      isLive(retryOptions)
        ? live(retryOptions.store, (config) => adapt(retryOptions.select(config) ?? retryOptions.fallback))
        : adapt(retryOptions as RetryOptions),
    );
  }
  // Read by the endpoint factory, which the balancer first calls while the stack is built.
  let env: StackEnv | undefined;
  if (discovery !== undefined) {
    builder = builder.layer(balance<Req, Res>(discovery, (endpoint) => makeInner(env as StackEnv, endpoint), options.loadBalancer ?? {}));
  }
  env = builder.env();
  events = env.events;
  serviceName = env.service;
  const service = builder.build(discovery === undefined ? makeInner(env) : NOTHING_BELOW, env) as Service<Req, Res>;
  const registry = options.registry === undefined ? defaultRegistry : options.registry;
  const registered = { name: env.service, describe: () => service.describe?.() ?? [] };
  if (registry) registry.add(registered);
  let closing: Promise<void> | undefined;
  const handle: OutboundHandle = {
    stack: service,
    events: env.events,
    serviceName: env.service,
    replayRefused,
    describe: registered.describe,
    ready: () => service.ready?.() ?? true,
    close: () => {
      if (closing === undefined) {
        if (registry) registry.delete(registered);
        closing = (async () => {
          await service.close?.();
          (env as StackEnv).deadlines.disarmIfIdle();
        })();
      }
      return closing;
    },
  };
  return { service, env, handle };
}
