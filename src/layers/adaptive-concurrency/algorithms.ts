import type { AdaptiveConcurrencyParams } from './options.js';

/** A limit algorithm: fed one sample per settled call, returns the new (fractional) limit. */
export interface LimitAlgorithm {
  readonly name: 'aimd' | 'gradient2';
  /** The current limit, fractional; the layer admits `floor(limit)` calls. */
  readonly limit: number;
  /**
   * @param rttMs the call's latency.
   * @param inflight calls in flight when it settled (itself included).
   * @param dropped the call failed in a way that signals overload (timeout, 503, shed below).
   */
  sample(rttMs: number, inflight: number, dropped: boolean): number;
  /** Live state for `describe()`. */
  state(): Record<string, number>;
}

/**
 * Additive increase, multiplicative decrease (Netflix's `AIMDLimit`): +1 when a call succeeds
 * quickly while the limit is at least half used, `× backoffRatio` on a drop or a call slower
 * than `timeout`. Simple and stable; reacts to errors rather than to creeping latency.
 */
export class AimdLimit implements LimitAlgorithm {
  readonly name = 'aimd';
  limit: number;
  readonly #p: AdaptiveConcurrencyParams;

  constructor(params: AdaptiveConcurrencyParams, start: number) {
    this.#p = params;
    this.limit = start;
  }

  sample(rttMs: number, inflight: number, dropped: boolean): number {
    const p = this.#p;
    if (dropped || rttMs > p.timeoutMs) this.limit = Math.max(p.minLimit, Math.floor(this.limit * p.backoffRatio));
    else if (inflight * 2 >= this.limit) this.limit = Math.min(p.maxLimit, this.limit + 1);
    return this.limit;
  }

  state(): Record<string, number> {
    return { limit: Math.floor(this.limit) };
  }
}

/**
 * Netflix's `Gradient2Limit`: compares the latency of each call (short RTT) with a long
 * exponential average (long RTT). While `tolerance × long / short ≥ 1` latency is not growing
 * and the limit grows by `queueSize`; when short RTT climbs above the tolerated long RTT the
 * gradient (clamped to [0.5, 1]) shrinks the limit. Smoothing damps both moves; a long RTT far
 * above the short one (after a spike) is pulled down so the limit recovers. It does not grow
 * while the service is app-limited (fewer than half the permits used).
 */
export class Gradient2Limit implements LimitAlgorithm {
  readonly name = 'gradient2';
  limit: number;
  #longRtt = 0;
  #samples = 0;
  #lastRtt = 0;
  readonly #p: AdaptiveConcurrencyParams;
  readonly #factor: number;

  constructor(params: AdaptiveConcurrencyParams, start: number) {
    this.#p = params;
    this.limit = start;
    this.#factor = 2 / (params.longWindow + 1);
  }

  sample(rttMs: number, inflight: number, dropped: boolean): number {
    const p = this.#p;
    const shortRtt = rttMs > 0 ? rttMs : 0.001;
    this.#lastRtt = shortRtt;
    // Long RTT: a plain mean over the first samples (warm-up), then an exponential average.
    if (this.#samples < WARMUP) {
      this.#samples++;
      this.#longRtt += (shortRtt - this.#longRtt) / this.#samples;
    } else {
      this.#longRtt = this.#longRtt * (1 - this.#factor) + shortRtt * this.#factor;
    }
    if (this.#longRtt / shortRtt > 2) this.#longRtt *= 0.95;
    if (!dropped && inflight < this.limit / 2) return this.limit;
    const gradient = dropped ? 0.5 : Math.max(0.5, Math.min(1, (p.rttTolerance * this.#longRtt) / shortRtt));
    let next = this.limit * gradient + p.queueSize;
    next = this.limit * (1 - p.smoothing) + next * p.smoothing;
    this.limit = Math.max(p.minLimit, Math.min(p.maxLimit, next));
    return this.limit;
  }

  state(): Record<string, number> {
    return {
      limit: Math.floor(this.limit),
      longRttMs: Math.round(this.#longRtt * 1000) / 1000,
      lastRttMs: Math.round(this.#lastRtt * 1000) / 1000,
    };
  }
}

const WARMUP = 10;

/** The algorithm for `params`, starting at `start`. */
export function makeAlgorithm(params: AdaptiveConcurrencyParams, start: number): LimitAlgorithm {
  return params.algorithm === 'aimd' ? new AimdLimit(params, start) : new Gradient2Limit(params, start);
}
