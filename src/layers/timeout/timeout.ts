import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import type { DeadlineEntry, DeadlineList, DeadlineQueue } from '../../core/deadlines.js';
import { formatDuration } from '../../core/duration.js';
import { ServiceClosedError, TimeoutError } from '../../core/errors.js';
import type { EventHub } from '../../core/events.js';
import { lostToHedge } from '../../core/lost.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type Settler } from '../../core/service.js';
import { callInto, promiseFor, type Settleable } from '../../core/settle.js';
import type { TimeoutParams } from './options.js';

/**
 * One call racing its deadline. It settles the caller's promise of its own, or, when the layer
 * above handed it a settler ({@link Service.callInto}), that settler.
 */
class PendingCall implements DeadlineEntry, Settler, Settleable {
  // A deadline entry by shape rather than by `extends`: a subclass's `super()` costs a builtin
  // call per construction, and one of these is built per call.
  at = 0;
  prev: DeadlineEntry | undefined = undefined;
  next: DeadlineEntry | undefined = undefined;
  list: DeadlineList | undefined = undefined;
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;
  readonly promise: Promise<unknown> | undefined;
  readonly outer: Settler | undefined;
  settled = false;
  readonly ctx: CallContext;
  readonly previousDeadline: number;
  readonly timeoutMs: number;
  readonly owner: TimeoutService<unknown, unknown>;
  /**
   * The entry that held the context's deadline before this one (see
   * {@link CallContext.deadlineHolder}): when `inherited`, the enclosing timeout whose deadline
   * this one keeps and to which its expiry belongs; otherwise the holder to restore on settling.
   */
  readonly above: PendingCall | undefined;
  /** Whether this entry's deadline is an enclosing timeout's (its own was no earlier). */
  readonly inherited: boolean;
  /** The error this entry expired with, once it did. */
  error: TimeoutError | undefined = undefined;

  constructor(
    owner: TimeoutService<unknown, unknown>,
    ctx: CallContext,
    previousDeadline: number,
    timeoutMs: number,
    outer: Settler | undefined,
    above: PendingCall | undefined,
    inherited: boolean,
  ) {
    this.owner = owner;
    this.ctx = ctx;
    this.previousDeadline = previousDeadline;
    this.timeoutMs = timeoutMs;
    this.outer = outer;
    this.above = above;
    this.inherited = inherited;
    this.promise = outer === undefined ? promiseFor(this) : undefined;
  }

  /** The inner call settled first: hand its outcome on and drop the deadline. */
  settle(threw: boolean, outcome: unknown): void {
    if (this.settled) return;
    this.settled = true;
    if (!this.inherited) this.#unwind();
    this.list?.remove(this);
    this.#forward(threw, outcome);
  }

  /**
   * Gives the context's deadline back to the nearest enclosing timeout still running — when this
   * entry holds it, or encloses the entry that does. Entries usually end inside out, but not
   * always: an enclosing timeout can expire while an inner one still holds the deadline (its
   * timer armed a turn later), and it must not leave that inner, passed deadline on the context
   * for the next attempt of a retry above; the inner entry, ending later, then finds it no longer
   * holds the deadline and writes nothing back. An inherited entry never moved it.
   */
  #unwind(): void {
    const ctx = this.ctx;
    let inside = ctx.deadlineHolder as PendingCall | undefined;
    while (inside !== undefined && inside !== this) inside = inside.above;
    if (inside === undefined) return;
    let holder = this.above;
    let deadline = this.previousDeadline;
    while (holder?.settled) {
      deadline = holder.previousDeadline;
      holder = holder.above;
    }
    ctx.deadline = deadline;
    ctx.deadlineHolder = holder;
  }

  /** Expires before the shared lists reach this entry (its deadline has passed): out of its list first. */
  expireNow(): void {
    if (this.settled) return;
    this.list?.remove(this);
    this.expire();
  }

  expire(): void {
    if (this.settled) return;
    if (this.inherited) {
      this.#expireInherited();
      return;
    }
    // A hedge abandoned this attempt because another one answered, and its callee ignored the
    // signal: nobody waits for it, so its deadline passing is no timeout. It ends as it was ended.
    const lost = lostToHedge(this.ctx);
    if (lost !== undefined) {
      this.settled = true;
      this.#unwind();
      this.#forward(true, lost);
      return;
    }
    // An enclosing timeout already expired (this entry's timer, armed a turn late, fired after
    // its): this is that expiry's tail, reported once already.
    const enclosing = this.#expiredAbove();
    if (enclosing !== undefined) {
      this.settled = true;
      this.#unwind();
      this.#forward(true, enclosing);
      return;
    }
    this.settled = true;
    const ctx = this.ctx;
    this.#unwind();
    const error = new TimeoutError(Math.round(this.timeoutMs));
    this.error = error;
    // Abandon what runs below; layers above judge by their own deadline whether the call may
    // go on (a retry above a per-try timeout) or is over.
    ctx.abortAttempt(error);
    this.owner.timedOut(this);
    this.#forward(true, error);
  }

  /**
   * The deadline that passed is the enclosing timeout's: it expires (and reports) first, even
   * when the shared lists reach this entry before its own, and this one ends with its error —
   * one expiry, one event, from the layer whose deadline it was.
   */
  #expireInherited(): void {
    const above = this.above as PendingCall;
    above.expireNow();
    this.settled = true;
    const ctx = this.ctx;
    // The enclosing entry still expires (and reports) when someone waits on it; an attempt a hedge
    // abandoned for another's answer ends with the hedge's error, as in expire().
    const error = lostToHedge(ctx) ?? above.error ?? new TimeoutError(Math.round(this.timeoutMs));
    // The enclosing entry's expiry aborted its own context; a hedge's fork has one of its own. An
    // abort twice over would wake a retry above from its backoff as if the call were cancelled.
    if (ctx !== above.ctx) ctx.abortAttempt(error);
    this.#forward(true, error);
  }

  /** The error of an enclosing timeout that expired, if one did. */
  #expiredAbove(): TimeoutError | undefined {
    for (let entry = this.above; entry !== undefined; entry = entry.above) if (entry.error !== undefined) return entry.error;
    return undefined;
  }

  #forward(threw: boolean, outcome: unknown): void {
    if (this.outer !== undefined) this.outer.settle(threw, outcome);
    else if (threw) this.reject(outcome);
    else this.resolve(outcome);
  }
}

/** The service of the timeout layer; see the module doc in `index.ts`. */
export class TimeoutService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<TimeoutParams>;
  readonly #clock: Clock;
  readonly #deadlines: DeadlineQueue;
  readonly #events: EventHub;
  readonly #service: string;
  #list: DeadlineList | undefined = undefined;
  #listMs = Number.NaN;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<TimeoutParams>, deadlines: DeadlineQueue, events: EventHub, service: string) {
    this.#inner = inner;
    this.#param = param;
    this.#deadlines = deadlines;
    this.#clock = deadlines.clock;
    this.#events = events;
    this.#service = service;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'timeout' }));
    const timeoutMs = this.#param.get().timeoutMs;
    if (timeoutMs === Number.POSITIVE_INFINITY && ctx.deadline === Number.POSITIVE_INFINITY) return this.#inner.call(req, ctx);
    const pending = this.#start(req, ctx, timeoutMs, undefined);
    return (pending instanceof Error ? Promise.reject(pending) : pending.promise) as Promise<Res>;
  }

  /** {@link TimeoutService.call}, settling the caller's settler: no promise of its own. */
  callInto(req: Req, ctx: CallContext, settler: Settler): void {
    if (this.#closed) {
      settler.settle(true, new ServiceClosedError({ layer: 'timeout' }));
      return;
    }
    const timeoutMs = this.#param.get().timeoutMs;
    if (timeoutMs === Number.POSITIVE_INFINITY && ctx.deadline === Number.POSITIVE_INFINITY) {
      callInto(this.#inner, req, ctx, settler);
      return;
    }
    const pending = this.#start(req, ctx, timeoutMs, settler);
    if (pending instanceof Error) settler.settle(true, pending);
  }

  /**
   * A deadline already passed when the call reached this layer. When it is an enclosing
   * timeout's whose timer has not fired yet (a queue above granted the call at that very time),
   * that timeout expires now — its event and its error — rather than being settled by our
   * refusal and never reported.
   */
  #passed(ctx: CallContext, timeoutMs: number, previousDeadline: number, now: number, above: PendingCall | undefined): TimeoutError {
    // Only the context's own holder: a hedge's fork inherits its parent's holder, and a fork
    // reaching here must not expire the parent's call, which another fork may have answered.
    if (above !== undefined && above.ctx === ctx && !ctx.cancelled && !above.settled && previousDeadline <= now + timeoutMs) {
      above.expireNow();
      if (above.error !== undefined) return above.error;
    }
    return new TimeoutError(Math.round(timeoutMs < previousDeadline - now ? timeoutMs : 0));
  }

  /** Sets the deadline, enters it in the shared lists and starts the inner call. */
  #start(req: Req, ctx: CallContext, timeoutMs: number, outer: Settler | undefined): PendingCall | TimeoutError {
    const previousDeadline = ctx.deadline;
    const now = ctx.deadlineBase(this.#clock);
    const own = now + timeoutMs;
    const at = own < previousDeadline ? own : previousDeadline;
    const above = ctx.deadlineHolder as PendingCall | undefined;
    if (at <= now) return this.#passed(ctx, timeoutMs, previousDeadline, now, above);
    // A deadline no earlier than the enclosing timeout's is that one's to report (see PendingCall).
    const inherited = at === previousDeadline && above !== undefined;
    const pending = new PendingCall(this as TimeoutService<unknown, unknown>, ctx, previousDeadline, at - now, outer, above, inherited);
    ctx.deadline = at;
    if (!inherited) ctx.deadlineHolder = pending;
    this.#listOf(timeoutMs).insert(pending, at, now);
    callInto(this.#inner, req, ctx, pending);
    return pending;
  }

  /** @internal reports an expiry. */
  timedOut(pending: PendingCall): void {
    if (this.#events.wants('timeout')) {
      this.#events.emit('timeout', {
        service: this.#service,
        route: pending.ctx.route,
        timeoutMs: pending.timeoutMs,
        attempt: pending.ctx.attempt,
        hedge: pending.ctx.hedge,
      });
    }
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    return describeChain(
      { layer: 'timeout', params: { timeout: formatDuration(this.#param.get().timeoutMs) } },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#deadlines.disarmIfIdle();
    await this.#inner.close?.();
  }

  #listOf(timeoutMs: number): DeadlineList {
    if (timeoutMs !== this.#listMs || this.#list === undefined) {
      this.#list = this.#deadlines.listFor(timeoutMs === Number.POSITIVE_INFINITY ? -1 : timeoutMs);
      this.#listMs = timeoutMs;
    }
    return this.#list;
  }
}
