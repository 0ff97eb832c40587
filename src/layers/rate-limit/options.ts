import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/** Options of the rate limit (a token bucket). */
export interface RateLimitOptions {
  /** Tokens added per `interval`; one call takes one token. */
  rate: number;
  /** Default `"1s"`. */
  interval?: Duration;
  /** Bucket size: calls allowed at once after a quiet spell. Default `ceil(rate)`, at least 1. */
  burst?: number;
  /** `fail` at once with `RateLimitedError` (default), or `wait` for a token within the deadline. */
  mode?: 'fail' | 'wait';
  /** `wait` mode: longest wait for a token, within the call's deadline. Default: the deadline alone. */
  maxWait?: Duration;
}

/** Resolved parameters. */
export interface RateLimitParams {
  readonly rate: number;
  readonly intervalMs: number;
  /** Tokens per millisecond. */
  readonly perMs: number;
  readonly burst: number;
  readonly mode: 'fail' | 'wait';
  readonly maxWaitMs: number;
}

const schema = z.strictObject({
  rate: num(0.000001, 1_000_000_000),
  interval: duration(1, 86_400_000).default(1000),
  burst: int(1, 1_000_000_000).optional(),
  mode: z.enum(['fail', 'wait'], { error: 'must be "fail" or "wait"' }).default('fail'),
  maxWait: duration(0, 2_147_483_647).optional(),
});

/** Checks rate-limit options. */
export function resolveRateLimitOptions(options: RateLimitOptions | undefined, field = 'rateLimit'): RateLimitParams {
  const p = parseOptions(schema, options ?? {}, field);
  return {
    rate: p.rate,
    intervalMs: p.interval,
    perMs: p.rate / p.interval,
    burst: p.burst ?? Math.max(1, Math.ceil(p.rate)),
    mode: p.mode,
    maxWaitMs: p.maxWait ?? Number.POSITIVE_INFINITY,
  };
}
