/**
 * # fallback
 *
 * Answers with something useful when the call fails in a way the application has planned for:
 * a cached or default value when the circuit is open, an empty list when a recommendations
 * service times out. The fallback is a value or a function of the failure and the request; it
 * applies only to the chosen failures — error classes (`CircuitOpenError`), classification
 * statuses (`"timeout"`, `"503"`, `"error"`), or a predicate — so a bug in the caller's own
 * request is not hidden behind a default. A cancelled call is never answered with a fallback:
 * the caller stopped waiting.
 *
 * Failures are what the stack's classifier says they are: a thrown error is judged with
 * `classifyError`, and a returned value that the classifier calls a failure (an HTTP 503
 * response) falls back too when it matches.
 *
 * Prior art: cockatiel's `fallback`, opossum's `fallback`, Polly's `Fallback`, Hystrix's
 * `getFallback`.
 *
 * @module
 */

import type { Classification } from '../../core/classify.js';
import type { CallContext } from '../../core/context.js';
import { ServiceClosedError } from '../../core/errors.js';
import { type OptionsOrLive, type Param, prepareParam } from '../../core/params.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { type FallbackOptions, type FallbackParams, matchesFallback, resolveFallbackOptions } from './options.js';

export { type ErrorClass, type FallbackOn, type FallbackOptions, type FallbackParams, resolveFallbackOptions } from './options.js';

declare module '../../core/events.js' {
  interface MeshEvents {
    /** A failed call was answered by the fallback. */
    fallback: { service: string; status: string; error?: unknown };
  }
}

/** What the fallback layer did. */
export interface FallbackStats {
  calls: number;
  /** Failures answered by the fallback. */
  used: number;
  /** Failures passed on because they did not match `on` (or the call was cancelled). */
  passed: number;
}

/** The service of the fallback layer. */
export class FallbackService<Req, Res> implements Service<Req, Res> {
  readonly stats: FallbackStats = { calls: 0, used: 0, passed: 0 };
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<FallbackParams<Req, Res>>;
  readonly #env: StackEnv;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<FallbackParams<Req, Res>>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
  }

  async call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) throw new ServiceClosedError({ layer: 'fallback' });
    this.stats.calls++;
    let result: Res;
    try {
      result = await this.#inner.call(req, ctx);
    } catch (error) {
      return this.#recover(this.#env.classifier.classifyError(error), error, true, req, ctx);
    }
    const verdict = this.#env.classifier.classifyResult(result);
    return verdict.kind === 'success' ? result : this.#recover(verdict, result, false, req, ctx);
  }

  /** Answers a failure with the fallback when it matches; otherwise passes it on as it came. */
  #recover(verdict: Classification, failure: unknown, threw: boolean, req: Req, ctx: CallContext): Res | Promise<Res> {
    const p = this.#param.get();
    if (ctx.cancelled || !matchesFallback(p.on, failure, verdict)) {
      this.stats.passed++;
      if (threw) throw failure;
      return failure as Res;
    }
    this.stats.used++;
    if (this.#env.events.wants('fallback')) {
      this.#env.events.emit('fallback', { service: this.#env.service, status: verdict.status, error: failure });
    }
    return p.handler === undefined ? (p.value as Res) : p.handler(failure, req);
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    return describeChain(
      { layer: 'fallback', params: { kind: p.handler === undefined ? 'value' : 'function', on: p.describeOn }, state: { ...this.stats } },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#inner.close?.();
  }
}

/**
 * The fallback layer: `.fallback({ value: [], on: [CircuitOpenError, 'timeout'] })`, or
 * `.fallback({ handler: (error, req) => cache.get(req[0]) })`.
 */
export function fallback<Req = any, Res = any>(options: OptionsOrLive<FallbackOptions<Req, Res>>): Layer<Req, Res> {
  const makeParam = prepareParam('fallback', options, (o) => resolveFallbackOptions(o));
  return {
    name: 'fallback',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new FallbackService(inner, makeParam(env), env),
  };
}
