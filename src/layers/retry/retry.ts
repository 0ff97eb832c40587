import { type Classification, type Classifier, isNetworkError } from '../../core/classify.js';
import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { formatDuration } from '../../core/duration.js';
import { ServiceClosedError } from '../../core/errors.js';
import type { RetrySkipReason } from '../../core/events.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type Settler, type StackEnv } from '../../core/service.js';
import { callInto, settleFrom } from '../../core/settle.js';
import { TimeoutService } from '../timeout/timeout.js';
import { backoffDelay } from './backoff.js';
import { adoptBudget, type RetryBudget, type RetryBudgetOptions } from './budget.js';
import { matchesRetryOn, type RetryParams } from './options.js';

/** Counts of what the retry layer decided, by outcome: the record of why retries did not happen. */
export interface RetryStats {
  /** Logical calls. */
  calls: number;
  /** Retries sent. */
  retried: number;
  /** Failures not retried, by reason. */
  skipped: Record<RetrySkipReason, number>;
}

/**
 * Sleeps on the clock; resolves `false` early if the call is abandoned meanwhile, or when
 * `sleepers` (the layer's, woken on close) is woken.
 */
function sleep(clock: Clock, ms: number, ctx: CallContext, sleepers: Set<() => void>): Promise<boolean> {
  return new Promise((resolve) => {
    const wake = (): void => {
      clock.clearTimer(timer);
      sleepers.delete(wake);
      ctx.setWaker(undefined);
      resolve(false);
    };
    const timer = clock.setTimer(() => {
      sleepers.delete(wake);
      ctx.setWaker(undefined);
      resolve(true);
    }, ms);
    sleepers.add(wake);
    ctx.setWaker(wake);
  });
}

/** The first attempt of a call made through {@link RetryService.callInto}: what it needs to retry. */
class FirstAttempt implements Settler {
  constructor(
    readonly owner: RetryService<unknown, unknown>,
    readonly req: unknown,
    readonly ctx: CallContext,
    readonly params: RetryParams,
    readonly budget: RetryBudget | undefined,
    readonly deadline: number,
    readonly outer: Settler,
  ) {}

  settle(threw: boolean, outcome: unknown): void {
    this.owner.firstSettled(this, threw, outcome);
  }
}

/** The service of the retry layer; see the module doc in `index.ts`. */
export class RetryService<Req, Res> implements Service<Req, Res> {
  #calls = 0;
  #retried = 0;
  #skips: Record<RetrySkipReason, number> | undefined = undefined;
  readonly #inner: Service<Req, Res>;
  #perTry: TimeoutService<Req, Res> | undefined = undefined;
  readonly #env: StackEnv;
  #budgetParams: RetryParams | undefined = undefined;
  readonly #param: Param<RetryParams>;
  readonly #classifier: Classifier<unknown>;
  #budgetSource: RetryBudget | RetryBudgetOptions | undefined = undefined;
  #budget: RetryBudget | undefined = undefined;
  #closed = false;
  /** Wakers of the calls sleeping in a backoff; made at the first backoff (a set per stack is ~150 B of heap). */
  #sleepers: Set<() => void> | undefined = undefined;

  constructor(inner: Service<Req, Res>, param: Param<RetryParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#classifier = env.classifier;
    this.#env = env;
  }

  /** The budget in force (shared or this stack's own), if any. */
  get budget(): RetryBudget | undefined {
    return this.#budgetFor(this.#param.get());
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'retry' }));
    const params = this.#param.get();
    const budget = this.#budgetFor(params);
    // Our own view of the deadline: a per-try timeout below restores it, one above set it.
    const deadline = ctx.deadline;
    const first = this.#first(req, ctx, params, budget);
    // The success path is one reaction on the first attempt; the retry loop is only entered
    // (as an async function) once an attempt failed. (Arrows are inlined rather than named:
    // transpilers that keep names wrap each named closure in a call per creation.)
    if (this.#classifier.judgesResults === false) {
      return first.then(undefined, (error: unknown) =>
        this.#recover(req, ctx, params, budget, deadline, true, error, this.#classifier.classifyError(error)),
      );
    }
    return first.then(
      (result) => {
        const verdict = this.#failure(false, result);
        return verdict === undefined ? result : this.#recover(req, ctx, params, budget, deadline, false, result, verdict);
      },
      (error: unknown) => this.#recover(req, ctx, params, budget, deadline, true, error, this.#classifier.classifyError(error)),
    );
  }

  /**
   * {@link RetryService.call}, reporting to the caller's settler. The first attempt reports to
   * a {@link FirstAttempt} in turn, so a stack of settler-capable layers answers through one
   * reaction: no promise of the retry's own unless an attempt failed.
   */
  callInto(req: Req, ctx: CallContext, settler: Settler): void {
    if (this.#closed) {
      settler.settle(true, new ServiceClosedError({ layer: 'retry' }));
      return;
    }
    const params = this.#param.get();
    const budget = this.#budgetFor(params);
    const target = this.#begin(params, budget);
    const attempt = new FirstAttempt(this as RetryService<unknown, unknown>, req, ctx, params, budget, ctx.deadline, settler);
    callInto(target as Service<unknown, unknown>, req, ctx, attempt);
  }

  /** @internal the first attempt settled; see {@link FirstAttempt}. */
  firstSettled(attempt: FirstAttempt, threw: boolean, outcome: unknown): void {
    const verdict = this.#failure(threw, outcome);
    if (verdict === undefined) {
      attempt.outer.settle(false, outcome);
      return;
    }
    settleFrom(
      this.#recover(attempt.req as Req, attempt.ctx, attempt.params, attempt.budget, attempt.deadline, threw, outcome, verdict),
      attempt.outer,
    );
  }

  /** Counts the call and starts its first attempt (the throw of a synchronous callee becomes a rejection). */
  #first(req: Req, ctx: CallContext, params: RetryParams, budget: RetryBudget | undefined): Promise<Res> {
    const target = this.#begin(params, budget);
    try {
      return target.call(req, ctx);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Counts a logical call (in the budget too) and returns what its first attempt calls. */
  #begin(params: RetryParams, budget: RetryBudget | undefined): Service<Req, Res> {
    budget?.deposit();
    this.#calls++;
    return this.#target(params);
  }

  /**
   * The one classification of a settled first attempt: `undefined` when it stands as it is (a
   * success), else the verdict the retry loop starts from — so no outcome is judged twice.
   */
  #failure(threw: boolean, outcome: unknown): Classification | undefined {
    const classifier = this.#classifier;
    if (threw) return classifier.classifyError(outcome);
    if (classifier.judgesResults === false) return undefined;
    const verdict = classifier.classifyResult(outcome);
    return verdict.kind === 'success' ? undefined : verdict;
  }

  /**
   * The retry loop, from a failed first attempt (already judged: `verdict`) until a success or a
   * reason to stop. `outcome` is what the last attempt threw (`threw`) or returned.
   */
  async #recover(
    req: Req,
    ctx: CallContext,
    params: RetryParams,
    budget: RetryBudget | undefined,
    deadline: number,
    threw: boolean,
    outcome: unknown,
    verdict: Classification,
  ): Promise<Res> {
    const target = this.#target(params);
    let previousDelay = 0;
    for (let attempt = 1; ; attempt++) {
      // A thrown error the classifier calls a success is still the caller's error, not a value.
      if (verdict.kind === 'success') {
        if (threw) throw outcome;
        return outcome as Res;
      }
      const error = threw ? outcome : undefined;
      const result = threw ? undefined : (outcome as Res);

      let skip: RetrySkipReason | undefined;
      let delay = 0;
      // A closed stack starts no backoff: close() wakes the sleepers it finds, not those to come.
      if (ctx.cancelled || this.#closed) skip = 'cancelled';
      else if (!matchesRetryOn(params.retryOn, verdict, threw, error, result, isNetworkError)) skip = 'not-retryable';
      else if (attempt > params.attempts) skip = 'attempts';
      else {
        delay = backoffDelay(params.backoff, attempt, previousDelay, this.#env.random);
        if (params.honorRetryAfter && verdict.retryAfterMs !== undefined && verdict.retryAfterMs > delay) delay = verdict.retryAfterMs;
        if (this.#env.clock.now() + delay >= deadline) skip = 'deadline';
        else if (budget !== undefined && !budget.withdraw()) skip = 'budget';
      }
      if (skip === undefined) {
        this.#retried++;
        if (this.#env.events.wants('retry')) {
          this.#env.events.emit('retry', {
            service: this.#env.service,
            route: ctx.route,
            attempt,
            delayMs: delay,
            status: verdict.status,
            error,
          });
        }
        previousDelay = delay;
        if (delay > 0 && !(await sleep(this.#env.clock, delay, ctx, (this.#sleepers ??= new Set())))) skip = 'cancelled';
        else if (ctx.cancelled || this.#closed) skip = 'cancelled';
        else if (this.#env.clock.now() >= deadline) skip = 'deadline';
        // Only a result that is really replaced is discarded: one returned after all must stay whole.
        if (skip === undefined && !threw) params.discard?.(result);
      }
      if (skip !== undefined) {
        this.#skipped(skip, attempt, verdict, ctx);
        if (threw) throw outcome;
        return outcome as Res;
      }

      ctx.beginAttempt(attempt + 1);
      try {
        outcome = await target.call(req, ctx);
        threw = false;
      } catch (caught) {
        outcome = caught;
        threw = true;
      }
      verdict = threw ? this.#classifier.classifyError(outcome) : this.#classifier.classifyResult(outcome);
    }
  }

  /** What each attempt calls: the inner service, or a per-try timeout around it. */
  #target(params: RetryParams): Service<Req, Res> {
    // Small on purpose (V8 inlines small functions only); the per-try timeout is built apart.
    if (params.perTryTimeoutMs === Number.POSITIVE_INFINITY) return this.#inner;
    return this.#perTry ?? this.#perTryTimeout();
  }

  #perTryTimeout(): Service<Req, Res> {
    if (this.#perTry === undefined) {
      const param = this.#param;
      this.#perTry = new TimeoutService(
        this.#inner,
        { get: () => param.get().perTry },
        this.#env.deadlines,
        this.#env.events,
        this.#env.service,
      );
    }
    return this.#perTry;
  }

  /** Counts of what the layer decided: the record of why retries did or did not happen. */
  get stats(): RetryStats {
    const skipped = this.#skips ?? { budget: 0, 'not-retryable': 0, attempts: 0, deadline: 0, cancelled: 0 };
    return { calls: this.#calls, retried: this.#retried, skipped: { ...skipped } };
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    return describeChain(
      {
        layer: 'retry',
        params: {
          attempts: p.attempts,
          retryOn: typeof p.retryOn === 'function' ? 'custom' : [...p.retryOn],
          backoff:
            p.backoff.kind === 'custom'
              ? 'custom'
              : {
                  kind: p.backoff.kind,
                  base: formatDuration(p.backoff.baseMs),
                  max: formatDuration(p.backoff.maxMs),
                  jitter: p.backoff.jitter,
                },
          perTryTimeout: formatDuration(p.perTryTimeoutMs),
        },
        state: { ...this.stats, budget: this.#budgetFor(p)?.describe() ?? 'none' },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Calls sleeping in a backoff end now, with their last failure: none outlives the stack.
    for (const wake of [...(this.#sleepers ?? [])]) wake();
    if (this.#perTry !== undefined) await this.#perTry.close();
    else await this.#inner.close?.();
  }

  #budgetFor(params: RetryParams): RetryBudget | undefined {
    return params === this.#budgetParams ? this.#budget : this.#adoptBudget(params);
  }

  /** The parameters changed (or this is the first call): the budget they name. */
  #adoptBudget(params: RetryParams): RetryBudget | undefined {
    this.#budgetParams = params;
    const own = this.#budget !== undefined && this.#budget !== this.#budgetSource ? this.#budget : undefined;
    this.#budgetSource = params.budget;
    this.#budget = adoptBudget(own, params.budget, this.#env.clock);
    return this.#budget;
  }

  #skipped(reason: RetrySkipReason, attempt: number, verdict: Classification, ctx: CallContext): void {
    this.#skips ??= { budget: 0, 'not-retryable': 0, attempts: 0, deadline: 0, cancelled: 0 };
    this.#skips[reason]++;
    if (this.#env.events.wants('retry-skipped')) {
      this.#env.events.emit('retry-skipped', { service: this.#env.service, route: ctx.route, attempt, reason, status: verdict.status });
    }
  }
}
