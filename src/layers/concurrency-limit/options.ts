import { z } from 'zod';
import type { CallContext } from '../../core/context.js';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError } from '../../core/errors.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/** Picks a call's partition, usually from `ctx.attributes` (a tenant, a priority header). */
export type PriorityPicker = (ctx: CallContext) => string | undefined;

/** Options of the concurrency limit (bulkhead). */
export interface ConcurrencyLimitOptions {
  /** Calls in flight at most. */
  max: number;
  /** Calls that may wait for a permit; beyond it calls are shed at once. Default 0. */
  queue?: number;
  /** Longest a call waits in the queue, within its deadline. Default: the deadline alone. */
  maxWait?: Duration;
  /**
   * Shares of the limit by partition, e.g. `{ high: 0.7, low: 0.3 }` (summing to at most 1).
   * Idle capacity is lent to any partition; when a permit frees, the waiting partition furthest
   * below its share gets it, so under contention each partition converges to its share. The
   * queue is split by the same shares.
   */
  partitions?: Record<string, number>;
  /** The call's partition; an unknown or missing name means the last partition listed. */
  priority?: PriorityPicker;
}

/** Resolved parameters. */
export interface ConcurrencyLimitParams {
  readonly max: number;
  readonly queue: number;
  readonly maxWaitMs: number;
  /** Partition names, in the order given (one unnamed partition without partitions). */
  readonly names: readonly string[];
  /** Each partition's share of `max` (permits, fractional). */
  readonly shares: readonly number[];
  /** Each partition's room in the queue. */
  readonly queueCaps: readonly number[];
  readonly priority: PriorityPicker | undefined;
  /** Partition index by name. */
  readonly index: ReadonlyMap<string, number>;
}

const schema = z.strictObject({
  max: int(1, 1_000_000),
  queue: int(0, 1_000_000).default(0),
  maxWait: duration(0, 2_147_483_647).optional(),
  partitions: z.record(z.string().min(1), num(0.000001, 1)).optional(),
  priority: z.custom<PriorityPicker>((v) => typeof v === 'function', { error: 'must be a function (ctx) => partition name' }).optional(),
});

/** Checks concurrency-limit options. */
export function resolveConcurrencyLimitOptions(
  options: ConcurrencyLimitOptions | undefined,
  field = 'concurrencyLimit',
): ConcurrencyLimitParams {
  if (options === undefined) throw new InvalidOptionError(`${field}.max`, 'is required: an integer from 1 to 1000000');
  const parsed = parseOptions(schema, options, field);
  const maxWaitMs = parsed.maxWait ?? Number.POSITIVE_INFINITY;
  if (parsed.partitions === undefined) {
    if (parsed.priority !== undefined) throw new InvalidOptionError(`${field}.priority`, 'needs partitions to pick from');
    return {
      max: parsed.max,
      queue: parsed.queue,
      maxWaitMs,
      names: [''],
      shares: [parsed.max],
      queueCaps: [parsed.queue],
      priority: undefined,
      index: new Map([['', 0]]),
    };
  }
  const entries = Object.entries(parsed.partitions);
  const sum = entries.reduce((total, [, share]) => total + share, 0);
  if (entries.length === 0 || sum > 1 + 1e-9) {
    throw new InvalidOptionError(
      `${field}.partitions`,
      `must give at least one share, summing to at most 1 (got ${Math.round(sum * 1000) / 1000})`,
    );
  }
  if (parsed.priority === undefined)
    throw new InvalidOptionError(`${field}.priority`, 'is required with partitions: (ctx) => partition name');
  return {
    max: parsed.max,
    queue: parsed.queue,
    maxWaitMs,
    names: entries.map(([name]) => name),
    shares: entries.map(([, share]) => share * parsed.max),
    queueCaps: entries.map(([, share]) => Math.round(share * parsed.queue)),
    priority: parsed.priority,
    index: new Map(entries.map(([name], i) => [name, i])),
  };
}
