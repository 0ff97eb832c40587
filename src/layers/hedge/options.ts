import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';
import { RetryBudget, type RetryBudgetOptions } from '../retry/budget.js';

/** Options of the hedge layer. Give `delay` or `percentile`, not both; neither means `percentile: 95`. */
export interface HedgeOptions {
  /** Send a hedge after this fixed delay: `"50ms"`. */
  delay?: Duration;
  /** Send a hedge once a call is slower than this percentile of recent calls (Tower: 0 < p < 100). */
  percentile?: number;
  /** Fewest latencies in the last window before percentile hedging starts. Default 10. */
  minSamples?: number;
  /** Length of a latency window; estimates come from the previous one. Default `"10s"`. */
  window?: Duration;
  /** Floor of a percentile delay (keeps a burst of fast calls from hedging everything). Default 0. */
  minDelay?: Duration;
  /** Ceiling of a percentile delay. Default none. */
  maxDelay?: Duration;
  /** Hedges per call beyond the first attempt. Default 1; 0 disables hedging. */
  maxHedges?: number;
  /**
   * The budget hedges spend: the same {@link RetryBudget} instance a retry layer uses (hedges
   * then only withdraw; the retry layer counts the traffic), options for one of this stack's
   * own (filled by the calls through this layer), or `false` for none. Default: Linkerd's 20%
   * plus 10/s over 10 s, of its own.
   */
  budget?: RetryBudget | RetryBudgetOptions | false;
}

/** Resolved parameters. */
export interface HedgeParams {
  readonly mode: 'fixed' | 'percentile';
  readonly delayMs: number;
  readonly percentile: number;
  readonly minSamples: number;
  readonly windowMs: number;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxHedges: number;
  readonly budget: RetryBudget | RetryBudgetOptions | undefined;
}

const schema = z.strictObject({
  delay: duration(0, 2_147_483_647).optional(),
  percentile: num(1, 99.99).optional(),
  minSamples: int(1, 1_000_000).default(10),
  window: duration(100, 3_600_000).default(10_000),
  minDelay: duration(0, 2_147_483_647).default(0),
  maxDelay: duration(0, 2_147_483_647).optional(),
  maxHedges: int(0, 10).default(1),
  budget: z
    .custom<RetryBudget | RetryBudgetOptions | false>(
      (v) => v === false || v instanceof RetryBudget || (typeof v === 'object' && v !== null && !Array.isArray(v)),
      { error: 'must be a RetryBudget, budget options or false' },
    )
    .optional(),
});

/** Checks hedge options. */
export function resolveHedgeOptions(options: HedgeOptions | undefined, field = 'hedge'): HedgeParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  if (parsed.delay !== undefined && parsed.percentile !== undefined) {
    throw new InvalidOptionError(`${field}.delay`, 'give either delay (fixed) or percentile (adaptive), not both');
  }
  const maxDelayMs = parsed.maxDelay ?? Number.POSITIVE_INFINITY;
  if (maxDelayMs < parsed.minDelay) {
    throw new InvalidOptionError(`${field}.maxDelay`, `must be at least ${field}.minDelay (${parsed.minDelay}ms) (got ${maxDelayMs}ms)`);
  }
  let budget: RetryBudget | RetryBudgetOptions | undefined;
  if (parsed.budget === undefined) budget = {};
  else if (parsed.budget !== false) {
    budget = parsed.budget;
    // Options are checked now (naming the field) and built per stack, on the stack's clock.
    if (!(budget instanceof RetryBudget)) parseBudget(budget, `${field}.budget`);
  }
  return {
    mode: parsed.delay === undefined ? 'percentile' : 'fixed',
    delayMs: parsed.delay ?? 0,
    percentile: parsed.percentile ?? 95,
    minSamples: parsed.minSamples,
    windowMs: parsed.window,
    minDelayMs: parsed.minDelay,
    maxDelayMs,
    maxHedges: parsed.maxHedges,
    budget,
  };
}

function parseBudget(options: RetryBudgetOptions, field: string): void {
  try {
    new RetryBudget(options);
  } catch (error) {
    if (!(error instanceof InvalidOptionError)) throw error;
    throw new InvalidOptionError(error.problems.map((p) => ({ ...p, field: p.field.replace(/^budget/, field) })));
  }
}
