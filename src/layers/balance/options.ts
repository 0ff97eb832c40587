import { z } from 'zod';
import { type Duration, formatDuration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/**
 * How the balancer picks:
 * - `p2c-peak-ewma` (default): two endpoints sampled at random, the one with the lower
 *   `EWMA(rtt) × (pending + 1) / weight` wins — latency-aware, Linkerd's and Tower's default;
 * - `p2c-least-request`: the same, with `(pending + 1) / weight` (Envoy's `LEAST_REQUEST`);
 * - `round-robin`: each ready endpoint in turn;
 * - `weighted`: at random in proportion to weight (Vose's alias table, rebuilt when the set changes).
 */
export type BalanceStrategy = 'p2c-peak-ewma' | 'p2c-least-request' | 'round-robin' | 'weighted';

/** Failure accrual per endpoint, as Linkerd's `consecutive` failure accrual. */
export interface FailureAccrualOptions {
  /** Consecutive failures that eject an endpoint. Default 7. */
  consecutiveFailures?: number;
  /** Ejection backoff: grows from `min` to `max`, each plus up to `jitter` × itself at random. */
  backoff?: { min?: Duration; max?: Duration; jitter?: number };
}

/** Options of the balance layer. */
export interface BalanceOptions {
  /** How to pick. Default `p2c-peak-ewma`. */
  strategy?: BalanceStrategy;
  /** Peak EWMA: the estimate of a new endpoint (default `30ms`) and the decay time (default `10s`). */
  peakEwma?: { defaultRtt?: Duration; decay?: Duration };
  /** Failure accrual, or `false` to never eject. */
  failureAccrual?: FailureAccrualOptions | false;
  /**
   * When fewer than this fraction of endpoints are ready (not ejected), pick among all of them:
   * better some calls on a sick endpoint than every call failing (Envoy's panic threshold).
   * Default 0.5; 0 disables panic, and calls then fail with `NoEndpointsError('all-ejected')`.
   */
  panicThreshold?: number;
}

/** Resolved parameters. */
export interface BalanceParams {
  readonly strategy: BalanceStrategy;
  readonly defaultRttMs: number;
  readonly decayMs: number;
  /** 0 when failure accrual is off. */
  readonly consecutiveFailures: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  readonly backoffJitter: number;
  readonly panicThreshold: number;
}

const schema = z.strictObject({
  strategy: z
    .enum(['p2c-peak-ewma', 'p2c-least-request', 'round-robin', 'weighted'], {
      error: 'must be "p2c-peak-ewma", "p2c-least-request", "round-robin" or "weighted"',
    })
    .default('p2c-peak-ewma'),
  peakEwma: z
    .strictObject({ defaultRtt: duration(0, 600_000).default(30), decay: duration(1, 3_600_000).default(10_000) })
    .default({ defaultRtt: 30, decay: 10_000 }),
  failureAccrual: z
    .union([
      z.literal(false),
      z.strictObject({
        consecutiveFailures: int(1, 10_000).default(7),
        backoff: z
          .strictObject({
            min: duration(1, 86_400_000).default(1000),
            max: duration(1, 86_400_000).default(60_000),
            jitter: num(0, 1).default(0.5),
          })
          .default({ min: 1000, max: 60_000, jitter: 0.5 }),
      }),
    ])
    .default({ consecutiveFailures: 7, backoff: { min: 1000, max: 60_000, jitter: 0.5 } }),
  panicThreshold: num(0, 1).default(0.5),
});

/** Checks balance options. */
export function resolveBalanceOptions(options: BalanceOptions | undefined, field = 'balance'): BalanceParams {
  const p = parseOptions(schema, options ?? {}, field);
  const accrual = p.failureAccrual;
  if (accrual !== false && accrual.backoff.min > accrual.backoff.max) {
    throw new InvalidOptionError(
      `${field}.failureAccrual.backoff.min`,
      `must not exceed backoff.max (got ${accrual.backoff.min}ms > ${accrual.backoff.max}ms)`,
    );
  }
  return {
    strategy: p.strategy,
    defaultRttMs: p.peakEwma.defaultRtt,
    decayMs: p.peakEwma.decay,
    consecutiveFailures: accrual === false ? 0 : accrual.consecutiveFailures,
    backoffMinMs: accrual === false ? 1000 : accrual.backoff.min,
    backoffMaxMs: accrual === false ? 60_000 : accrual.backoff.max,
    backoffJitter: accrual === false ? 0 : accrual.backoff.jitter,
    panicThreshold: p.panicThreshold,
  };
}

/** The parameters in force, as `/stack` shows them. */
export function describeBalanceParams(p: BalanceParams): Record<string, unknown> {
  return {
    strategy: p.strategy,
    peakEwma: { defaultRtt: formatDuration(p.defaultRttMs), decay: formatDuration(p.decayMs) },
    failureAccrual:
      p.consecutiveFailures === 0
        ? false
        : {
            consecutiveFailures: p.consecutiveFailures,
            backoff: { min: formatDuration(p.backoffMinMs), max: formatDuration(p.backoffMaxMs), jitter: p.backoffJitter },
          },
    panicThreshold: p.panicThreshold,
  };
}
