/**
 * The inbound side shared by the Express and Fastify integrations: one stack per server —
 * readiness gate (`fail` mode), load shedding over a concurrency limit or an adaptive limit,
 * and the request's deadline (the incoming `x-sidecarless-deadline-ms` or `grpc-timeout`,
 * capped by `timeout`) — around the framework's own handling of the request. Golden metrics are
 * recorded per route pattern when the response finishes (the pattern is only known once the
 * framework routed the request) into a metrics state the admin endpoint reads.
 *
 * @module
 */

import { z } from 'zod';
import { ServiceBuilder } from '../../builder/service-builder.js';
import type { Classifier } from '../../core/classify.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { CallContext } from '../../core/context.js';
import type { Duration } from '../../core/duration.js';
import { NotReadyError, OverloadedError, TimeoutError } from '../../core/errors.js';
import type { Service } from '../../core/service.js';
import { duration, int, parseOptions } from '../../core/validate.js';
import type { AdaptiveConcurrencyOptions } from '../../layers/adaptive-concurrency/index.js';
import type { ConcurrencyLimitOptions } from '../../layers/concurrency-limit/index.js';
import { defaultMetricsRegistry, MetricsRegistry, MetricsState } from '../../layers/metrics/index.js';
import { Readiness } from '../../layers/readiness/index.js';
import { DEADLINE_HEADER, httpClassifier, parseDeadlineHeader } from './http.js';

/** Options of the Express middleware and the Fastify plugin. */
export interface InboundOptions {
  /** Service label of the metrics. Default `"inbound"`. */
  name?: string;
  /** Requests handled at once before the rest are shed (503 + `Retry-After`). Default 1000. */
  concurrency?: number | ConcurrencyLimitOptions;
  /** An adaptive limit (Gradient2/AIMD) instead of the fixed one. */
  adaptive?: AdaptiveConcurrencyOptions | true;
  /** Longest a request may take (504 when it passes); the incoming deadline header can only shorten it. */
  timeout?: Duration;
  /** While not ready, every request but the admin routes gets 503. */
  readiness?: Readiness;
  /** Seconds sent in `Retry-After` with a 503. Default 1. */
  retryAfterSeconds?: number;
  /** Where the per-route golden metrics go; `false` for none. Default the shared metrics registry. */
  metrics?: MetricsRegistry | false;
  /** Header read for the caller's remaining deadline (ms). `grpc-timeout` is read too. */
  deadlineHeader?: string;
  /** Clock (tests). */
  clock?: Clock;
}

const schema = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/, { error: 'must be 1 to 128 letters, digits, "_", ".", ":" or "-"' })
    .default('inbound'),
  concurrency: z
    .union([int(1, 1_000_000), z.object({ max: z.number() }).passthrough()], {
      error: 'must be an integer from 1 to 1000000 or concurrency-limit options',
    })
    .default(1000),
  adaptive: z.union([z.literal(true), z.object({}).passthrough()], { error: 'must be true or adaptive-concurrency options' }).optional(),
  timeout: duration(1, 2_147_483_647).optional(),
  readiness: z.instanceof(Readiness, { error: 'must be a Readiness' }).optional(),
  retryAfterSeconds: int(0, 86_400).default(1),
  metrics: z.union([z.literal(false), z.instanceof(MetricsRegistry)], { error: 'must be a MetricsRegistry or false' }).optional(),
  deadlineHeader: z
    .string()
    .regex(/^[a-z0-9-]+$/, { error: 'must be a lowercase header name' })
    .default(DEADLINE_HEADER),
  clock: z.custom<Clock>((v) => typeof (v as Clock)?.now === 'function', { error: 'must be a Clock' }).optional(),
});

/** What the framework adapter does for one request. */
export interface InboundExchange {
  /** Runs the rest of the framework's handling; resolves with the status once the response finished. */
  run(ctx: CallContext): Promise<number>;
}

/** How a refused or timed-out request should be answered. */
export interface Refusal {
  readonly status: 503 | 504;
  readonly retryAfterSeconds: number | undefined;
  readonly message: string;
}

/** A status carrier for the classifier. */
interface Outcome {
  statusCode: number;
}

class ExchangeService implements Service<InboundExchange, Outcome> {
  async call(exchange: InboundExchange, ctx: CallContext): Promise<Outcome> {
    return { statusCode: await exchange.run(ctx) };
  }
}

/** One server's inbound stack; see the module doc. */
export class Inbound {
  readonly readiness: Readiness | undefined;
  readonly metrics: MetricsState | undefined;
  readonly #stack: Service<InboundExchange, Outcome>;
  readonly #clock: Clock;
  readonly #classifier: Classifier<unknown> = httpClassifier();
  readonly #registry: MetricsRegistry | undefined;
  readonly #retryAfter: number;
  readonly #header: string;

  constructor(options: InboundOptions = {}, field = 'inbound') {
    const parsed = parseOptions(schema, options, field);
    this.#clock = parsed.clock ?? systemClock;
    this.#retryAfter = parsed.retryAfterSeconds;
    this.#header = parsed.deadlineHeader;
    this.readiness = parsed.readiness;
    let builder = new ServiceBuilder({ name: parsed.name, clock: this.#clock, classifier: this.#classifier, registry: false });
    if (parsed.readiness !== undefined) builder = builder.readiness(parsed.readiness, { mode: 'fail' });
    builder = builder.loadShed();
    if (options.adaptive !== undefined) builder = builder.adaptiveConcurrency(options.adaptive === true ? {} : options.adaptive);
    else
      builder = builder.concurrencyLimit(
        typeof options.concurrency === 'object' ? options.concurrency : { max: parsed.concurrency as number },
      );
    // Always present: it enforces the incoming deadline even when no timeout is configured.
    builder = builder.timeout(parsed.timeout ?? 0);
    this.#stack = builder.build(new ExchangeService());
    this.#registry = parsed.metrics === false ? undefined : (parsed.metrics ?? defaultMetricsRegistry);
    if (this.#registry !== undefined) {
      this.metrics = new MetricsState(parsed.name, 'call', this.#clock, 100, 1);
      this.#registry.add(this.metrics);
    }
  }

  /** The clock-time deadline a request carries, or `undefined`. */
  deadlineOf(headers: Record<string, string | string[] | undefined>): number | undefined {
    const ms = parseDeadlineHeader(headers[this.#header], headers['grpc-timeout']);
    return ms === undefined ? undefined : this.#clock.now() + ms;
  }

  /** Whether the readiness gate is open (always, without one). */
  get ready(): boolean {
    return this.readiness?.isReady ?? true;
  }

  /**
   * Runs one request through the stack. Resolves with `undefined` when the framework answered,
   * or with the refusal to send (shed, not ready, deadline passed); other errors reject.
   */
  async handle(exchange: InboundExchange, ctx: CallContext): Promise<Refusal | undefined> {
    try {
      await this.#stack.call(exchange, ctx);
      return undefined;
    } catch (error) {
      if (error instanceof OverloadedError) return { status: 503, retryAfterSeconds: this.#retryAfter, message: 'overloaded' };
      if (error instanceof NotReadyError) return { status: 503, retryAfterSeconds: this.#retryAfter, message: 'not ready' };
      if (error instanceof TimeoutError) return { status: 504, retryAfterSeconds: undefined, message: 'deadline exceeded' };
      throw error;
    }
  }

  /** Records a finished request under its route pattern (`undefined`: no route matched). */
  record(route: string | undefined, statusCode: number, startedAt: number): void {
    this.metrics
      ?.route(route ?? 'unmatched')
      .record(undefined, this.#classifier.classifyResult({ statusCode }), this.#clock.now() - startedAt);
  }

  /** Clock reading for {@link Inbound.record}. */
  now(): number {
    return this.#clock.now();
  }

  /** Leaves the metrics registry and releases the stack. */
  async close(): Promise<void> {
    if (this.metrics !== undefined) this.#registry?.delete(this.metrics);
    await this.#stack.close?.();
  }
}

export { CallContext };

/**
 * The URL as the admin handler mounted at `base` (the prefix without a trailing slash) sees it —
 * `/ready?x=1` of `/_mesh/ready?x=1`, `/` of `/_mesh` — or `undefined` when the path is neither
 * the prefix nor under it (`/_meshy` is the app's, as for the admin handler itself).
 */
export function underPrefix(url: string, base: string): string | undefined {
  if (!url.startsWith(base)) return undefined;
  const rest = url.slice(base.length);
  if (rest === '') return '/';
  if (rest[0] === '/') return rest;
  return rest[0] === '?' ? `/${rest}` : undefined;
}
