/**
 * # rate-limit
 *
 * A token bucket: `rate` tokens per `interval`, holding at most `burst`; each call takes one.
 * Refill is lazy — computed from the clock when a call arrives — so an idle limiter costs
 * nothing and there is no refill timer. Without a token the call is refused at once with
 * {@link RateLimitedError}, whose `retryAfterMs` says when the next token will be there.
 *
 * In `wait` mode a call instead reserves the next token (the bucket goes negative, so waiters
 * are served in order without a queue scan) and sleeps until it is due — unless that is past
 * its deadline or `maxWait`, in which case it is refused at once rather than left to time out.
 * A waiter that is cancelled (or whose deadline fires above) gives its reservation back.
 *
 * Prior art: Guava's `RateLimiter` and Go's `x/time/rate` (reservations), Tower's `RateLimit`,
 * Envoy's local rate limit filter, cockatiel has none.
 *
 * @module
 */

import type { CallContext } from '../../core/context.js';
import { formatDuration } from '../../core/duration.js';
import { CancelledError, RateLimitedError, ServiceClosedError } from '../../core/errors.js';
import { type OptionsOrLive, type Param, prepareParam } from '../../core/params.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { type WaitEnd, Waiter, WaiterQueue, type WaitOwner } from '../concurrency-limit/waiter.js';
import { innerReady } from '../load-shed/admission.js';
import { type RateLimitOptions, type RateLimitParams, resolveRateLimitOptions } from './options.js';

export { type RateLimitOptions, type RateLimitParams, resolveRateLimitOptions } from './options.js';

const LAYER = { layer: 'rate-limit' } as const;

/** The service of the rate-limit layer. */
export class RateLimitService<Req, Res> implements Service<Req, Res>, WaitOwner {
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<RateLimitParams>;
  readonly #env: StackEnv;
  readonly #waiting = new WaiterQueue();
  #tokens: number;
  #refilledAt: number;
  #limited = 0;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<RateLimitParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
    this.#tokens = param.get().burst;
    this.#refilledAt = env.clock.now();
  }

  /** Tokens in the bucket now (negative while calls wait for reserved tokens). */
  get tokens(): number {
    this.#refill(this.#param.get(), this.#env.clock.now());
    return this.#tokens;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError(LAYER));
    const params = this.#param.get();
    const now = this.#env.clock.now();
    this.#refill(params, now);
    if (this.#tokens >= 1) {
      this.#tokens--;
      return this.#inner.call(req, ctx);
    }
    const waitMs = (1 - this.#tokens) / params.perMs;
    if (params.mode === 'fail' || waitMs > params.maxWaitMs || now + waitMs > ctx.deadline) {
      this.#limited++;
      return Promise.reject(new RateLimitedError(waitMs, LAYER));
    }
    if (ctx.cancelled) return Promise.reject(ctx.cancelReason);
    this.#tokens--; // the reservation: later callers wait behind it
    const waiter = new Waiter(this, ctx, this.#env.clock, waitMs);
    this.#waiting.push(waiter);
    return this.#afterWait(req, waiter);
  }

  async #afterWait(req: Req, waiter: Waiter): Promise<Res> {
    await waiter.promise;
    return this.#inner.call(req, waiter.ctx);
  }

  /** @internal a waiter's token is due, or its call was abandoned. */
  waitEnded(waiter: Waiter, why: WaitEnd): void {
    this.#waiting.remove(waiter);
    if (why === 'timer') {
      waiter.grant();
      return;
    }
    this.#tokens++; // give the reservation back
    const ctx = waiter.ctx;
    waiter.fail(ctx.cancelled ? ctx.cancelReason : new CancelledError(LAYER));
  }

  ready(): boolean {
    return !this.#closed && this.tokens >= 1 && innerReady(this.#inner as Service<unknown, unknown>);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    return describeChain(
      {
        layer: 'rate-limit',
        params: {
          rate: p.rate,
          interval: formatDuration(p.intervalMs),
          burst: p.burst,
          mode: p.mode,
          maxWait: formatDuration(p.maxWaitMs),
        },
        state: { tokens: Math.round(this.tokens * 1000) / 1000, waiting: this.#waiting.size, limited: this.#limited },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const waiter of this.#waiting.drain()) waiter.fail(new ServiceClosedError(LAYER));
    await this.#inner.close?.();
  }

  #refill(params: RateLimitParams, now: number): void {
    const elapsed = now - this.#refilledAt;
    if (elapsed <= 0) return;
    this.#refilledAt = now;
    const tokens = this.#tokens + elapsed * params.perMs;
    this.#tokens = tokens < params.burst ? tokens : params.burst;
  }
}

/** The rate-limit layer: `.rateLimit({ rate: 100, interval: '1s', burst: 20 })`. */
export function rateLimit<Req, Res>(options: OptionsOrLive<RateLimitOptions>): Layer<Req, Res> {
  const makeParam = prepareParam('rate-limit', options, (o) => resolveRateLimitOptions(o));
  return {
    name: 'rate-limit',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new RateLimitService(inner, makeParam(env), env),
  };
}
