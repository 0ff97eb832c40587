import { InvalidOptionError } from './errors.js';

/**
 * A duration as mesh configs write it: `"250ms"`, `"10s"`, `"1m"`, `"1.5s"`, `"1h"`, or a number
 * of milliseconds.
 */
export type Duration = number | `${number}${DurationUnit}`;
type DurationUnit = 'ns' | 'us' | 'µs' | 'ms' | 's' | 'm' | 'h';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const PATTERN = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/;

/** Parses a duration, or returns `undefined` when it is not one. */
export function tryParseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = PATTERN.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number);
}

/**
 * Parses a duration to milliseconds, throwing {@link InvalidOptionError} naming `field` when
 * the value is not a non-negative duration.
 */
export function parseDuration(value: unknown, field: string): number {
  const ms = tryParseDuration(value);
  if (ms === undefined) {
    throw new InvalidOptionError(
      field,
      `must be a duration such as "250ms", "10s" or a number of milliseconds (got ${JSON.stringify(value)})`,
    );
  }
  return ms;
}

/** Formats milliseconds the way configs write them, for describe() and messages. */
export function formatDuration(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return 'none';
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${Math.round(ms * 1000) / 1000}ms`;
}
