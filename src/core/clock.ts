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
}

/** The real clock: `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: performance.now.bind(performance),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  wallTime: () => Date.now(),
};
