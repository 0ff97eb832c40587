import type { WindowParams } from './options.js';

/**
 * A rolling window of outcomes with running sums, so recording a call and reading the failure
 * rate are O(1) whatever the window's size: no scan, no sort, no allocation per call.
 */
export interface RollingWindow {
  /** Calls in the window. */
  readonly total: number;
  /** Failures in the window. */
  readonly failures: number;
  /** Records one outcome; `now` is only read by time windows. */
  record(failed: boolean, now: number): void;
  /** Forgets everything (on close of the circuit or a reset). */
  clear(): void;
}

/** The last N calls: a ring of 0/1 outcomes; the slot overwritten leaves the sums. */
export class CountWindow implements RollingWindow {
  total = 0;
  failures = 0;
  readonly #ring: Uint8Array;
  #next = 0;

  constructor(size: number) {
    this.#ring = new Uint8Array(size);
  }

  record(failed: boolean): void {
    const ring = this.#ring;
    const i = this.#next;
    if (this.total === ring.length) this.failures -= ring[i] as number;
    else this.total++;
    const bit = failed ? 1 : 0;
    ring[i] = bit;
    this.failures += bit;
    this.#next = i + 1 === ring.length ? 0 : i + 1;
  }

  clear(): void {
    this.#ring.fill(0);
    this.total = this.failures = 0;
    this.#next = 0;
  }
}

/**
 * The last `size * bucketMs` milliseconds in `size` buckets. Moving to a new bucket clears the
 * buckets skipped since the last call — at most `size` of them however long the gap, so the
 * cost per call is bounded by a constant and is one array write on the common path.
 */
export class TimeWindow implements RollingWindow {
  total = 0;
  failures = 0;
  readonly #totals: Float64Array;
  readonly #fails: Float64Array;
  readonly #bucketMs: number;
  /** Index (in bucket units since time 0) of the newest bucket. */
  #epoch = Number.NEGATIVE_INFINITY;

  constructor(size: number, bucketMs: number) {
    this.#totals = new Float64Array(size);
    this.#fails = new Float64Array(size);
    this.#bucketMs = bucketMs;
  }

  record(failed: boolean, now: number): void {
    const size = this.#totals.length;
    const epoch = Math.floor(now / this.#bucketMs);
    if (epoch !== this.#epoch) this.#advance(epoch, size);
    const i = epoch % size;
    (this.#totals[i] as number)++;
    this.total++;
    if (failed) {
      (this.#fails[i] as number)++;
      this.failures++;
    }
  }

  /** Drops buckets that fell out of the window by `now` (so a reader sees fresh sums). */
  expire(now: number): void {
    const epoch = Math.floor(now / this.#bucketMs);
    if (epoch > this.#epoch) this.#advance(epoch, this.#totals.length);
  }

  clear(): void {
    this.#totals.fill(0);
    this.#fails.fill(0);
    this.total = this.failures = 0;
    this.#epoch = Number.NEGATIVE_INFINITY;
  }

  #advance(epoch: number, size: number): void {
    if (epoch < this.#epoch) return; // a clock never goes back; be safe anyway
    const gap = epoch - this.#epoch;
    if (gap >= size) {
      this.#totals.fill(0);
      this.#fails.fill(0);
      this.total = this.failures = 0;
    } else {
      for (let e = this.#epoch + 1; e <= epoch; e++) {
        const i = e % size;
        this.total -= this.#totals[i] as number;
        this.failures -= this.#fails[i] as number;
        this.#totals[i] = 0;
        this.#fails[i] = 0;
      }
    }
    this.#epoch = epoch;
  }
}

/** The window for `params`. */
export function makeWindow(params: WindowParams): RollingWindow {
  return params.kind === 'calls' ? new CountWindow(params.size) : new TimeWindow(params.size, params.bucketMs);
}
