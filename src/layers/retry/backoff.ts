import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, num, parseOptions } from '../../core/validate.js';

/** How a backoff spreads retries so that clients do not retry in lockstep. */
export type Jitter = 'full' | 'equal' | 'decorrelated' | 'none';

/** Backoff options. */
export interface BackoffOptions {
  /** `exponential` (default), `constant`, or a function of the retry number. */
  kind?: 'exponential' | 'constant';
  /** First delay (exponential) or every delay (constant). Default `"25ms"`. */
  base?: Duration;
  /** Cap on any delay. Default ten times `base` (`"250ms"` for the default base), as Envoy. */
  max?: Duration;
  /** Growth per retry for exponential backoff. Default 2. */
  multiplier?: number;
  /** Default `full` (AWS's recommendation; Envoy's and Tower's choice). */
  jitter?: Jitter;
}

/** A custom backoff: the delay in ms before retry `retry` (1-based), given the previous delay. */
export type BackoffFunction = (retry: number, previousDelayMs: number, random: () => number) => number;

/** Resolved backoff. */
export interface BackoffParams {
  readonly kind: 'exponential' | 'constant' | 'custom';
  readonly baseMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
  readonly jitter: Jitter;
  readonly custom?: BackoffFunction | undefined;
}

const schema = z.strictObject({
  kind: z.enum(['exponential', 'constant'], { error: 'must be "exponential" or "constant"' }).default('exponential'),
  base: duration(0, 3_600_000).default(25),
  max: duration(0, 3_600_000).optional(),
  multiplier: num(1, 100).default(2),
  jitter: z.enum(['full', 'equal', 'decorrelated', 'none'], { error: 'must be "full", "equal", "decorrelated" or "none"' }).default('full'),
});

/** Checks backoff options. */
export function resolveBackoff(options: BackoffOptions | BackoffFunction | undefined, field: string): BackoffParams {
  if (typeof options === 'function')
    return { kind: 'custom', baseMs: 0, maxMs: Number.POSITIVE_INFINITY, multiplier: 1, jitter: 'none', custom: options };
  const parsed = parseOptions(schema, options ?? {}, field);
  const maxMs = parsed.max ?? parsed.base * 10;
  if (maxMs < parsed.base) {
    throw new InvalidOptionError(`${field}.max`, `must be at least ${field}.base (${parsed.base}ms) (got ${maxMs}ms)`);
  }
  return { kind: parsed.kind, baseMs: parsed.base, maxMs, multiplier: parsed.multiplier, jitter: parsed.jitter };
}

/** The delay before retry number `retry` (1 for the first retry). */
export function backoffDelay(params: BackoffParams, retry: number, previousDelayMs: number, random: () => number): number {
  if (params.kind === 'custom') {
    const delay = (params.custom as BackoffFunction)(retry, previousDelayMs, random);
    return Number.isFinite(delay) && delay > 0 ? delay : 0;
  }
  const { baseMs, maxMs } = params;
  if (params.jitter === 'decorrelated') {
    // AWS's "decorrelated jitter": grows from the previous delay rather than the retry number.
    const upper = Math.min(maxMs, Math.max(baseMs, previousDelayMs * 3));
    return baseMs + random() * (upper - baseMs);
  }
  const ceiling = params.kind === 'constant' ? baseMs : Math.min(maxMs, baseMs * params.multiplier ** (retry - 1));
  switch (params.jitter) {
    case 'full':
      return random() * ceiling;
    case 'equal':
      return ceiling / 2 + (random() * ceiling) / 2;
    default:
      return ceiling;
  }
}
