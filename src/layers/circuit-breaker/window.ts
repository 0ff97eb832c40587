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
  /** The outcomes in the window, to restore elsewhere or later; `now` is read by time windows. */
  export(now: number): WindowSnapshot;
  /**
   * Takes up an exported window of the same kind, `elapsedMs` after its export (time windows
   * age it by that much; a count window has no notion of age). A snapshot of another kind or
   * bucket width is ignored: the window starts afresh.
   */
  restore(snapshot: WindowSnapshot, now: number, elapsedMs: number): void;
}

/** A rolling window's outcomes, as exported with a breaker's state. */
export type WindowSnapshot =
  | {
      readonly kind: 'calls';
      /** Calls in the window. */
      readonly total: number;
      /** One bit per call, oldest first (bit 7 of byte 0 first), 1 for a failure; base64. */
      readonly failureBits: string;
    }
  | {
      readonly kind: 'time';
      readonly bucketMs: number;
      /** Calls per bucket, newest first (the first bucket holds the export's instant). */
      readonly calls: readonly number[];
      /** Failures per bucket, newest first. */
      readonly failures: readonly number[];
    };

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

  export(): WindowSnapshot {
    const ring = this.#ring;
    const total = this.total;
    const bits = Buffer.alloc(Math.ceil(total / 8));
    // When full, the oldest outcome is the one overwritten next.
    const oldest = total === ring.length ? this.#next : 0;
    for (let k = 0; k < total; k++) {
      if (ring[(oldest + k) % ring.length] === 1) bits[k >> 3] = (bits[k >> 3] as number) | (0x80 >> (k & 7));
    }
    return { kind: 'calls', total, failureBits: bits.toString('base64') };
  }

  restore(snapshot: WindowSnapshot): void {
    this.clear();
    if (snapshot?.kind !== 'calls') return;
    const bits = Buffer.from(String(snapshot.failureBits ?? ''), 'base64');
    const total = Math.min(Math.max(0, Math.floor(Number(snapshot.total) || 0)), bits.length * 8);
    // A smaller window keeps the newest outcomes.
    for (let k = Math.max(0, total - this.#ring.length); k < total; k++) this.record((((bits[k >> 3] as number) << (k & 7)) & 0x80) !== 0);
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

  export(now: number): WindowSnapshot {
    this.expire(now);
    const size = this.#totals.length;
    const calls: number[] = [];
    const failures: number[] = [];
    // After expire(), the newest bucket is this.#epoch (unless nothing was ever recorded).
    for (let age = 0; age < size && this.#epoch !== Number.NEGATIVE_INFINITY; age++) {
      const i = (((this.#epoch - age) % size) + size) % size;
      calls.push(this.#totals[i] as number);
      failures.push(this.#fails[i] as number);
    }
    return { kind: 'time', bucketMs: this.#bucketMs, calls, failures };
  }

  restore(snapshot: WindowSnapshot, now: number, elapsedMs: number): void {
    this.clear();
    if (snapshot?.kind !== 'time' || snapshot.bucketMs !== this.#bucketMs) return;
    const size = this.#totals.length;
    const epoch = Math.floor(now / this.#bucketMs);
    this.#epoch = epoch;
    const shift = Math.max(0, Math.round(elapsedMs / this.#bucketMs));
    const calls = Array.isArray(snapshot.calls) ? snapshot.calls : [];
    const failures = Array.isArray(snapshot.failures) ? snapshot.failures : [];
    for (let age = 0; age + shift < size && age < calls.length; age++) {
      const total = Math.max(0, Number(calls[age]) || 0);
      const failed = Math.min(total, Math.max(0, Number(failures[age]) || 0));
      const i = (((epoch - age - shift) % size) + size) % size;
      this.#totals[i] = total;
      this.#fails[i] = failed;
      this.total += total;
      this.failures += failed;
    }
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
