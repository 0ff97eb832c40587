import type { Clock, TimerHandle } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';

/** Why a {@link Waiter}'s wait ended without a grant. */
export type WaitEnd = 'timer' | 'woken';

/** The layer a {@link Waiter} belongs to: it decides what a timer or a wake-up means. */
export interface WaitOwner {
  /**
   * The waiter's timer fired or the call was cancelled / its attempt abandoned. The owner takes
   * the waiter out of its queue and either grants it ({@link Waiter.grant}) or fails it.
   */
  waitEnded(waiter: Waiter, why: WaitEnd): void;
}

/**
 * One call sleeping in an admission layer: a queued call waiting for a permit, or a rate-limited
 * call waiting for its token. Only calls that wait pay for this object, its promise, its clock
 * timer and its waker; the admitted path allocates none of them. The waiter registers itself as
 * the context's waker, so a deadline firing above (a timeout layer) or the caller's signal wakes
 * it at once, and settles exactly once whatever happens first.
 */
export class Waiter {
  /** Queue links, owned by the layer's queue. */
  prev: Waiter | undefined = undefined;
  next: Waiter | undefined = undefined;
  /** Which partition queue it sits in (concurrency limit). */
  partition = 0;
  /** Whether the timer stands for the call's deadline rather than a `maxWait` (for the error). */
  byDeadline = false;
  readonly ctx: CallContext;
  readonly promise: Promise<void>;
  readonly enqueuedAt: number;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  #timer: TimerHandle | undefined = undefined;
  #done = false;
  readonly #clock: Clock;
  readonly #owner: WaitOwner;
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (!this.#done) this.#owner.waitEnded(this, 'timer');
  };
  readonly #onWake = (): void => {
    if (!this.#done) this.#owner.waitEnded(this, 'woken');
  };

  /** Starts waiting: `timerMs` (finite) arms a clock timer; the context's waker is taken. */
  constructor(owner: WaitOwner, ctx: CallContext, clock: Clock, timerMs: number) {
    this.#owner = owner;
    this.#clock = clock;
    this.ctx = ctx;
    this.enqueuedAt = clock.now();
    this.promise = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (timerMs !== Number.POSITIVE_INFINITY) this.#timer = clock.setTimer(this.#onTimer, Math.max(0, timerMs));
    ctx.setWaker(this.#onWake);
  }

  /** Whether it was granted or failed. */
  get done(): boolean {
    return this.#done;
  }

  /** Lets the call go on. Returns false if it had already ended. */
  grant(): boolean {
    if (!this.#finish()) return false;
    this.#resolve();
    return true;
  }

  /** Refuses the call with `error`. Returns false if it had already ended. */
  fail(error: unknown): boolean {
    if (!this.#finish()) return false;
    this.#reject(error);
    return true;
  }

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    if (this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
    }
    this.ctx.setWaker(undefined);
    return true;
  }
}

/** A FIFO of waiters with O(1) removal from the middle (a cancelled waiter leaves at once). */
export class WaiterQueue {
  #head: Waiter | undefined = undefined;
  #tail: Waiter | undefined = undefined;
  size = 0;

  push(waiter: Waiter): void {
    waiter.prev = this.#tail;
    waiter.next = undefined;
    if (this.#tail === undefined) this.#head = waiter;
    else this.#tail.next = waiter;
    this.#tail = waiter;
    this.size++;
  }

  shift(): Waiter | undefined {
    const head = this.#head;
    if (head !== undefined) this.remove(head);
    return head;
  }

  remove(waiter: Waiter): void {
    const { prev, next } = waiter;
    if (prev === undefined) {
      if (this.#head !== waiter) return;
      this.#head = next;
    } else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    waiter.prev = waiter.next = undefined;
    this.size--;
  }

  /** Empties the queue, returning what was in it (for `close()`). */
  drain(): Waiter[] {
    const all: Waiter[] = [];
    for (let w = this.shift(); w !== undefined; w = this.shift()) all.push(w);
    return all;
  }
}
