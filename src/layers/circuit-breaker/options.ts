import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/** A rolling window of the last N calls, or of the last duration split into buckets. */
export type WindowOptions = { calls: number } | { duration: Duration; buckets?: number };

/** Trip on the failure rate of a rolling window. */
export interface FailureRateOptions {
  /** Failure fraction at or above which the circuit opens, in (0, 1]. */
  threshold: number;
  /** Calls the window must hold before the rate counts. Default 20. */
  minimumVolume?: number;
  /** Default `{ calls: 100 }`; `{ duration: "10s", buckets: 10 }` for a time window. */
  window?: WindowOptions;
}

/** Backoff from open to half-open, growing with each failed probe. */
export interface BreakerBackoffOptions {
  /** First wait. Default `"1s"`. */
  min?: Duration;
  /** Longest wait. Default `"60s"`. */
  max?: Duration;
  /** Growth per failed probe. Default 2. */
  multiplier?: number;
  /** Up to this fraction is added at random, so clients do not probe in lockstep. Default 0.5. */
  jitter?: number;
}

/** Options of the circuit breaker (Linkerd's failure accrual, plus a failure-rate window). */
export interface CircuitBreakerOptions {
  /** Open after this many failures in a row. Default 7 (Linkerd); `false` to turn off. */
  consecutiveFailures?: number | false;
  /** Open when the failure rate of a rolling window reaches a threshold. Default off. */
  failureRate?: FailureRateOptions | false;
  /** Wait before probing; default 1 s to 60 s, doubling, jitter 0.5. */
  backoff?: BreakerBackoffOptions;
  /** Successful probes needed to close, admitted one at a time up to this many. Default 1. */
  probes?: number;
}

/** The resolved rolling window. */
export interface WindowParams {
  readonly kind: 'calls' | 'time';
  /** Slots: calls for a count window, buckets for a time window. */
  readonly size: number;
  /** Width of one bucket (time windows). */
  readonly bucketMs: number;
}

/** Resolved parameters. */
export interface CircuitBreakerParams {
  readonly consecutiveFailures: number;
  readonly failureRate:
    | { readonly threshold: number; readonly minimumVolume: number; readonly window: WindowParams; readonly describe: string }
    | undefined;
  readonly backoff: { readonly minMs: number; readonly maxMs: number; readonly multiplier: number; readonly jitter: number };
  readonly probes: number;
}

const windowSchema = z.union(
  [
    z.strictObject({ calls: int(1, 10_000_000) }),
    z.strictObject({ duration: duration(10, 3_600_000), buckets: int(1, 10_000).default(10) }),
  ],
  { error: 'must be { calls: N } or { duration: "10s", buckets?: N }' },
);

const schema = z.strictObject({
  consecutiveFailures: z
    .union([int(1, 1_000_000), z.literal(false)], { error: 'must be an integer from 1 to 1000000, or false' })
    .default(7),
  failureRate: z
    .union(
      [
        z.literal(false),
        z.strictObject({
          threshold: num(0.000001, 1),
          minimumVolume: int(1, 10_000_000).default(20),
          window: windowSchema.default({ calls: 100 }),
        }),
      ],
      { error: 'must be { threshold, minimumVolume?, window? } or false' },
    )
    .default(false),
  backoff: z
    .strictObject({
      min: duration(1, 86_400_000).default(1000),
      max: duration(1, 86_400_000).default(60_000),
      multiplier: num(1, 100).default(2),
      jitter: num(0, 1).default(0.5),
    })
    .default({ min: 1000, max: 60_000, multiplier: 2, jitter: 0.5 }),
  probes: int(1, 1000).default(1),
});

/** Checks circuit breaker options. */
export function resolveCircuitBreakerOptions(options: CircuitBreakerOptions | undefined, field = 'circuitBreaker'): CircuitBreakerParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  if (parsed.backoff.max < parsed.backoff.min) {
    throw new InvalidOptionError(
      `${field}.backoff.max`,
      `must be at least ${field}.backoff.min (${parsed.backoff.min}ms) (got ${parsed.backoff.max}ms)`,
    );
  }
  const rate = parsed.failureRate;
  let failureRate: CircuitBreakerParams['failureRate'];
  if (rate !== false) {
    const w = rate.window;
    const window: WindowParams =
      'calls' in w ? { kind: 'calls', size: w.calls, bucketMs: 0 } : { kind: 'time', size: w.buckets, bucketMs: w.duration / w.buckets };
    if (window.kind === 'time' && window.bucketMs < 1) {
      throw new InvalidOptionError(`${field}.failureRate.window.buckets`, `must leave buckets of at least 1ms (got ${window.size})`);
    }
    failureRate = {
      threshold: rate.threshold,
      minimumVolume: rate.minimumVolume,
      window,
      describe: window.kind === 'calls' ? `${window.size} calls` : `${window.size * window.bucketMs}ms in ${window.size} buckets`,
    };
  }
  return {
    consecutiveFailures: parsed.consecutiveFailures === false ? Number.POSITIVE_INFINITY : parsed.consecutiveFailures,
    failureRate,
    backoff: { minMs: parsed.backoff.min, maxMs: parsed.backoff.max, multiplier: parsed.backoff.multiplier, jitter: parsed.backoff.jitter },
    probes: parsed.probes,
  };
}

/**
 * The wait before the probe after `failedProbes` failed probes: `min * multiplier^failedProbes`
 * capped at `max`, then up to `jitter` of it added at random, and capped at `max` again.
 */
export function probeDelay(backoff: CircuitBreakerParams['backoff'], failedProbes: number, random: () => number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.minMs * backoff.multiplier ** failedProbes);
  return Math.min(backoff.maxMs, ceiling * (1 + backoff.jitter * random()));
}
