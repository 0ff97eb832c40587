import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/** Options of the adaptive concurrency limit. Defaults are Netflix concurrency-limits' own. */
export interface AdaptiveConcurrencyOptions {
  /** `gradient2` (default; follows latency) or `aimd` (follows drops and slow calls). */
  algorithm?: 'gradient2' | 'aimd';
  /** Limit at start. Default 20. */
  initialLimit?: number;
  /** Never below. Default 1. */
  minLimit?: number;
  /** Never above. Default 200. */
  maxLimit?: number;
  /** AIMD: factor applied on a drop. Default 0.9. */
  backoffRatio?: number;
  /** AIMD: a call slower than this counts as a drop. Default `"5s"`. */
  timeout?: Duration;
  /** Gradient2: weight of a new limit estimate. Default 0.2. */
  smoothing?: number;
  /** Gradient2: how much latency may grow over the long average before the limit shrinks. Default 1.5. */
  rttTolerance?: number;
  /** Gradient2: samples in the long-RTT average. Default 600. */
  longWindow?: number;
  /** Gradient2: growth per sample while latency holds. Default 4. */
  queueSize?: number;
}

/** Resolved parameters. */
export interface AdaptiveConcurrencyParams {
  readonly algorithm: 'gradient2' | 'aimd';
  readonly initialLimit: number;
  readonly minLimit: number;
  readonly maxLimit: number;
  readonly backoffRatio: number;
  readonly timeoutMs: number;
  readonly smoothing: number;
  readonly rttTolerance: number;
  readonly longWindow: number;
  readonly queueSize: number;
}

const schema = z.strictObject({
  algorithm: z.enum(['gradient2', 'aimd'], { error: 'must be "gradient2" or "aimd"' }).default('gradient2'),
  initialLimit: int(1, 1_000_000).default(20),
  minLimit: int(1, 1_000_000).default(1),
  maxLimit: int(1, 1_000_000).default(200),
  backoffRatio: num(0.5, 0.999).default(0.9),
  timeout: duration(1, 2_147_483_647).default(5000),
  smoothing: num(0.01, 1).default(0.2),
  rttTolerance: num(1, 100).default(1.5),
  longWindow: int(1, 1_000_000).default(600),
  queueSize: int(0, 10_000).default(4),
});

/** Checks adaptive-concurrency options. */
export function resolveAdaptiveConcurrencyOptions(
  options: AdaptiveConcurrencyOptions | undefined,
  field = 'adaptiveConcurrency',
): AdaptiveConcurrencyParams {
  const p = parseOptions(schema, options ?? {}, field);
  if (p.maxLimit < p.minLimit)
    throw new InvalidOptionError(`${field}.maxLimit`, `must be at least minLimit (${p.minLimit}) (got ${p.maxLimit})`);
  if (p.initialLimit < p.minLimit || p.initialLimit > p.maxLimit) {
    throw new InvalidOptionError(
      `${field}.initialLimit`,
      `must be from minLimit ${p.minLimit} to maxLimit ${p.maxLimit} (got ${p.initialLimit})`,
    );
  }
  return {
    algorithm: p.algorithm,
    initialLimit: p.initialLimit,
    minLimit: p.minLimit,
    maxLimit: p.maxLimit,
    backoffRatio: p.backoffRatio,
    timeoutMs: p.timeout,
    smoothing: p.smoothing,
    rttTolerance: p.rttTolerance,
    longWindow: p.longWindow,
    queueSize: p.queueSize,
  };
}
