import { CancelledError } from './errors.js';

/** A signal that never fires, handed out when nothing of ours could ever abort the call. */
const NEVER_ABORTED: AbortSignal = new AbortController().signal;

/**
 * One object per logical call: cancellation, absolute deadline, attempt number, the route and
 * endpoint chosen, and free attributes. Created once by the outermost wrapper; layers read and
 * extend it rather than copy it, so a call through ten layers allocates one context.
 *
 * The {@link CallContext.signal} is created lazily: a callee that never reads it costs no
 * `AbortController`, and one that reads it when no deadline can fire gets the caller's signal
 * (or a signal that never fires) directly.
 */
export class CallContext {
  /** Absolute deadline in clock milliseconds; `Infinity` when none. Inner layers see what is left. */
  deadline = Number.POSITIVE_INFINITY;
  /** 1 for the first attempt, 2 for the first retry, ... */
  attempt = 1;
  /** The route the call was matched to, when a router or the caller set one. */
  route: string | undefined = undefined;
  /** The endpoint a balancer picked for the current attempt. */
  endpoint: string | undefined = undefined;

  #attributes: Record<string, unknown> | undefined = undefined;
  #parentSignal: AbortSignal | undefined;
  #listening = false;
  #controller: AbortController | undefined = undefined;
  /** Why the current attempt was aborted (per-try timeout, hedge lost, call cancelled). */
  #attemptAbort: unknown = undefined;
  /** Why the whole call was cancelled (caller's signal, total deadline). */
  #callCancel: unknown = undefined;
  #waker: (() => void) | undefined = undefined;
  #forks: CallContext[] | undefined = undefined;
  #forkParent: CallContext | undefined = undefined;

  /**
   * @param signal the caller's signal; cancelling it cancels the call.
   * @param deadline an absolute deadline the caller already has (e.g. from an incoming header).
   */
  constructor(signal?: AbortSignal, deadline?: number) {
    this.#parentSignal = signal;
    if (deadline !== undefined) this.deadline = deadline;
  }

  /** Free per-call attributes (route parameters, tenant, headers to propagate, ...). */
  get attributes(): Record<string, unknown> {
    if (this.#attributes === undefined) this.#attributes = Object.create(null) as Record<string, unknown>;
    return this.#attributes;
  }

  /**
   * The signal the callee should pass on (to `fetch`, a gRPC call, a query): it fires when the
   * deadline passes, the caller cancels, or a layer abandons the attempt (a per-try timeout, a
   * hedge that lost). Read it only when the callee can use it: the first read allocates.
   */
  get signal(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    const abortReason = this.#attemptAbort ?? this.#callCancel;
    if (abortReason === undefined && this.deadline === Number.POSITIVE_INFINITY && this.#forkParent === undefined) {
      return this.#parentSignal ?? NEVER_ABORTED;
    }
    const controller = new AbortController();
    this.#controller = controller;
    if (abortReason !== undefined) controller.abort(abortReason);
    else if (this.#parentSignal !== undefined && !this.#listening) {
      if (this.#parentSignal.aborted) controller.abort(this.#parentSignal.reason);
      else {
        this.#parentSignal.addEventListener('abort', this, { once: true });
        this.#listening = true;
      }
    }
    return controller.signal;
  }

  /** True once the whole call is cancelled: no layer should start more work for it. */
  get cancelled(): boolean {
    return this.#callCancel !== undefined || (this.#parentSignal?.aborted ?? false) || (this.#forkParent?.cancelled ?? false);
  }

  /** The reason the call was cancelled, if it was. */
  get cancelReason(): unknown {
    return this.#callCancel ?? (this.#parentSignal?.aborted ? this.#parentSignal.reason : undefined) ?? this.#forkParent?.cancelReason;
  }

  /** Starts attempt `n`: a signal aborted for the previous attempt alone is replaced. */
  beginAttempt(n: number): void {
    this.attempt = n;
    if (this.#attemptAbort !== undefined && this.#callCancel === undefined) {
      this.#attemptAbort = undefined;
      this.#controller = undefined;
    }
  }

  /**
   * Abandons the work in progress below the caller — the attempt's signal fires and a layer
   * sleeping below (a queue wait, a readiness wait) wakes. A deadline that fires calls this;
   * layers above it judge by their own deadline whether the call may go on (a per-try timeout
   * under a retry) or is over.
   */
  abortAttempt(reason: unknown): void {
    if (this.#attemptAbort === undefined) {
      this.#attemptAbort = reason;
      this.#controller?.abort(reason);
    }
    const waker = this.#waker;
    this.#waker = undefined;
    waker?.();
  }

  /** Cancels the whole call: the attempt is aborted, sleepers wake, no layer starts more work. */
  cancel(reason: unknown = new CancelledError()): void {
    if (this.#callCancel !== undefined) return;
    this.#callCancel = reason;
    this.abortAttempt(reason);
    if (this.#forks !== undefined) for (const fork of this.#forks) fork.cancel(reason);
  }

  /**
   * Registers the one function to call when the call is cancelled while a layer sleeps (a retry
   * backoff, a queue wait); `undefined` clears it. One slot: only one layer sleeps at a time.
   */
  setWaker(waker: (() => void) | undefined): void {
    this.#waker = waker;
    if (waker !== undefined && this.#parentSignal !== undefined && !this.#listening && !this.#parentSignal.aborted) {
      this.#parentSignal.addEventListener('abort', this, { once: true });
      this.#listening = true;
    }
  }

  /**
   * A child context for a concurrent attempt (a hedge): same deadline, route and attributes,
   * its own signal; cancelling this context cancels the child.
   */
  fork(): CallContext {
    const child = new CallContext(undefined, this.deadline);
    child.attempt = this.attempt;
    child.route = this.route;
    child.#attributes = this.#attributes;
    child.#forkParent = this;
    if (this.#forks === undefined) this.#forks = [];
    this.#forks.push(child);
    if (this.#callCancel !== undefined) child.cancel(this.#callCancel);
    return child;
  }

  /** Detaches a fork once its attempt settled. */
  release(child: CallContext): void {
    const forks = this.#forks;
    if (forks === undefined) return;
    const index = forks.indexOf(child);
    if (index >= 0) forks.splice(index, 1);
  }

  /** Drops the listener on the caller's signal; the outermost wrapper calls it on settle. */
  dispose(): void {
    if (this.#listening) {
      this.#parentSignal?.removeEventListener('abort', this);
      this.#listening = false;
    }
    this.#waker = undefined;
  }

  /** @internal the caller's signal fired. */
  handleEvent(): void {
    this.#listening = false;
    this.cancel(this.#parentSignal?.reason ?? new CancelledError());
  }
}
