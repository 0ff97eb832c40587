import { setMaxListeners } from 'node:events';
import type { Clock } from './clock.js';
import { CancelledError } from './errors.js';

/**
 * A signal that never fires, handed out when nothing of ours could ever abort the call (an
 * `AbortController` costs ~2 µs here). Callees such as `fetch` add an abort listener to the
 * signal they are given and do not remove it, so one signal shared forever would gather
 * listeners without bound: it is replaced every {@link NEVER_ABORTED_USES} hand-outs, and a
 * retired one is collected, listeners and all, once the calls that hold it are done.
 */
const NEVER_ABORTED_USES = 256;
/** Signals handed out as never firing: no controller of theirs is reachable, so none ever fires. */
const neverAbortedSignals = new WeakSet<AbortSignal>();
function newNeverAborted(): AbortSignal {
  const signal = new AbortController().signal;
  // Up to NEVER_ABORTED_USES callees may each add a listener: that is the design, not a leak.
  setMaxListeners(NEVER_ABORTED_USES, signal);
  neverAbortedSignals.add(signal);
  return signal;
}
let neverAborted: AbortSignal = newNeverAborted();
let neverAbortedUses = 0;
function neverAbortedSignal(): AbortSignal {
  if (++neverAbortedUses > NEVER_ABORTED_USES) {
    neverAborted = newNeverAborted();
    neverAbortedUses = 1;
  }
  return neverAborted;
}

/**
 * Whether `signal` is one {@link CallContext.signal} hands out when nothing could abort the
 * call: an integration can then pass the caller's options through untouched.
 */
export function isNeverAborted(signal: AbortSignal): boolean {
  return neverAbortedSignals.has(signal);
}

/**
 * What only some calls need — cancellation state, attributes, forks — kept apart so that a
 * plain call allocates a small context.
 */
class CallExtras {
  attributes: Record<string, unknown> | undefined = undefined;
  parentSignal: AbortSignal | undefined = undefined;
  listening = false;
  controller: AbortController | undefined = undefined;
  /** Why the current attempt was aborted (per-try timeout, hedge lost, call cancelled). */
  attemptAbort: unknown = undefined;
  /** Why the whole call was cancelled (caller's signal, total deadline). */
  callCancel: unknown = undefined;
  waker: (() => void) | undefined = undefined;
  forks: CallContext[] | undefined = undefined;
  forkParent: CallContext | undefined = undefined;
}

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
  /** 1 for the first attempt, 2 for the first retry, ... A hedge keeps the number of the attempt it hedges. */
  attempt = 1;
  /**
   * 0 for an attempt of the call's own; `n` for the n-th hedge a hedge layer sent beside it. With
   * {@link CallContext.attempt} it tells a hedge from a retry in a metrics or tracing hook: a
   * retry's second attempt is attempt 2, hedge 0; the first hedge of the first attempt is attempt
   * 1, hedge 1. (With two hedge layers stacked, the inner one's hedges are numbered from its own
   * count: the pair is then not unique across both layers.)
   */
  hedge = 0;
  /** The route the call was matched to, when a router or the caller set one. */
  route: string | undefined = undefined;
  /** The endpoint a balancer picked for the current attempt. */
  endpoint: string | undefined = undefined;
  /**
   * @internal the timeout layer's entry that enforces {@link CallContext.deadline} (`undefined`
   * while none does): a timeout nested in it, whose own deadline is no earlier, defers its expiry
   * to it, so one expiry is reported once.
   */
  deadlineHolder: unknown = undefined;
  #x: CallExtras | undefined = undefined;
  /**
   * A clock reading shared within one synchronous step of the call, and its clock (`undefined`
   * when none is shared); see {@link CallContext.openTime}. Not a number field initialised to
   * NaN: V8 would box a double for it in every context, also in stacks that never read time.
   */
  #time: number | undefined = undefined;
  #timeClock: Clock | undefined = undefined;

  /**
   * @param signal the caller's signal; cancelling it cancels the call.
   * @param deadline an absolute deadline the caller already has (e.g. from an incoming header).
   *   NaN (an unparsable header, `now + NaN`) is no deadline: compared with NaN every deadline
   *   check is false, so it would silently switch off every timeout below.
   */
  constructor(signal?: AbortSignal, deadline?: number) {
    if (signal !== undefined) this.#extras().parentSignal = signal;
    if (deadline !== undefined && !Number.isNaN(deadline)) this.deadline = deadline;
  }

  #extras(): CallExtras {
    if (this.#x === undefined) this.#x = new CallExtras();
    return this.#x;
  }

  /**
   * The time on `clock`: the reading an enclosing layer shares (see {@link CallContext.openTime}),
   * or a fresh one.
   */
  timeOn(clock: Clock): number {
    return this.#timeClock === clock ? (this.#time as number) : clock.now();
  }

  /**
   * A time to set a deadline from: the reading an enclosing layer shares, or the clock's
   * approximate time ({@link Clock.approximateNow}), which costs no read most of the time.
   */
  deadlineBase(clock: Clock): number {
    if (this.#timeClock === clock) return this.#time as number;
    return clock.approximateNow === undefined ? clock.now() : clock.approximateNow();
  }

  /**
   * Shares one reading of `clock` with every layer that runs synchronously until
   * {@link CallContext.closeTime}: on the way in, the metrics, the timeout and the balancer of a
   * stack all take their start time from it; on the way out, the balancer's end time serves the
   * layers it settles. A clock read costs about half a bare call on a virtual machine, and a
   * stack would otherwise pay one per layer per edge. Returns `true` when this call opened the
   * share (a reading was taken); the opener closes it before it returns, so a reading never
   * outlives the synchronous step it was taken in — a continuation after an `await` reads anew.
   */
  openTime(clock: Clock): boolean {
    if (this.#timeClock === clock) return false;
    this.#time = clock.now();
    this.#timeClock = clock;
    return true;
  }

  /** Ends the share opened by {@link CallContext.openTime} (only the opener calls it). */
  closeTime(): void {
    this.#time = undefined;
    this.#timeClock = undefined;
  }

  /** Free per-call attributes (route parameters, tenant, headers to propagate, ...). */
  get attributes(): Record<string, unknown> {
    const x = this.#extras();
    if (x.attributes === undefined) x.attributes = Object.create(null) as Record<string, unknown>;
    return x.attributes;
  }

  /**
   * The signal the callee should pass on (to `fetch`, a gRPC call, a query): it fires when the
   * deadline passes, the caller cancels, or a layer abandons the attempt (a per-try timeout, a
   * hedge that lost). Read it only when the callee can use it: the first read allocates.
   */
  get signal(): AbortSignal {
    const x = this.#x;
    if (x === undefined) {
      if (this.deadline === Number.POSITIVE_INFINITY) return neverAbortedSignal();
    } else {
      if (x.controller !== undefined) return x.controller.signal;
      if (
        x.attemptAbort === undefined &&
        x.callCancel === undefined &&
        this.deadline === Number.POSITIVE_INFINITY &&
        x.forkParent === undefined
      ) {
        return x.parentSignal ?? neverAbortedSignal();
      }
    }
    const extras = this.#extras();
    const controller = new AbortController();
    extras.controller = controller;
    const abortReason = extras.attemptAbort ?? extras.callCancel;
    const parent = extras.parentSignal;
    if (abortReason !== undefined) controller.abort(abortReason);
    else if (parent !== undefined) {
      if (parent.aborted) controller.abort(parent.reason);
      else this.#listen(extras, parent);
    }
    return controller.signal;
  }

  /** True once the whole call is cancelled: no layer should start more work for it. */
  get cancelled(): boolean {
    const x = this.#x;
    if (x === undefined) return false;
    return x.callCancel !== undefined || (x.parentSignal?.aborted ?? false) || (x.forkParent?.cancelled ?? false);
  }

  /** Why the call was cancelled, if it was: an Error (a non-Error reason becomes a {@link CancelledError}'s cause). */
  get cancelReason(): unknown {
    const x = this.#x;
    if (x === undefined) return undefined;
    const reason = x.callCancel ?? (x.parentSignal?.aborted ? x.parentSignal.reason : undefined) ?? x.forkParent?.cancelReason;
    // Callers reject with this: a reason that is no Error (`abort('bye')`) becomes the cause of one.
    return reason === undefined || reason instanceof Error ? reason : new CancelledError({ cause: reason });
  }

  /** Starts attempt `n`: a signal aborted for the previous attempt alone is replaced. */
  beginAttempt(n: number): void {
    this.attempt = n;
    const x = this.#x;
    if (x !== undefined && x.attemptAbort !== undefined && x.callCancel === undefined) {
      x.attemptAbort = undefined;
      x.controller = undefined;
    }
  }

  /**
   * Abandons the work in progress below the caller — the attempt's signal fires and a layer
   * sleeping below (a queue wait, a readiness wait) wakes. A deadline that fires calls this;
   * layers above it judge by their own deadline whether the call may go on (a per-try timeout
   * under a retry) or is over.
   */
  abortAttempt(reason: unknown): void {
    const x = this.#extras();
    if (x.attemptAbort === undefined) {
      x.attemptAbort = reason;
      x.controller?.abort(reason);
    }
    const waker = x.waker;
    x.waker = undefined;
    waker?.();
  }

  /** Cancels the whole call: the attempt is aborted, sleepers wake, no layer starts more work. */
  cancel(reason: unknown = new CancelledError()): void {
    const x = this.#extras();
    if (x.callCancel !== undefined) return;
    x.callCancel = reason;
    this.abortAttempt(reason);
    if (x.forks !== undefined) for (const fork of x.forks) fork.cancel(reason);
  }

  /**
   * Registers the one function to call when the call is cancelled while a layer sleeps (a retry
   * backoff, a queue wait); `undefined` clears it. One slot: only one layer sleeps at a time.
   */
  setWaker(waker: (() => void) | undefined): void {
    if (waker === undefined && this.#x === undefined) return;
    const x = this.#extras();
    x.waker = waker;
    if (waker !== undefined && x.parentSignal !== undefined && !x.parentSignal.aborted) this.#listen(x, x.parentSignal);
  }

  /**
   * A child context for a concurrent attempt (a hedge): same deadline, attempt, route and
   * attributes, its own signal; cancelling this context cancels the child.
   *
   * @param hedge the child's {@link CallContext.hedge}: 0 (the default) keeps this context's.
   */
  fork(hedge = 0): CallContext {
    const child = new CallContext(undefined, this.deadline);
    child.attempt = this.attempt;
    child.hedge = hedge === 0 ? this.hedge : hedge;
    child.deadlineHolder = this.deadlineHolder;
    child.route = this.route;
    const x = this.#extras();
    const childExtras = child.#extras();
    childExtras.attributes = x.attributes;
    childExtras.forkParent = this;
    if (x.forks === undefined) x.forks = [];
    x.forks.push(child);
    if (x.callCancel !== undefined) child.cancel(x.callCancel);
    return child;
  }

  /** Detaches a fork once its attempt settled. */
  release(child: CallContext): void {
    const forks = this.#x?.forks;
    if (forks === undefined) return;
    const index = forks.indexOf(child);
    if (index >= 0) forks.splice(index, 1);
  }

  /** Drops the listener on the caller's signal; the outermost wrapper calls it on settle. */
  dispose(): void {
    const x = this.#x;
    if (x === undefined) return;
    if (x.listening) {
      x.parentSignal?.removeEventListener('abort', this);
      x.listening = false;
    }
    x.waker = undefined;
  }

  /** @internal the caller's signal fired. */
  handleEvent(): void {
    const x = this.#extras();
    x.listening = false;
    this.cancel(x.parentSignal?.reason ?? new CancelledError());
  }

  #listen(x: CallExtras, parent: AbortSignal): void {
    if (x.listening) return;
    parent.addEventListener('abort', this, { once: true });
    x.listening = true;
  }
}
