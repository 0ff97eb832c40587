import { z } from 'zod';
import { InvalidOptionError, type OptionProblem } from '../../core/errors.js';
import { num, parseOptions } from '../../core/validate.js';

/** The name of the service the split layer wraps, among its backends. */
export const PRIMARY = 'primary';

/**
 * A routing rule: when the request attribute (or header) matches, the call goes to `backend`,
 * whatever the weights say. Exactly one of `header` and `attribute`; `equals` or `matches`
 * (a regular expression) or neither (the value is present).
 */
export interface SplitRule {
  backend: string;
  /** A header, read from `ctx.attributes.headers` (a `Headers` or a record with lowercase names). */
  header?: string;
  /** A call attribute, read from `ctx.attributes[attribute]`. */
  attribute?: string;
  equals?: string;
  matches?: string;
}

/** Options of the split layer (live-changeable as a whole). */
export interface SplitOptions {
  /** Relative weight per backend; `primary` is the wrapped service. Default `{ primary: 1 }`. */
  weights?: Record<string, number>;
  /** Rules tried in order before the weights (A/B by header, tenant pinning). */
  rules?: readonly SplitRule[];
}

/** One compiled rule. */
export interface CompiledRule {
  readonly header: boolean;
  readonly key: string;
  readonly equals: string | undefined;
  readonly regex: RegExp | undefined;
  readonly target: number;
}

/** Resolved parameters: backends by index (0 is the primary), cumulative weights, rules. */
export interface SplitParams {
  readonly weights: readonly number[];
  readonly cumulative: Float64Array;
  readonly total: number;
  /** The only backend with weight, or -1 when several share the traffic. */
  readonly only: number;
  readonly rules: readonly CompiledRule[];
}

const ruleSchema = z.strictObject({
  backend: z.string({ error: 'must be a backend name' }),
  header: z.string().min(1).optional(),
  attribute: z.string().min(1).optional(),
  equals: z.string().optional(),
  matches: z.string().optional(),
});
const schema = z.strictObject({
  weights: z.record(z.string(), num(0, 1_000_000)).optional(),
  rules: z.array(ruleSchema, { error: 'must be a list of rules' }).optional(),
});

/** Checks split options against the backend names (index 0 is `primary`). */
export function resolveSplitOptions(options: SplitOptions | undefined, names: readonly string[], field = 'split'): SplitParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  const problems: OptionProblem[] = [];
  const indexOf = (name: string, at: string): number => {
    const index = names.indexOf(name);
    if (index < 0) problems.push({ field: at, message: `must be one of ${names.map((n) => `"${n}"`).join(', ')} (got "${name}")` });
    return index;
  };
  const weights = names.map(() => 0);
  const given = parsed.weights ?? { [PRIMARY]: 1 };
  for (const [name, weight] of Object.entries(given)) {
    const index = indexOf(name, `${field}.weights.${name}`);
    if (index >= 0) weights[index] = weight;
  }
  const total = weights.reduce((a, b) => a + b, 0);
  if (total <= 0 && problems.length === 0)
    problems.push({ field: `${field}.weights`, message: 'must give at least one backend a weight above 0' });
  const rules: CompiledRule[] = [];
  (parsed.rules ?? []).forEach((rule, i) => {
    const at = `${field}.rules.${i}`;
    const target = indexOf(rule.backend, `${at}.backend`);
    if ((rule.header === undefined) === (rule.attribute === undefined)) {
      problems.push({ field: at, message: 'must have exactly one of "header" and "attribute"' });
      return;
    }
    if (rule.equals !== undefined && rule.matches !== undefined) {
      problems.push({ field: at, message: 'must have at most one of "equals" and "matches"' });
      return;
    }
    let regex: RegExp | undefined;
    if (rule.matches !== undefined) {
      try {
        regex = new RegExp(rule.matches);
      } catch (error) {
        problems.push({ field: `${at}.matches`, message: `must be a regular expression (${(error as Error).message})` });
      }
    }
    const header = rule.header !== undefined;
    rules.push({
      header,
      key: header ? (rule.header as string).toLowerCase() : (rule.attribute as string),
      equals: rule.equals,
      regex,
      target,
    });
  });
  if (problems.length > 0) throw new InvalidOptionError(problems);
  const cumulative = new Float64Array(weights.length);
  let sum = 0;
  weights.forEach((w, i) => {
    sum += w;
    cumulative[i] = sum;
  });
  const withWeight = weights.filter((w) => w > 0).length;
  return { weights, cumulative, total, only: withWeight === 1 ? weights.findIndex((w) => w > 0) : -1, rules };
}
