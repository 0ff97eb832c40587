import type { Clock, TimerHandle } from '../core/clock.js';

interface VirtualTimer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** Lets every pending promise continuation run (a macrotask turn drains the microtask queue). */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that only moves when the test says so — tokio's paused clock, for Node. Give it to
 * the builder (`new ServiceBuilder({ clock })`) and every timer of the stack (deadlines,
 * backoffs, probes, windows) runs in virtual time: a retry policy with seconds of backoff is
 * tested in microseconds, deterministically.
 */
export class VirtualClock implements Clock {
  #now: number;
  #wall: number;
  #nextId = 1;
  // Sorted by (at, id): timers set for the same instant fire in the order they were set.
  #timers: VirtualTimer[] = [];

  constructor(options: { start?: number; wallStart?: number } = {}) {
    this.#now = options.start ?? 0;
    this.#wall = options.wallStart ?? Date.UTC(2026, 0, 1);
  }

  now(): number {
    return this.#now;
  }

  wallTime(): number {
    return this.#wall + this.#now;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer = { id: this.#nextId++, at: this.#now + Math.max(0, delayMs), fn };
    let index = this.#timers.length;
    while (index > 0 && (this.#timers[index - 1] as VirtualTimer).at > timer.at) index--;
    this.#timers.splice(index, 0, timer);
    return timer.id;
  }

  clearTimer(handle: TimerHandle): void {
    const index = this.#timers.findIndex((t) => t.id === handle);
    if (index >= 0) this.#timers.splice(index, 1);
  }

  /** Timers not yet fired: a test asserts 0 after `close()`. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** When the next timer fires, or `undefined`. */
  get nextTimerAt(): number | undefined {
    return this.#timers[0]?.at;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way in order, and letting promise
   * continuations run after each so that chains of timers (backoff, then a deadline) unfold.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flushMicrotasks();
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
      await flushMicrotasks();
    }
    this.#now = target;
    await flushMicrotasks();
  }

  /** Fires timers one after another until none is left, or `limitMs` of virtual time passed. */
  async runAll(limitMs = 3_600_000): Promise<void> {
    const end = this.#now + limitMs;
    await flushMicrotasks();
    while (this.#timers.length > 0 && (this.#timers[0] as VirtualTimer).at <= end) {
      await this.advance((this.#timers[0] as VirtualTimer).at - this.#now);
    }
  }

  /**
   * Advances time until `promise` settles (or `limitMs` passes), then returns its outcome:
   * the way to await a call whose progress needs timers.
   */
  async settle<T>(promise: Promise<T>, limitMs = 3_600_000): Promise<T> {
    let settled = false;
    const observed = promise.then(
      (value) => {
        settled = true;
        return value;
      },
      (error: unknown) => {
        settled = true;
        throw error;
      },
    );
    observed.catch(() => {});
    const end = this.#now + limitMs;
    await flushMicrotasks();
    while (!settled && this.#now < end) {
      const next = this.#timers[0];
      if (next === undefined) break;
      await this.advance(Math.min(next.at, end) - this.#now);
    }
    if (!settled) throw new Error(`call did not settle within ${limitMs}ms of virtual time`);
    return observed;
  }
}
