import type { Classifier } from '../../core/classify.js';
import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { DeadlineEntry, type DeadlineList, type DeadlineQueue } from '../../core/deadlines.js';
import { formatDuration } from '../../core/duration.js';
import { ServiceClosedError } from '../../core/errors.js';
import type { EventHub } from '../../core/events.js';
import { hedgeLoss } from '../../core/lost.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { promiseFor } from '../../core/settle.js';
import { adoptBudget, RetryBudget, type RetryBudgetOptions } from '../retry/budget.js';
import { LatencyWindow } from './latency.js';
import type { HedgeParams } from './options.js';

/** Why a hedge was not sent. */
export type HedgeSkipReason = 'budget' | 'deadline' | 'cancelled';

/** What the hedge layer did, for `/stack` and tests. */
export interface HedgeStats {
  /** Logical calls. */
  calls: number;
  /** Hedges sent. */
  hedged: number;
  /** Calls won by a hedge rather than the first attempt. */
  hedgeWins: number;
  /** Hedges due but not sent, by reason. */
  skipped: Record<HedgeSkipReason, number>;
}

/** One logical call with its concurrent attempts; its deadline entry is the next hedge's timer. */
class HedgedCall extends DeadlineEntry {
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;
  readonly promise: Promise<unknown>;
  readonly owner: HedgeService<unknown, unknown>;
  readonly req: unknown;
  readonly ctx: CallContext;
  readonly delayMs: number;
  readonly maxHedges: number;
  /** Woken when the caller's context is cancelled or its deadline fires: abandons every attempt. */
  readonly wake: () => void;
  /** Contexts of the attempts still running; the first is the primary's until it settles. */
  readonly running: CallContext[] = [];
  primary: CallContext | undefined = undefined;
  hedges = 0;
  settled = false;
  failure: unknown = undefined;
  failureThrew = false;

  constructor(owner: HedgeService<unknown, unknown>, req: unknown, ctx: CallContext, delayMs: number, maxHedges: number) {
    super();
    this.owner = owner;
    this.req = req;
    this.ctx = ctx;
    this.delayMs = delayMs;
    this.maxHedges = maxHedges;
    this.wake = () => owner.abandon(this);
    this.promise = promiseFor(this);
  }

  expire(): void {
    this.owner.hedgeDue(this);
  }
}

/** The service of the hedge layer; see the module doc in `index.ts`. */
export class HedgeService<Req, Res> implements Service<Req, Res> {
  readonly stats: HedgeStats = { calls: 0, hedged: 0, hedgeWins: 0, skipped: { budget: 0, deadline: 0, cancelled: 0 } };
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<HedgeParams>;
  readonly #clock: Clock;
  readonly #classifier: Classifier<unknown>;
  readonly #events: EventHub;
  readonly #service: string;
  readonly #deadlines: DeadlineQueue;
  readonly #latency: LatencyWindow;
  /** Hedged calls in flight, so close() can drop their timers. */
  readonly #inflight = new Set<HedgedCall>();
  #seen: HedgeParams;
  #budgetSource: RetryBudget | RetryBudgetOptions | undefined = undefined;
  #budget: RetryBudget | undefined = undefined;
  #list: DeadlineList | undefined = undefined;
  #listMs = Number.NaN;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<HedgeParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#clock = env.clock;
    this.#classifier = env.classifier;
    this.#events = env.events;
    this.#service = env.service;
    this.#deadlines = env.deadlines;
    const p = param.get();
    this.#seen = p;
    this.#latency = new LatencyWindow(p.windowMs, p.percentile, p.minSamples, env.clock.now());
  }

  /** The budget hedges spend (shared or this stack's own), if any. */
  get budget(): RetryBudget | undefined {
    return this.#budgetFor(this.#param.get());
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'hedge' }));
    const p = this.#param.get();
    const now = this.#clock.now();
    if (p !== this.#seen) {
      this.#seen = p;
      this.#latency.configure(p.windowMs, p.percentile, p.minSamples, now);
    }
    this.stats.calls++;
    const budget = this.#budgetFor(p);
    // A shared budget is filled by the retry layer that owns the traffic; an own one by us.
    if (budget !== undefined && !(p.budget instanceof RetryBudget)) budget.deposit();
    const delay = this.#delay(p, now);
    if (delay === undefined || p.maxHedges === 0 || ctx.cancelled || now + delay >= ctx.deadline) {
      return p.mode === 'percentile' ? this.#measured(req, ctx, now) : this.#inner.call(req, ctx);
    }
    const call = new HedgedCall(this as HedgeService<unknown, unknown>, req, ctx, delay, p.maxHedges);
    ctx.setWaker(call.wake);
    this.#inflight.add(call);
    this.#listOf(delay).insert(call, now + delay, now);
    call.primary = this.#launch(call, now);
    return call.promise as Promise<Res>;
  }

  /** @internal the hedge timer of `call` fired. */
  hedgeDue(call: HedgedCall): void {
    if (call.settled || this.#closed) return;
    const ctx = call.ctx;
    const now = this.#clock.now();
    let skip: HedgeSkipReason | undefined;
    if (ctx.cancelled) skip = 'cancelled';
    else if (now >= ctx.deadline) skip = 'deadline';
    else {
      const budget = this.#budgetFor(this.#param.get());
      if (budget !== undefined && !budget.withdraw()) skip = 'budget';
    }
    if (skip !== undefined) {
      this.stats.skipped[skip]++;
      if (this.#events.wants('hedge-skipped')) {
        this.#events.emit('hedge-skipped', { service: this.#service, attempt: ctx.attempt, reason: skip });
      }
      return;
    }
    call.hedges++;
    this.stats.hedged++;
    if (this.#events.wants('hedge')) {
      this.#events.emit('hedge', { service: this.#service, attempt: ctx.attempt, hedge: call.hedges, delayMs: call.delayMs });
    }
    if (call.hedges < call.maxHedges && now + call.delayMs < ctx.deadline) {
      (call.list ?? this.#listOf(call.delayMs)).insert(call, now + call.delayMs, now);
    }
    this.#launch(call, now);
  }

  /** @internal the caller's context was cancelled or timed out: abandon every attempt. */
  abandon(call: HedgedCall): void {
    if (call.settled) return;
    call.list?.remove(call);
    const ctx = call.ctx;
    // Reading the signal here (a rare path) is how the reason of an aborted attempt is known.
    const reason = ctx.cancelReason ?? ctx.signal.reason;
    for (const child of call.running) child.cancel(reason);
  }

  /** Starts an attempt on a fork of the call's context: the primary, or hedge number `call.hedges`. */
  #launch(call: HedgedCall, now: number): CallContext {
    // A hedge keeps the attempt number it hedges (a retry above owns that numbering) and is told
    // apart by its own index, which hooks and events below see on the context.
    const child = call.ctx.fork(call.hedges);
    call.running.push(child);
    void this.#attempt(call, child, now);
    return child;
  }

  async #attempt(call: HedgedCall, child: CallContext, startedAt: number): Promise<void> {
    let value: unknown;
    let error: unknown;
    let threw = false;
    try {
      value = await this.#inner.call(call.req as Req, child);
    } catch (caught) {
      error = caught;
      threw = true;
    }
    if (call.settled) return;
    const verdict = threw ? this.#classifier.classifyError(error) : this.#classifier.classifyResult(value);
    if (verdict.kind === 'success') {
      const now = this.#clock.now();
      if (this.#seen.mode === 'percentile') this.#latency.record(now - startedAt, now);
      if (child !== call.primary) this.stats.hedgeWins++;
      this.#settle(call, child);
      // A thrown error the classifier calls a success is still the caller's error, not a value.
      if (threw) call.reject(error);
      else call.resolve(value);
      return;
    }
    // First success wins: a failure only ends the call when no other attempt can still win.
    // A pending hedge timer is dropped — a failure is the retry layer's business, not ours.
    call.failure = threw ? error : value;
    call.failureThrew = threw;
    const running = call.running;
    running.splice(running.indexOf(child), 1);
    call.ctx.release(child);
    if (running.length > 0) return;
    this.#settle(call, undefined);
    if (call.failureThrew) call.reject(call.failure);
    else call.resolve(call.failure);
  }

  /** Ends a call: no more hedges, the losers' signals fire, every fork is released. */
  #settle(call: HedgedCall, winner: CallContext | undefined): void {
    call.settled = true;
    call.list?.remove(call);
    this.#inflight.delete(call);
    const ctx = call.ctx;
    ctx.setWaker(undefined);
    const running = call.running;
    if (running.length > 1 || (running.length === 1 && running[0] !== winner)) {
      // Marked as lost, so a deadline beneath that passes later is not reported as a timeout.
      const lost = hedgeLoss();
      for (const child of running) if (child !== winner) child.cancel(lost);
    }
    for (const child of running) ctx.release(child);
    running.length = 0;
  }

  async #measured(req: Req, ctx: CallContext, startedAt: number): Promise<Res> {
    const value = await this.#inner.call(req, ctx);
    if (this.#classifier.classifyResult(value).kind === 'success') {
      const now = this.#clock.now();
      this.#latency.record(now - startedAt, now);
    }
    return value;
  }

  #delay(p: HedgeParams, now: number): number | undefined {
    if (p.mode === 'fixed') return p.delayMs;
    const estimate = this.#latency.estimate(now);
    if (estimate === undefined) return undefined;
    return estimate < p.minDelayMs ? p.minDelayMs : estimate > p.maxDelayMs ? p.maxDelayMs : estimate;
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    const params =
      p.mode === 'fixed'
        ? { delay: formatDuration(p.delayMs), maxHedges: p.maxHedges }
        : {
            percentile: p.percentile,
            window: formatDuration(p.windowMs),
            minSamples: p.minSamples,
            minDelay: formatDuration(p.minDelayMs),
            maxDelay: formatDuration(p.maxDelayMs),
            maxHedges: p.maxHedges,
          };
    const delay = this.#delay(p, this.#clock.now());
    return describeChain(
      {
        layer: 'hedge',
        params,
        state: {
          ...this.stats,
          skipped: { ...this.stats.skipped },
          delay: delay === undefined ? 'learning' : formatDuration(delay),
          samples: this.#latency.samples,
          budget: this.#budgetFor(p)?.describe() ?? 'none',
        },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    // Calls in flight finish with the attempts they have; they send no more hedges.
    this.#closed = true;
    for (const call of this.#inflight) call.list?.remove(call);
    this.#deadlines.disarmIfIdle();
    await this.#inner.close?.();
  }

  #budgetFor(p: HedgeParams): RetryBudget | undefined {
    if (p.budget !== this.#budgetSource) {
      const own = this.#budget !== undefined && this.#budget !== this.#budgetSource ? this.#budget : undefined;
      this.#budgetSource = p.budget;
      this.#budget = adoptBudget(own, p.budget, this.#clock);
    }
    return this.#budget;
  }

  #listOf(delayMs: number): DeadlineList {
    if (delayMs !== this.#listMs || this.#list === undefined) {
      // Percentile delays are bucket bounds (or the min/max clamp), so the lists stay few.
      this.#list = this.#deadlines.listFor(delayMs);
      this.#listMs = delayMs;
    }
    return this.#list;
  }
}
