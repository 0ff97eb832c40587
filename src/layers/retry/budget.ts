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
  /** Width of one of the window's slots. */
  readonly slotMs: number;
  /** Retries always available over the window: minRetriesPerSecond x ttl. */
  readonly reserve: number;
}

/** Checks budget options (Linkerd's defaults: 0.2, 10/s, 10 s). */
export function resolveRetryBudgetOptions(options: RetryBudgetOptions | undefined, field = 'budget'): RetryBudgetParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  return {
    retryRatio: parsed.retryRatio,
    minRetriesPerSecond: parsed.minRetriesPerSecond,
    ttlMs: parsed.ttl,
    slotMs: parsed.ttl / SLOTS,
    reserve: parsed.minRetriesPerSecond * (parsed.ttl / 1000),
  };
}

// Stacks built from one policy share its options object; resolving it once keeps each stack's
// budget down to its window.
const resolved = new WeakMap<RetryBudgetOptions, RetryBudgetParams>();
function resolvedFor(options: RetryBudgetOptions): RetryBudgetParams {
  let params = resolved.get(options);
  if (params === undefined) {
    params = resolveRetryBudgetOptions(options);
    resolved.set(options, params);
  }
  return params;
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
  // One plain array, deposits of slot i at 2i and withdrawals at 2i+1: typed arrays would cost
  // a few hundred bytes per budget in buffers.
  readonly #slots: number[] = new Array<number>(2 * SLOTS).fill(0);
  #slot = 0;
  #slotStart: number;
  #unsynced = 0;
  #depositTotal = 0;
  #withdrawTotal = 0;

  constructor(options: RetryBudgetOptions = {}, clock: Clock = systemClock) {
    this.params = resolvedFor(options);
    this.#clock = clock;
    // Whole milliseconds keep the field a small integer rather than a boxed double.
    this.#slotStart = Math.floor(clock.now());
  }

  /** Counts one original request. Called once per logical call, not per retry. */
  deposit(): void {
    if (++this.#unsynced >= DEPOSITS_PER_CLOCK_READ) this.#sync(this.#clock.now());
  }

  /** Takes one retry from the budget; `false` when it is spent. */
  withdraw(): boolean {
    this.#sync(this.#clock.now());
    if (this.#available() < 1) return false;
    this.#slots[2 * this.#slot + 1] = (this.#slots[2 * this.#slot + 1] as number) + 1;
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
    return this.#depositTotal * this.params.retryRatio + this.params.reserve - this.#withdrawTotal;
  }

  #sync(now: number): void {
    let elapsed = Math.floor((now - this.#slotStart) / this.params.slotMs);
    if (elapsed > 0) {
      if (elapsed > SLOTS) elapsed = SLOTS;
      for (let i = 0; i < elapsed; i++) {
        this.#slot = (this.#slot + 1) % SLOTS;
        this.#depositTotal -= this.#slots[2 * this.#slot] as number;
        this.#withdrawTotal -= this.#slots[2 * this.#slot + 1] as number;
        this.#slots[2 * this.#slot] = 0;
        this.#slots[2 * this.#slot + 1] = 0;
      }
      this.#slotStart = elapsed === SLOTS ? now : this.#slotStart + elapsed * this.params.slotMs;
    }
    // Deposits counted since the last read land in the current slot: at most
    // DEPOSITS_PER_CLOCK_READ - 1 of them can be credited later than they happened.
    this.#slots[2 * this.#slot] = (this.#slots[2 * this.#slot] as number) + this.#unsynced;
    this.#depositTotal += this.#unsynced;
    this.#unsynced = 0;
  }
}

/**
 * The budget a layer should use for `source` (a shared {@link RetryBudget}, options for one of
 * its own, or none), given the one it built before (`own`, from options). Options are compared
 * by value: live config resolves them anew on every snapshot, and a budget rebuilt each time
 * would forget its window — and so stop limiting retries — whenever an operator pushed an
 * unrelated change.
 */
export function adoptBudget(
  own: RetryBudget | undefined,
  source: RetryBudget | RetryBudgetOptions | undefined,
  clock: Clock,
): RetryBudget | undefined {
  if (source === undefined || source instanceof RetryBudget) return source;
  if (own !== undefined) {
    const next = resolvedFor(source);
    const now = own.params;
    if (next.retryRatio === now.retryRatio && next.minRetriesPerSecond === now.minRetriesPerSecond && next.ttlMs === now.ttlMs) return own;
  }
  return new RetryBudget(source, clock);
}
