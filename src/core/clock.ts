/**
 * Time, injected. Every timer and clock read in sidecarless goes through a {@link Clock}, so a
 * stack can run in virtual time (see `sidecarless/testing`) and a retry policy can be unit-tested
 * in microseconds, deterministically — the paused clock of tokio that linkerd2-proxy's tests use.
 *
 * @module
 */

/** An opaque handle for a scheduled timer. */
export type TimerHandle = unknown;

/** The source of time and timers for a stack. */
export interface Clock {
  /** Monotonic milliseconds. Only differences are meaningful. */
  now(): number;
  /** Calls `fn` once after `delayMs` milliseconds. */
  setTimer(fn: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer from {@link Clock.setTimer}; cancelling a fired timer is a no-op. */
  clearTimer(handle: TimerHandle): void;
  /** Wall-clock milliseconds since the epoch, for reports (not for measuring). */
  wallTime(): number;
  /**
   * A reading at most one turn of the event loop old, for setting deadlines — Envoy's
   * `approximateMonotonicTime()`, nginx's cached time. Absent means {@link Clock.now}.
   */
  approximateNow?(): number;
  /** Lets a timer from {@link Clock.setTimer} fire without keeping the process alive. Absent: a no-op. */
  unrefTimer?(handle: TimerHandle): void;
  /** Undoes {@link Clock.unrefTimer}. */
  refTimer?(handle: TimerHandle): void;
}

let approximate = Number.NaN;
let reusedThisTurn = false;
/** Reads left to take directly, after a turn that did not reuse its reading. */
let directReads = 0;
/** Direct reads after a turn without reuse, before caching is tried again. */
const DIRECT_READS = 64;
// Held from load time: a test that fakes timers later (jest, sinon) must not stop the reading
// from being forgotten at the end of each real turn.
const afterThisTurn = setImmediate;
function forgetApproximate(): void {
  approximate = Number.NaN;
  if (!reusedThisTurn) directReads = DIRECT_READS;
}

/**
 * The first reading taken in this turn of the event loop, forgotten in the turn's check phase.
 * Deadlines set from it are early by at most the time the current turn has run — the error of
 * Node's own timers, which count from the loop's cached time. A turn that handles many calls
 * pays one read and one `setImmediate` for all of them. When calls are sparse (one per turn) the
 * cache would only add the `setImmediate`, so after a turn whose reading served no second call,
 * the next 64 readings are plain reads before caching is tried again.
 */
function approximateNow(): number {
  if (!Number.isNaN(approximate)) {
    reusedThisTurn = true;
    return approximate;
  }
  if (directReads > 0) {
    directReads--;
    return performance.now();
  }
  approximate = performance.now();
  reusedThisTurn = false;
  afterThisTurn(forgetApproximate).unref();
  return approximate;
}

/** The real clock: `performance.now()` and `setTimeout`, and a reading cached per turn of the loop. */
export const systemClock: Clock = {
  now: performance.now.bind(performance),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  wallTime: () => Date.now(),
  approximateNow,
  unrefTimer: (handle) => void (handle as ReturnType<typeof setTimeout>).unref(),
  refTimer: (handle) => void (handle as ReturnType<typeof setTimeout>).ref(),
};
