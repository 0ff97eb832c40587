/**
 * The mesh config document, defined once with zod: the TypeScript types come from it
 * ({@link MeshConfig}) and so does the published JSON Schema (`schema/mesh-config.schema.json`,
 * written by `scripts/write-schema.ts`). Field names are the ones mesh users know — Istio and
 * Gateway API for timeouts, retries, fault injection and load balancing, Linkerd for the retry
 * budget and failure accrual — and durations are strings ("250ms", "10s").
 *
 * Every object is strict (an unknown field is a problem, never ignored), every number has a
 * range, and durations are kept as strings in the validated document so a snapshot round-trips
 * through JSON (persistence, the control stream) unchanged.
 *
 * @module
 */

import { isIPv6 } from 'node:net';
import { z } from 'zod';
import { tryParseDuration } from '../core/duration.js';

const DURATION = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/;
const MAX_TIMER_MS = 2_147_483_647;

/** A duration string from `min` to `max` milliseconds, kept as the string. */
function durationString(minMs: number, maxMs: number) {
  const message = `must be a duration string such as "250ms" or "10s", from ${minMs}ms to ${maxMs}ms`;
  return z
    .string({ error: message })
    .regex(DURATION, { error: message })
    .refine(
      (value) => {
        // A value that is not a duration at all was reported by the pattern already.
        if (!DURATION.test(value)) return true;
        const ms = tryParseDuration(value);
        return ms !== undefined && ms >= minMs && ms <= maxMs;
      },
      { error: message },
    );
}

const intIn = (min: number, max: number) => {
  const error = `must be an integer from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const numIn = (min: number, max: number) => {
  const error = `must be a number from ${min} to ${max}`;
  return z.number({ error }).min(min, { error }).max(max, { error });
};
const enumOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `must be one of ${values.map((v) => `"${v}"`).join(', ')}` });

/** Names of services, routes and endpoints' metadata keys: what the builder accepts as a name. */
export const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
// Keys of records (services, routes, metadata, backends) that an object would not keep as its own:
// parsed into a record they vanish, and the document is ACKed without them. A second pattern, so
// the published JSON Schema says it too.
const NOT_RESERVED = /^(?!(?:__proto__|constructor|prototype)$)/;
const notReserved = { error: 'must not be "__proto__", "constructor" or "prototype"' };
const name = z.string().regex(NAME, { error: 'must be 1 to 128 letters, digits, "_", ".", ":" or "-"' }).regex(NOT_RESERVED, notReserved);
// Routes are written as methods and paths ("GET /users/:id"), so they allow more characters.
const routeName = z
  .string()
  .regex(/^[A-Za-z0-9_.:/ *{}-]{1,256}$/, {
    error: 'must be 1 to 256 letters, digits, spaces or "_.:/*{}-"',
  })
  .regex(NOT_RESERVED, notReserved);
// Patterns are written without flags: the published JSON Schema keeps a pattern, not its flags.
const RETRY_ON_WORD = '[A-Za-z0-9][A-Za-z0-9_-]*';
const retryOnWord = z
  .string()
  .regex(new RegExp(`^${RETRY_ON_WORD}$`), { error: 'must be a condition such as "5xx", "reset" or "retryable"' });
// The layer splits at commas and trims each word: no word may be empty.
const retryOnList = z
  .string()
  .max(512, { error: 'must be at most 512 characters' })
  .regex(new RegExp(`^\\s*${RETRY_ON_WORD}\\s*(?:,\\s*${RETRY_ON_WORD}\\s*)*$`), {
    error: 'must be a list of conditions such as "5xx,reset", with no empty word',
  });

/** A refinement: `high` must not be below `low` when both are given (max >= base, ...). */
function ordered<T extends Record<string, unknown>>(low: keyof T & string, high: keyof T & string) {
  return (value: T, ctx: z.RefinementCtx): void => {
    const lo = tryParseDuration(value[low]);
    const hi = tryParseDuration(value[high]);
    if (lo !== undefined && hi !== undefined && hi < lo) {
      ctx.addIssue({ code: 'custom', path: [high], message: `must be at least ${low} (${String(value[low])})` });
    }
  };
}

/** Istio's `retries` (with Envoy's backoff). */
export const retriesSchema = z.strictObject({
  attempts: intIn(0, 100).describe('Retries after the first attempt; 0 disables retries.'),
  retryOn: z
    .union([retryOnWord.array().max(32), retryOnList], {
      error: 'must be a list of conditions such as ["5xx", "reset"] or a comma-separated string "5xx,reset"',
    })
    .optional()
    .describe('What to retry, as Istio names it: "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", ...'),
  backoff: z
    .strictObject({
      kind: enumOf(['exponential', 'constant']).optional(),
      base: durationString(0, 3_600_000).optional(),
      max: durationString(0, 3_600_000).optional(),
      multiplier: numIn(1, 100).optional(),
      jitter: enumOf(['full', 'equal', 'decorrelated', 'none']).optional(),
    })
    .superRefine(ordered('base', 'max'))
    .optional(),
});

/** Linkerd's `retryBudget`. */
export const retryBudgetSchema = z.strictObject({
  retryRatio: numIn(0, 1000).describe('Retries allowed per original request over the window (0.2 = 20%).'),
  minRetriesPerSecond: intIn(0, 1_000_000).optional(),
  ttl: durationString(1000, 60_000).optional(),
});

/** Linkerd's consecutive-failure accrual: a circuit breaker per service or endpoint. */
export const failureAccrualSchema = z
  .strictObject({
    kind: enumOf(['consecutive']).optional(),
    maxFailures: intIn(1, 10_000).describe('Consecutive failures that open the circuit (Linkerd default 7).'),
    minPenalty: durationString(1, 3_600_000).optional(),
    maxPenalty: durationString(1, 3_600_000).optional(),
    jitterRatio: numIn(0, 1).optional(),
  })
  .superRefine(ordered('minPenalty', 'maxPenalty'));

/** Concurrency limit: calls in flight, and how many may queue for a permit. */
export const concurrencyLimitSchema = z.strictObject({
  maxConcurrent: intIn(1, 1_000_000),
  maxPending: intIn(0, 1_000_000).optional(),
});

/** Envoy's local rate limit token bucket. */
export const rateLimitSchema = z.strictObject({
  maxTokens: intIn(1, 1_000_000_000),
  tokensPerFill: intIn(1, 1_000_000_000),
  fillInterval: durationString(1, 86_400_000),
});

/** Istio's `loadBalancer.simple`, plus Linkerd's latency-aware P2C over PeakEWMA. */
export const loadBalancerSchema = z.strictObject({
  simple: enumOf(['PEAK_EWMA', 'LEAST_REQUEST', 'ROUND_ROBIN', 'RANDOM']).describe(
    "The balancer's pick: P2C over peak EWMA, P2C over least requests, round robin, or at random by endpoint weight.",
  ),
});

// host:port, an IPv6 host in brackets; the port from 0 to 65535, in the pattern so that the
// published JSON Schema says it too. What is in brackets holds a colon (the lookahead), as every
// IPv6 address does: a pattern cannot check the rest, the refinement below does.
const PORT = '(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d{2}|6[0-4]\\d{3}|[1-5]\\d{4}|0\\d{4}|\\d{1,4})';
const ADDRESS = new RegExp(`^(?:\\[((?=[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45})\\]|([A-Za-z0-9_.-]{1,253})):(${PORT})$`);

/**
 * The host (an IPv6 host without its brackets) and port of an endpoint address the schema
 * accepted, or `undefined` for one it would refuse.
 */
export function hostPort(address: string): { host: string; port: number } | undefined {
  const match = ADDRESS.exec(address);
  if (match === null) return undefined;
  return { host: (match[1] ?? match[2]) as string, port: Number(match[3]) };
}

/** One concrete backend. */
export const endpointSchema = z.strictObject({
  address: z
    .string()
    .regex(ADDRESS, { error: 'must be "host:port" with a port from 0 to 65535, an IPv6 host in brackets ("[::1]:80")' })
    // The pattern lets only hex, ":" and "." inside brackets; what is there must be an IPv6 address.
    .refine((address) => !address.startsWith('[') || isIPv6(hostPort(address)?.host ?? '::'), {
      error: 'must have an IPv6 address inside the brackets ("[::1]:80")',
    })
    .describe('host:port of the backend; an IPv6 host in brackets.'),
  weight: intIn(1, 1_000_000).optional(),
  metadata: z.record(name, z.string().max(1024)).optional(),
});

// Discovery keeps endpoints by host:port, so an endpoint given twice would lose one silently.
const endpoints = endpointSchema
  .array()
  .max(10_000)
  .superRefine((list, ctx) => {
    const first = new Map<string, number>();
    list.forEach((endpoint, i) => {
      const at = hostPort(endpoint.address);
      if (at === undefined) return;
      const id = `${at.host.toLowerCase()} ${at.port}`;
      const seen = first.get(id);
      if (seen === undefined) first.set(id, i);
      else ctx.addIssue({ code: 'custom', path: [i, 'address'], message: `repeats the host and port of endpoints.${seen}` });
    });
  });

/** Gateway API `backendRefs` with weights: the traffic split. */
export const backendRefSchema = z.strictObject({
  // The split reads its weights as a record by name, where these would be dropped or worse.
  name: name.describe('A backend of the split; "primary" is the service the split wraps.'),
  weight: intIn(0, 1_000_000),
});

// Weights are kept by name, so a name given twice would lose one of its weights silently.
const backendRefs = backendRefSchema
  .array()
  .min(1)
  .max(64)
  .superRefine((refs, ctx) => {
    const seen = new Set<string>();
    refs.forEach((ref, i) => {
      if (seen.has(ref.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `names backend "${ref.name}" a second time` });
      seen.add(ref.name);
    });
  })
  .describe('The split: a share of calls per backend, by weight.');

const percentage = numIn(0, 100).describe('Share of calls affected, 0 to 100.');

/** Istio's `fault`. */
export const faultSchema = z.strictObject({
  delay: z.strictObject({ percentage, fixedDelay: durationString(0, 3_600_000) }).optional(),
  abort: z.strictObject({ percentage, httpStatus: intIn(200, 599) }).optional(),
});

const policies = {
  timeout: durationString(0, MAX_TIMER_MS).optional().describe('Deadline of the whole call; "0s" disables it.'),
  perTryTimeout: durationString(1, MAX_TIMER_MS).optional().describe('Deadline of each attempt.'),
  retries: retriesSchema.optional(),
  retryBudget: retryBudgetSchema.optional(),
  fault: faultSchema.optional(),
};

/** What a route may override. */
export const routeSchema = z.strictObject({ ...policies, backendRefs: backendRefs.optional() });

/** One named service: its policies, endpoints, split and per-route overrides. */
export const serviceSchema = z.strictObject({
  ...policies,
  failureAccrual: failureAccrualSchema.optional(),
  concurrencyLimit: concurrencyLimitSchema.optional(),
  rateLimit: rateLimitSchema.optional(),
  loadBalancer: loadBalancerSchema.optional(),
  endpoints: endpoints.optional(),
  backendRefs: backendRefs.optional(),
  routes: z.record(routeName, routeSchema).optional(),
});

/** The whole document. */
export const meshConfigSchema = z
  .strictObject({
    $schema: z.string().max(2048).optional(),
    services: z.record(name, serviceSchema),
  })
  .describe('sidecarless mesh config: per named service and route, the policies every process applies.');

/** A validated mesh config document. */
export type MeshConfig = z.output<typeof meshConfigSchema>;
/** One service's config. */
export type ServiceConfig = z.output<typeof serviceSchema>;
/** One route's config. */
export type RouteConfig = z.output<typeof routeSchema>;
/** The JSON Schema of the document, for editors and `$schema`. */
export function meshConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(meshConfigSchema, { target: 'draft-2020-12', io: 'input' }) as Record<string, unknown>;
}
