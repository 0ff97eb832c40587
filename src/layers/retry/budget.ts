import { z } from 'zod';
import { type Clock, systemClock } from '../../core/clock.js';
import type { Duration } from '../../core/duration.js';
import { duration, num, parseOptions } from '../../core/validate.js';

/** Options of a {@link RetryBudget}, named as Linkerd names them. */
export interface RetryBudgetOptions {
  /** Retries allowed per original request, over the window. Default 0.2 (20%). */
  retryRatio?: number;
  /** Retries always allowed per second, whatever the traffic. Default 10. */
  minRetriesPerSecond?: number;
  /** How long a request counts towards the budget. Default `"10s"`. */
  ttl?: Duration;
}

const SLOTS = 10;
// Deposits are counted without reading the clock; it is read every this many deposits (and on
// every withdrawal) to move the window, so the success path pays no clock read.
const DEPOSITS_PER_CLOCK_READ = 32;

const schema = z.strictObject({
  retryRatio: num(0, 1000).default(0.2),
  minRetriesPerSecond: num(0, 1_000_000).default(10),
  ttl: duration(1000, 60_000).default(10_000),
});

/** Resolved budget parameters. */
export interface RetryBudgetParams {
  readonly retryRatio: number;
  readonly minRetriesPerSecond: number;
  readonly ttlMs: number;
}

/** Checks budget options (Linkerd's defaults: 0.2, 10/s, 10 s). */
export function resolveRetryBudgetOptions(options: RetryBudgetOptions | undefined, field = 'budget'): RetryBudgetParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  return { retryRatio: parsed.retryRatio, minRetriesPerSecond: parsed.minRetriesPerSecond, ttlMs: parsed.ttl };
}

/**
 * A retry budget: retries may add at most `retryRatio` of the original requests, plus
 * `minRetriesPerSecond`, over a sliding window of `ttl` — so a failing backend sees at most
 * 1.2x its normal load instead of a retry storm. One budget can be shared by many stacks (and
 * by hedging), as Linkerd shares one per service.
 *
 * The window is {@link SLOTS} slots of deposits and withdrawals, moved lazily: O(1) per call.
 *
 * Prior art: Finagle's `RetryBudget`, Tower's `TpsBudget`, Linkerd's `retryBudget`.
 */
export class RetryBudget {
  readonly params: RetryBudgetParams;
  readonly #clock: Clock;
  readonly #slotMs: number;
  readonly #reserve: number;
  // Plain arrays: two typed arrays would cost a few hundred bytes per budget in buffers.
  readonly #deposits: number[] = new Array<number>(SLOTS).fill(0);
  readonly #withdrawals: number[] = new Array<number>(SLOTS).fill(0);
  #slot = 0;
  #slotStart: number;
  #unsynced = 0;
  #depositTotal = 0;
  #withdrawTotal = 0;

  constructor(options: RetryBudgetOptions = {}, clock: Clock = systemClock) {
    this.params = resolveRetryBudgetOptions(options);
    this.#clock = clock;
    this.#slotMs = this.params.ttlMs / SLOTS;
    this.#reserve = this.params.minRetriesPerSecond * (this.params.ttlMs / 1000);
    this.#slotStart = clock.now();
  }

  /** Counts one original request. Called once per logical call, not per retry. */
  deposit(): void {
    if (++this.#unsynced >= DEPOSITS_PER_CLOCK_READ) this.#sync(this.#clock.now());
  }

  /** Takes one retry from the budget; `false` when it is spent. */
  withdraw(): boolean {
    this.#sync(this.#clock.now());
    if (this.#available() < 1) return false;
    this.#withdrawals[this.#slot] = (this.#withdrawals[this.#slot] as number) + 1;
    this.#withdrawTotal++;
    return true;
  }

  /** Retries that could be taken now. */
  balance(): number {
    this.#sync(this.#clock.now());
    return Math.max(0, Math.floor(this.#available()));
  }

  /** State for `/stack` and metrics. */
  describe(): Record<string, unknown> {
    return {
      retryRatio: this.params.retryRatio,
      minRetriesPerSecond: this.params.minRetriesPerSecond,
      ttlMs: this.params.ttlMs,
      balance: this.balance(),
    };
  }

  #available(): number {
    return this.#depositTotal * this.params.retryRatio + this.#reserve - this.#withdrawTotal;
  }

  #sync(now: number): void {
    let elapsed = Math.floor((now - this.#slotStart) / this.#slotMs);
    if (elapsed > 0) {
      if (elapsed > SLOTS) elapsed = SLOTS;
      for (let i = 0; i < elapsed; i++) {
        this.#slot = (this.#slot + 1) % SLOTS;
        this.#depositTotal -= this.#deposits[this.#slot] as number;
        this.#withdrawTotal -= this.#withdrawals[this.#slot] as number;
        this.#deposits[this.#slot] = 0;
        this.#withdrawals[this.#slot] = 0;
      }
      this.#slotStart = elapsed === SLOTS ? now : this.#slotStart + elapsed * this.#slotMs;
    }
    // Deposits counted since the last read land in the current slot: at most
    // DEPOSITS_PER_CLOCK_READ - 1 of them can be credited later than they happened.
    this.#deposits[this.#slot] = (this.#deposits[this.#slot] as number) + this.#unsynced;
    this.#depositTotal += this.#unsynced;
    this.#unsynced = 0;
  }
}
