import { z } from 'zod';
import type { Duration } from '../../core/duration.js';
import { duration, parseOptions } from '../../core/validate.js';

/** Options of the timeout layer. A bare duration is shorthand for `{ timeout }`. */
export interface TimeoutOptions {
  /** Deadline of each call through this layer: `"250ms"`, `"10s"`, or ms. `0` disables it. */
  timeout: Duration;
}

/** Resolved parameters. */
export interface TimeoutParams {
  readonly timeoutMs: number;
}

const schema = z.strictObject({ timeout: duration(0, 2_147_483_647) });

/** Validates timeout options; `0` means no timeout. */
export function resolveTimeoutOptions(options: TimeoutOptions | Duration | undefined, field = 'timeout'): TimeoutParams {
  if (options === undefined) return { timeoutMs: Number.POSITIVE_INFINITY };
  const raw = typeof options === 'object' ? options : { timeout: options };
  const parsed = parseOptions(schema, raw, typeof options === 'object' ? field : '');
  return { timeoutMs: parsed.timeout === 0 ? Number.POSITIVE_INFINITY : parsed.timeout };
}
