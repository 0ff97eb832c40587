/**
 * # adaptive-concurrency
 *
 * A concurrency limit that finds its own number. A fixed limit is either too low (idle capacity)
 * or too high (queueing, then timeouts) and drifts out of tune as the service changes; this one
 * watches each call's latency and outcome and moves the limit, shedding calls beyond it at once
 * with {@link OverloadedError}. For servers that must protect themselves without a tuned number.
 *
 * - `gradient2` (default): grows while latency holds near its long-run average, shrinks as
 *   latency climbs above `rttTolerance` times it (Netflix's `Gradient2Limit`); a drop counts as
 *   the steepest gradient.
 * - `aimd`: +1 per quick success while at least half used, `× backoffRatio` on a drop or a call
 *   slower than `timeout` (Netflix's `AIMDLimit`, TCP's congestion control).
 *
 * A drop is an inner failure that signals overload: a timeout, a shed call beneath, an HTTP
 * 429/503 or gRPC `UNAVAILABLE`/`RESOURCE_EXHAUSTED` by the classifier's status. Other failures
 * teach nothing about capacity and are not sampled. Each call costs two clock reads and a few
 * float operations; `describe()` shows the limit, and integer limit changes are published as
 * `adaptive-limit` events.
 *
 * Prior art: Netflix concurrency-limits (Gradient2, AIMD, Vegas), Envoy's adaptive concurrency
 * filter, "Performance Under Load" (Netflix tech blog).
 *
 * @module
 */

import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { OverloadedError, ServiceClosedError, TimeoutError } from '../../core/errors.js';
import { type CallHooks, callThroughHooks } from '../../core/hooks.js';
import { type OptionsOrLive, type Param, prepareParam } from '../../core/params.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { innerReady } from '../load-shed/admission.js';
import { type LimitAlgorithm, makeAlgorithm } from './algorithms.js';
import { type AdaptiveConcurrencyOptions, type AdaptiveConcurrencyParams, resolveAdaptiveConcurrencyOptions } from './options.js';

export { AimdLimit, Gradient2Limit, type LimitAlgorithm } from './algorithms.js';
export { type AdaptiveConcurrencyOptions, type AdaptiveConcurrencyParams, resolveAdaptiveConcurrencyOptions } from './options.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** An adaptive concurrency limit moved to a new whole number. */
    'adaptive-limit': { service: string; algorithm: string; limit: number; previous: number };
  }
}

const LAYER = { layer: 'adaptive-concurrency' } as const;
const OVERLOAD_STATUSES: ReadonlySet<string> = new Set([
  'timeout',
  '429',
  '503',
  'unavailable',
  'resource_exhausted',
  'UNAVAILABLE',
  'RESOURCE_EXHAUSTED',
]);

/** The service of the adaptive-concurrency layer. */
export class AdaptiveConcurrencyService<Req, Res> implements Service<Req, Res>, CallHooks {
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<AdaptiveConcurrencyParams>;
  readonly #env: StackEnv;
  #params: AdaptiveConcurrencyParams;
  #algorithm: LimitAlgorithm;
  /** `floor(algorithm.limit)`, cached: the admission check is one compare. */
  #limit: number;
  #inflight = 0;
  #shed = 0;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<AdaptiveConcurrencyParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
    this.#params = param.get();
    this.#algorithm = makeAlgorithm(this.#params, this.#params.initialLimit);
    this.#limit = this.#params.initialLimit;
  }

  /** The current limit. */
  get limit(): number {
    return this.#limit;
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#inflight;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return callThroughHooks(this, this.#inner, req, ctx);
  }

  /** @internal it reads the clock on every call: the stack shares those readings. */
  get timedBy(): Clock {
    return this.#env.clock;
  }

  /** @internal admission: the start time of an admitted call, or a refusal. */
  admit(ctx: CallContext): number | Error {
    if (this.#closed) return new ServiceClosedError(LAYER);
    const params = this.#param.get();
    if (params !== this.#params) this.#adopt(params);
    if (this.#inflight >= this.#limit) {
      this.#shed++;
      return new OverloadedError(`adaptive concurrency limit ${this.#limit} reached`, LAYER);
    }
    this.#inflight++;
    return ctx.timeOn(this.#env.clock);
  }

  /** @internal an admitted call settled: sample it. */
  settled(startedAt: number, threw: boolean, outcome: unknown, ctx: CallContext): void {
    const inflight = this.#inflight--;
    let dropped = false;
    if (threw) {
      if (ctx.cancelled) return;
      if (outcome instanceof TimeoutError || outcome instanceof OverloadedError) dropped = true;
      else {
        const verdict = this.#env.classifier.classifyError(outcome);
        if (verdict.kind === 'failure' && !OVERLOAD_STATUSES.has(verdict.status)) return;
        dropped = verdict.kind === 'failure';
      }
    } else {
      const verdict = this.#env.classifier.classifyResult(outcome);
      if (verdict.kind === 'failure') {
        if (!OVERLOAD_STATUSES.has(verdict.status)) return;
        dropped = true;
      }
    }
    const next = Math.floor(this.#algorithm.sample(ctx.timeOn(this.#env.clock) - startedAt, inflight, dropped));
    if (next !== this.#limit) {
      const previous = this.#limit;
      this.#limit = next;
      const events = this.#env.events;
      if (events.wants('adaptive-limit')) {
        events.emit('adaptive-limit', { service: this.#env.service, algorithm: this.#algorithm.name, limit: next, previous });
      }
    }
  }

  ready(): boolean {
    return !this.#closed && this.#inflight < this.#limit && innerReady(this.#inner as Service<unknown, unknown>);
  }

  describe(): LayerDescription[] {
    const p = this.#params;
    const params: Record<string, unknown> =
      p.algorithm === 'aimd'
        ? { algorithm: 'aimd', minLimit: p.minLimit, maxLimit: p.maxLimit, backoffRatio: p.backoffRatio, timeoutMs: p.timeoutMs }
        : {
            algorithm: 'gradient2',
            minLimit: p.minLimit,
            maxLimit: p.maxLimit,
            smoothing: p.smoothing,
            rttTolerance: p.rttTolerance,
            longWindow: p.longWindow,
            queueSize: p.queueSize,
          };
    return describeChain(
      { layer: 'adaptive-concurrency', params, state: { ...this.#algorithm.state(), inflight: this.#inflight, shed: this.#shed } },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#inner.close?.();
  }

  /** New live parameters: the algorithm is rebuilt, starting from the limit reached so far. */
  #adopt(params: AdaptiveConcurrencyParams): void {
    this.#params = params;
    const start = Math.max(params.minLimit, Math.min(params.maxLimit, this.#algorithm.limit));
    this.#algorithm = makeAlgorithm(params, start);
    this.#limit = Math.floor(start);
  }
}

/** The adaptive-concurrency layer: `.adaptiveConcurrency({ algorithm: 'gradient2' })`. */
export function adaptiveConcurrency<Req, Res>(options: OptionsOrLive<AdaptiveConcurrencyOptions> = {}): Layer<Req, Res> {
  const makeParam = prepareParam('adaptive-concurrency', options, (o) => resolveAdaptiveConcurrencyOptions(o));
  return {
    name: 'adaptive-concurrency',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new AdaptiveConcurrencyService(inner, makeParam(env), env),
  };
}
