/**
 * Recent latencies, cheaply: a log-scale histogram of fixed buckets (8 per power of two, so an
 * estimate is within 9% of the true value) in two generations, as Tower's `RotatingHistogram`.
 * Calls record into the current window; estimates read the previous, complete one. The
 * previous window is frozen while it is read, so the percentile is computed once per rotation
 * (a scan of {@link BUCKETS} counters) and a call pays one `Math.log2` and one increment.
 * Rotation is lazy: the clock is compared on each record or read, no timer runs.
 *
 * @module
 */

const SUB_BUCKETS = 8;
const MIN_MS = 0.01;
/** Buckets from 10 µs to about 22 minutes. */
const BUCKETS = SUB_BUCKETS * 27;

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const index = Math.ceil(Math.log2(ms / MIN_MS) * SUB_BUCKETS);
  return index < BUCKETS ? index : BUCKETS - 1;
}

/** The upper bound of a bucket: estimates err on the slow side, so a hedge is never early. */
function upperBound(bucket: number): number {
  return MIN_MS * 2 ** (bucket / SUB_BUCKETS);
}

/** A latency percentile over the previous window of `windowMs`. */
export class LatencyWindow {
  #current = new Uint32Array(BUCKETS);
  #previous = new Uint32Array(BUCKETS);
  #currentCount = 0;
  #previousCount = 0;
  #windowMs: number;
  #percentile: number;
  #minSamples: number;
  #rotateAt: number;
  #estimate: number | undefined = undefined;

  constructor(windowMs: number, percentile: number, minSamples: number, now: number) {
    this.#windowMs = windowMs;
    this.#percentile = percentile;
    this.#minSamples = minSamples;
    this.#rotateAt = now + windowMs;
  }

  /** Applies new parameters; a new window length starts over, a new percentile re-reads. */
  configure(windowMs: number, percentile: number, minSamples: number, now: number): void {
    if (windowMs !== this.#windowMs) {
      this.#windowMs = windowMs;
      this.#current.fill(0);
      this.#previous.fill(0);
      this.#currentCount = this.#previousCount = 0;
      this.#rotateAt = now + windowMs;
    }
    this.#percentile = percentile;
    this.#minSamples = minSamples;
    this.#estimate = this.#compute();
  }

  /** Counts one latency. */
  record(ms: number, now: number): void {
    if (now >= this.#rotateAt) this.#rotate(now);
    const bucket = bucketOf(ms);
    this.#current[bucket] = (this.#current[bucket] as number) + 1;
    this.#currentCount++;
  }

  /** The percentile of the previous window, or `undefined` with fewer than `minSamples` in it. */
  estimate(now: number): number | undefined {
    if (now >= this.#rotateAt) this.#rotate(now);
    return this.#estimate;
  }

  /** Samples in the window estimates are read from. */
  get samples(): number {
    return this.#previousCount;
  }

  #rotate(now: number): void {
    const stale = now >= this.#rotateAt + this.#windowMs;
    const previous = this.#previous;
    this.#previous = this.#current;
    this.#previousCount = this.#currentCount;
    this.#current = previous;
    this.#current.fill(0);
    this.#currentCount = 0;
    if (stale) {
      // Nothing was recorded for a whole window: the old one says nothing about now.
      this.#previous.fill(0);
      this.#previousCount = 0;
    }
    this.#rotateAt = now + this.#windowMs;
    this.#estimate = this.#compute();
  }

  #compute(): number | undefined {
    const count = this.#previousCount;
    if (count === 0 || count < this.#minSamples) return undefined;
    const rank = Math.max(1, Math.ceil((this.#percentile / 100) * count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#previous[bucket] as number;
      if (seen >= rank) return upperBound(bucket);
    }
    return upperBound(BUCKETS - 1);
  }
}
