import type { Classification } from '../../core/classify.js';
import { InvalidOptionError } from '../../core/errors.js';

/** A class of errors, matched with `instanceof`. */
export type ErrorClass = abstract new (...args: any[]) => unknown;

/**
 * Which failures fall back: a list of error classes (matched with `instanceof`) and
 * classification statuses (`"timeout"`, `"503"`, `"error"`, `"unavailable"`; `"failure"` for
 * any), or a predicate of the failure (the thrown error, or the failed result) and its
 * classification.
 */
export type FallbackOn = readonly (ErrorClass | string)[] | ((failure: unknown, classification: Classification) => boolean);

/** Options of the fallback layer: give `value` or `handler`. */
export interface FallbackOptions<Req = unknown[], Res = unknown> {
  /** The answer to a matching failure. */
  value?: Res;
  /**
   * Computes the answer from the failure (the thrown error, or the failed result) and the
   * request. For a stack over a function, the request is its argument list, the context last.
   */
  handler?: (failure: unknown, req: Req) => Res | Promise<Res>;
  /** Which failures fall back. Default: every failure. */
  on?: FallbackOn;
}

/** Resolved parameters. */
export interface FallbackParams<Req, Res> {
  readonly value: Res | undefined;
  readonly handler: ((failure: unknown, req: Req) => Res | Promise<Res>) | undefined;
  readonly on: { readonly classes: readonly ErrorClass[]; readonly statuses: ReadonlySet<string> } | FallbackOn | undefined;
  /** `on` as `/stack` shows it. */
  readonly describeOn: string | readonly string[];
}

const KNOWN = new Set(['value', 'handler', 'on']);

/** Checks fallback options. */
export function resolveFallbackOptions<Req, Res>(
  options: FallbackOptions<Req, Res> | undefined,
  field = 'fallback',
): FallbackParams<Req, Res> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(field, 'must be an object with a value or a handler');
  }
  const unknown = Object.keys(options).filter((k) => !KNOWN.has(k));
  if (unknown.length > 0)
    throw new InvalidOptionError(field, `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}`);
  const hasValue = 'value' in options;
  if (hasValue === (options.handler !== undefined)) {
    throw new InvalidOptionError(field, 'give exactly one of value (an answer) or handler (a function of the failure and the request)');
  }
  if (options.handler !== undefined && typeof options.handler !== 'function') {
    throw new InvalidOptionError(`${field}.handler`, `must be a function (got ${typeof options.handler})`);
  }
  const on = options.on;
  if (on === undefined) return { value: options.value, handler: options.handler, on: undefined, describeOn: 'failure' };
  if (typeof on === 'function') return { value: options.value, handler: options.handler, on, describeOn: 'custom' };
  if (!Array.isArray(on) || on.length === 0 || on.some((e) => typeof e !== 'function' && (typeof e !== 'string' || e.length === 0))) {
    throw new InvalidOptionError(
      `${field}.on`,
      'must be a non-empty list of error classes and statuses (such as "timeout" or "503"), or a function',
    );
  }
  on.forEach((e, i) => {
    // `failure instanceof e` needs a constructor; an arrow function would throw in place of the failure.
    if (typeof e === 'function' && typeof (e as { prototype?: unknown }).prototype !== 'object') {
      throw new InvalidOptionError(
        `${field}.on.${i}`,
        'must be an error class (a constructor); to decide with a function, give on: (failure, verdict) => boolean',
      );
    }
  });
  const classes = on.filter((e): e is ErrorClass => typeof e === 'function');
  const statuses = new Set(on.filter((e): e is string => typeof e === 'string').map((s) => s.toLowerCase()));
  return {
    value: options.value,
    handler: options.handler,
    on: { classes, statuses },
    describeOn: on.map((e) => (typeof e === 'string' ? e : (e as { name?: string }).name || 'class')),
  };
}

/** Whether a failure matches `on`. */
export function matchesFallback(on: FallbackParams<unknown, unknown>['on'], failure: unknown, verdict: Classification): boolean {
  if (on === undefined) return true;
  if (typeof on === 'function') return on(failure, verdict);
  const matcher = on as { classes: readonly ErrorClass[]; statuses: ReadonlySet<string> };
  if (matcher.statuses.has('failure') || matcher.statuses.has(verdict.status.toLowerCase())) return true;
  for (const cls of matcher.classes) if (failure instanceof cls) return true;
  return false;
}
