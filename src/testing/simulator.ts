/**
 * The policy simulator: runs a stack against a described backend — how often it fails, how
 * long it takes, when it is down — in virtual time, for thousands of calls in a second of real
 * time, and reports what the callers would see: success rate, latency percentiles, attempts
 * per call, retries and hedges sent, and how often the retry budget said no. Use it to choose
 * retry attempts, budgets, timeouts and hedge delays before production does it for you.
 *
 * Everything is deterministic: time is a {@link VirtualClock}, and the one random source
 * (backend draws, arrivals, and the stack's own jitter and sampling) is seeded.
 *
 * ```ts
 * const report = await simulate(new ServiceBuilder().retry({ attempts: 3 }), {
 *   backend: { failureRate: 0.2, latency: { kind: 'lognormal', median: '20ms', sigma: 0.5 } },
 *   calls: 10_000,
 *   concurrency: 50,
 * });
 * report.successRate; // ≈ 1 - 0.2^4
 * ```
 *
 * Prior art: Finagle's and Linkerd's retry-budget simulations; "Performance Modeling and
 * Design of Computer Systems" (Harchol-Balter) for the arrival and latency models.
 *
 * @module
 */

import { z } from 'zod';
import type { ServiceBuilder } from '../builder/service-builder.js';
import type { CallContext } from '../core/context.js';
import type { Duration } from '../core/duration.js';
import { InvalidOptionError } from '../core/errors.js';
import { duration, int, num, parseOptions } from '../core/validate.js';
import { flushMicrotasks, VirtualClock } from './virtual-clock.js';

/** How long the backend takes to answer one attempt. */
export type LatencyModel =
  | { kind: 'constant'; value: Duration }
  | { kind: 'uniform'; min: Duration; max: Duration }
  | { kind: 'exponential'; mean: Duration }
  | { kind: 'lognormal'; median: Duration; sigma: number };

/** A stretch of virtual time (from the start of the run) in which the backend behaves otherwise. */
export interface OutageWindow {
  from: Duration;
  to: Duration;
  /** Share of attempts failing during the window. Default 1 (down). */
  failureRate?: number;
  /** Latency during the window. Default: the backend's. */
  latency?: LatencyModel;
}

/** The simulated backend. */
export interface BackendModel {
  /** Share of attempts that fail, 0 to 1. Default 0. */
  failureRate?: number;
  /** Default constant 0 ms. */
  latency?: LatencyModel;
  outages?: readonly OutageWindow[];
  /** Makes the error of a failed attempt. Default: a connection reset (retryable by default). */
  error?: () => unknown;
}

/** What to run. Give `rate` (open loop) or `concurrency` (closed loop, the default with 1). */
export interface SimulationOptions {
  backend: BackendModel;
  /** Logical calls to make. */
  calls: number;
  /** Open loop: calls per second, Poisson arrivals, whatever the stack's latency. */
  rate?: number;
  /** Closed loop: this many callers, each making its next call when its last one settles. */
  concurrency?: number;
  /** Seed of the random source. Default 1. */
  seed?: number;
}

/** What the callers saw. Latencies are in virtual milliseconds, over every call. */
export interface SimulationReport {
  readonly calls: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly successRate: number;
  readonly latency: { readonly p50: number; readonly p90: number; readonly p99: number; readonly max: number; readonly mean: number };
  /** Attempts that reached the backend. */
  readonly attempts: { readonly total: number; readonly perCall: number };
  /** Retries sent (`retry` events). */
  readonly retries: number;
  /** Hedges sent (`hedge` events). */
  readonly hedges: number;
  /** Retries and hedges the budget refused. */
  readonly budget: { readonly retriesRefused: number; readonly hedgesRefused: number };
  /** Failed calls by error code (or name). */
  readonly errors: Readonly<Record<string, number>>;
  /** Virtual time the run took. */
  readonly durationMs: number;
}

const latencySchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({ kind: z.literal('constant'), value: duration() }),
    z.strictObject({ kind: z.literal('uniform'), min: duration(), max: duration() }),
    z.strictObject({ kind: z.literal('exponential'), mean: duration() }),
    z.strictObject({ kind: z.literal('lognormal'), median: duration(), sigma: num(0, 10) }),
  ],
  { error: 'must be a latency model: constant, uniform, exponential or lognormal' },
);

const schema = z.strictObject({
  backend: z.strictObject({
    failureRate: num(0, 1).default(0),
    latency: latencySchema.optional(),
    outages: z
      .array(z.strictObject({ from: duration(), to: duration(), failureRate: num(0, 1).default(1), latency: latencySchema.optional() }))
      .default([]),
    error: z.custom<() => unknown>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
  }),
  calls: int(1, 10_000_000),
  rate: num(0.001, 1e9).optional(),
  concurrency: int(1, 100_000).optional(),
  seed: int(0, 2 ** 32 - 1).default(1),
});

type Latency = z.output<typeof latencySchema>;

/** mulberry32: a small, fast, seeded generator of uniform numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sampleLatency(model: Latency | undefined, random: () => number): number {
  if (model === undefined) return 0;
  switch (model.kind) {
    case 'constant':
      return model.value;
    case 'uniform':
      return model.min + random() * (model.max - model.min);
    case 'exponential':
      return -Math.log(1 - random()) * model.mean;
    case 'lognormal': {
      // Box–Muller: a standard normal from two uniforms.
      const normal = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      return model.median * Math.exp(model.sigma * normal);
    }
  }
}

function simulatedFailure(): Error {
  return Object.assign(new Error('simulated failure'), { code: 'ECONNRESET' });
}

function errorKey(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : typeof error;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

/**
 * Runs `stack` over the described backend in virtual time and reports what callers saw. The
 * stack gets its own {@link VirtualClock} and the seeded random source; a `RetryBudget`
 * instance passed to it must be built on no clock of its own to follow virtual time (give
 * budget options instead).
 */
export async function simulate(stack: ServiceBuilder, options: SimulationOptions): Promise<SimulationReport> {
  const o = parseOptions(schema, options, 'simulation');
  if (o.rate !== undefined && o.concurrency !== undefined) {
    throw new InvalidOptionError('simulation.rate', 'give either rate (open loop) or concurrency (closed loop), not both');
  }
  for (const [i, w] of o.backend.outages.entries()) {
    if (w.to <= w.from)
      throw new InvalidOptionError(`simulation.backend.outages.${i}.to`, `must be after from (${w.from}ms) (got ${w.to}ms)`);
  }
  const clock = new VirtualClock();
  const random = seededRandom(o.seed);
  const backend = o.backend;
  const makeError = backend.error ?? simulatedFailure;
  let attempts = 0;

  const serve = (ctx: CallContext): Promise<string> => {
    attempts++;
    const t = clock.now();
    const outage = backend.outages.find((w) => w.from <= t && t < w.to);
    const fails = random() < (outage?.failureRate ?? backend.failureRate);
    const latency = sampleLatency(outage?.latency ?? backend.latency, random);
    return new Promise<string>((resolve, reject) => {
      const signal = ctx.signal;
      const onAbort = (): void => {
        clock.clearTimer(timer);
        reject(signal.reason);
      };
      const finish = (): void => {
        signal.removeEventListener('abort', onAbort);
        if (fails) reject(makeError());
        else resolve('ok');
      };
      const timer = clock.setTimer(finish, latency);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  };

  const fn = stack.with({ clock, random, registry: false }).service(serve);
  let retries = 0;
  let hedges = 0;
  let retriesRefused = 0;
  let hedgesRefused = 0;
  const subscriptions = [
    fn.events.on('retry', () => retries++),
    fn.events.on('retry-skipped', (e) => {
      if (e.reason === 'budget') retriesRefused++;
    }),
    fn.events.on('hedge', () => hedges++),
    fn.events.on('hedge-skipped', (e) => {
      if (e.reason === 'budget') hedgesRefused++;
    }),
  ];

  const latencies = new Float64Array(o.calls);
  const errors: Record<string, number> = {};
  let issued = 0;
  let completed = 0;
  let succeeded = 0;
  const one = async (): Promise<void> => {
    const started = clock.now();
    try {
      await fn();
      succeeded++;
    } catch (error) {
      const key = errorKey(error);
      errors[key] = (errors[key] ?? 0) + 1;
    }
    latencies[completed++] = clock.now() - started;
  };

  if (o.rate !== undefined) {
    const meanGapMs = 1000 / o.rate;
    const arrive = (): void => {
      issued++;
      void one();
      if (issued < o.calls) clock.setTimer(arrive, -Math.log(1 - random()) * meanGapMs);
    };
    arrive();
  } else {
    const worker = async (): Promise<void> => {
      while (issued < o.calls) {
        issued++;
        await one();
      }
    };
    for (let i = 0; i < (o.concurrency ?? 1); i++) void worker();
  }

  while (completed < o.calls) {
    await clock.runAll();
    await flushMicrotasks();
    if (completed < o.calls && clock.pendingTimers === 0) {
      throw new Error(`simulation stalled: ${o.calls - completed} calls pending with no timer left to fire`);
    }
  }
  for (const subscription of subscriptions) subscription.dispose();
  await fn.close();

  const sorted = latencies.sort();
  let total = 0;
  for (const ms of sorted) total += ms;
  return {
    calls: o.calls,
    succeeded,
    failed: o.calls - succeeded,
    successRate: succeeded / o.calls,
    latency: {
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? 0,
      mean: total / o.calls,
    },
    attempts: { total: attempts, perCall: attempts / o.calls },
    retries,
    hedges,
    budget: { retriesRefused, hedgesRefused },
    errors,
    durationMs: clock.now(),
  };
}
