import { z } from 'zod';
import type { Classification } from '../../core/classify.js';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, parseOptions } from '../../core/validate.js';
import { type BackoffFunction, type BackoffOptions, type BackoffParams, resolveBackoff } from './backoff.js';
import { RetryBudget, type RetryBudgetOptions } from './budget.js';

/**
 * What to retry, as Istio's `retryOn` names it, plus ours:
 * - `retryable` — whatever the classifier marks retryable (the default: network errors,
 *   timed-out attempts; with the HTTP classifier 502/503/504, 429 and 503 with `Retry-After`);
 * - `error` — any thrown error;
 * - `timeout` — an attempt that timed out;
 * - `reset`, `connect-failure` — network errors;
 * - `5xx`, `gateway-error` (502, 503, 504), `retriable-4xx` (409);
 * - any other word is matched against the classification's status (`"503"`, `"unavailable"`).
 */
export type RetryOn = string;

/** A predicate deciding whether a failed attempt may be retried. */
export type RetryPredicate = (classification: Classification, outcome: { error?: unknown; result?: unknown }) => boolean;

/** Options of the retry layer. */
export interface RetryOptions {
  /** Retries after the first attempt (Istio's `attempts`). Default 2; 0 disables retries. */
  attempts?: number;
  /** What to retry (see {@link RetryOn}), or a predicate. Default `["retryable"]`. */
  retryOn?: readonly RetryOn[] | RetryPredicate;
  /** Delay between attempts. Default exponential, 25 ms to 250 ms, full jitter. */
  backoff?: BackoffOptions | BackoffFunction;
  /** Deadline of each attempt, within the call's own. Default none. */
  perTryTimeout?: Duration;
  /**
   * The retry budget: a shared {@link RetryBudget}, options for one of this stack's own, or
   * `false` for none. Default: Linkerd's 20% plus 10/s over 10 s.
   */
  budget?: RetryBudget | RetryBudgetOptions | false;
  /** Wait at least as long as a server's `Retry-After` says. Default true. */
  honorRetryAfter?: boolean;
  /** Releases a result that will be retried (e.g. cancels an HTTP body). */
  discard?: (result: unknown) => void;
}

/** Resolved parameters. */
export interface RetryParams {
  readonly attempts: number;
  readonly retryOn: ReadonlySet<string> | RetryPredicate;
  readonly backoff: BackoffParams;
  readonly perTryTimeoutMs: number;
  /** Same object for the life of these params, for the per-try timeout layer. */
  readonly perTry: { readonly timeoutMs: number };
  readonly budget: RetryBudget | RetryBudgetOptions | undefined;
  readonly honorRetryAfter: boolean;
  readonly discard: ((result: unknown) => void) | undefined;
}

const schema = z.strictObject({
  attempts: int(0, 100).default(2),
  retryOn: z.unknown().optional(),
  backoff: z.unknown().optional(),
  perTryTimeout: duration(1, 2_147_483_647).optional(),
  budget: z.unknown().optional(),
  honorRetryAfter: z.boolean({ error: 'must be true or false' }).default(true),
  discard: z.custom<(result: unknown) => void>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
});

// Shared by every stack that keeps the defaults: options cost heap per wrapped service.
const DEFAULT_RETRY_ON: ReadonlySet<string> = new Set(['retryable']);
const NO_PER_TRY = Object.freeze({ timeoutMs: Number.POSITIVE_INFINITY });

const RETRY_ON_WORD = /^[a-z0-9][a-z0-9_-]*$/i;

function resolveRetryOn(value: unknown, field: string): ReadonlySet<string> | RetryPredicate {
  if (value === undefined) return DEFAULT_RETRY_ON;
  if (typeof value === 'function') return value as RetryPredicate;
  const words = typeof value === 'string' ? value.split(',').map((w) => w.trim()) : value;
  if (!Array.isArray(words) || words.some((w) => typeof w !== 'string' || !RETRY_ON_WORD.test(w))) {
    throw new InvalidOptionError(
      field,
      `must be a list of conditions such as ["retryable", "5xx", "reset"] or a function (got ${JSON.stringify(value)})`,
    );
  }
  return new Set(words.map((w: string) => w.toLowerCase()));
}

function resolveBudget(value: unknown, field: string): RetryBudget | RetryBudgetOptions | undefined {
  if (value === false) return undefined;
  if (value === undefined) return {};
  if (value instanceof RetryBudget) return value;
  if (typeof value === 'object' && value !== null) {
    // Checked now, built per stack on the stack's clock.
    new RetryBudget(value as RetryBudgetOptions);
    return value as RetryBudgetOptions;
  }
  throw new InvalidOptionError(field, `must be a RetryBudget, budget options or false (got ${JSON.stringify(value)})`);
}

/** Checks retry options. */
export function resolveRetryOptions(options: RetryOptions | undefined, field = 'retry'): RetryParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  let budget: RetryBudget | RetryBudgetOptions | undefined;
  try {
    budget = resolveBudget(parsed.budget, `${field}.budget`);
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      throw new InvalidOptionError(
        error.problems.map((p) => ({ ...p, field: p.field.startsWith(field) ? p.field : `${field}.${p.field}` })),
      );
    }
    throw error;
  }
  const perTryTimeoutMs = parsed.perTryTimeout ?? Number.POSITIVE_INFINITY;
  return {
    attempts: parsed.attempts,
    retryOn: resolveRetryOn(parsed.retryOn, `${field}.retryOn`),
    backoff: resolveBackoff(parsed.backoff as BackoffOptions | BackoffFunction | undefined, `${field}.backoff`),
    perTryTimeoutMs,
    perTry: perTryTimeoutMs === Number.POSITIVE_INFINITY ? NO_PER_TRY : { timeoutMs: perTryTimeoutMs },
    budget,
    honorRetryAfter: parsed.honorRetryAfter,
    discard: parsed.discard as ((result: unknown) => void) | undefined,
  };
}

/** Whether `retryOn` allows retrying this failure. */
export function matchesRetryOn(
  retryOn: ReadonlySet<string> | RetryPredicate,
  classification: Classification,
  threw: boolean,
  error: unknown,
  result: unknown,
  isNetworkError: (error: unknown) => boolean,
): boolean {
  if (typeof retryOn === 'function') return retryOn(classification, threw ? { error } : { result });
  if (retryOn.has('retryable') && classification.retryable) return true;
  if (threw && retryOn.has('error')) return true;
  const status = classification.status.toLowerCase();
  if (retryOn.has(status)) return true;
  if (status === 'timeout') return retryOn.has('timeout');
  if (threw && (retryOn.has('reset') || retryOn.has('connect-failure')) && isNetworkError(error)) return true;
  const code = Number(status);
  if (code >= 500 && code <= 599 && retryOn.has('5xx')) return true;
  if ((code === 502 || code === 503 || code === 504) && retryOn.has('gateway-error')) return true;
  return code === 409 && retryOn.has('retriable-4xx');
}
