/**
 * Option checking, with zod: every builder option and config field is checked when the stack is
 * built (or a snapshot arrives), and every problem is reported with its field and what is
 * allowed — never a silent default.
 *
 * @module
 */

import { z } from 'zod';
import { tryParseDuration } from './duration.js';
import { InvalidOptionError, type OptionProblem } from './errors.js';

function show(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
  } catch {
    return String(value);
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** Turns zod issues into problems named by dotted field path, each saying what it got. */
export function problemsOf(error: z.ZodError, root: unknown, prefix: string): OptionProblem[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String);
    const field = [prefix, ...path].filter(Boolean).join('.') || prefix || '(root)';
    if (issue.code === 'unrecognized_keys') {
      return { field, message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` };
    }
    const got = valueAt(root, issue.path);
    return { field, message: `${issue.message} (got ${show(got)})` };
  });
}

/** Parses `value` with `schema`, throwing {@link InvalidOptionError} listing every problem. */
export function parseOptions<S extends z.ZodType>(schema: S, value: unknown, field: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InvalidOptionError(problemsOf(result.error, value, field));
}

/** An integer in [min, max]. */
export const int = (min: number, max: number) =>
  z
    .number({ error: `must be an integer from ${min} to ${max}` })
    .int({ error: `must be an integer from ${min} to ${max}` })
    .min(min, { error: `must be an integer from ${min} to ${max}` })
    .max(max, { error: `must be an integer from ${min} to ${max}` });

/** A finite number in [min, max]. */
export const num = (min: number, max: number) =>
  z
    .number({ error: `must be a number from ${min} to ${max}` })
    .min(min, { error: `must be a number from ${min} to ${max}` })
    .max(max, { error: `must be a number from ${min} to ${max}` });

/** A duration string or milliseconds, output as milliseconds, optionally bounded. */
export const duration = (minMs = 0, maxMs = Number.POSITIVE_INFINITY) => {
  const range = maxMs === Number.POSITIVE_INFINITY ? `at least ${minMs}ms` : `from ${minMs}ms to ${maxMs}ms`;
  const message = `must be a duration such as "250ms" or "10s" (or milliseconds), ${range}`;
  return z.union([z.number(), z.string()], { error: message }).transform((value, ctx) => {
    const ms = tryParseDuration(value);
    if (ms === undefined || ms < minMs || ms > maxMs) {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return ms;
  });
};
