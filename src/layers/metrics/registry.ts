import { BUCKET_SLOTS, quantile } from './buckets.js';
import {
  collectFamilies,
  type MetricFamily,
  type PromRegistryLike,
  registerCollectors,
  renderText,
  TEXT_CONTENT_TYPE,
} from './exposition.js';
import { bindOpenTelemetry, type MeterProviderLike, type OtelBinding } from './otel.js';
import { type MetricsScope, type MetricsState, RETRY_OUTCOMES, type RetryOutcome } from './state.js';

/** Latency percentiles in milliseconds; `null` without calls in the window. */
export interface LatencyPercentiles {
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

/** Golden metrics of one service (and scope) — what the dashboard and `sidecarless stat` show. */
export interface ServiceStats {
  readonly service: string;
  /** `call` (effective, what the caller saw) or `attempt` (actual, each attempt). */
  readonly scope: MetricsScope;
  /** Requests settled since start. */
  readonly requests: number;
  /** Requests settled within the window. */
  readonly windowRequests: number;
  /** Share of successes within the window, 0..1; `null` without calls. */
  readonly successRate: number | null;
  /** Requests per second over the window. */
  readonly rps: number;
  /** Latency percentiles over the window, ms. */
  readonly latencyMs: LatencyPercentiles;
  readonly inFlight: number;
  /** Retry decisions since start, by outcome (only for `call` scope). */
  readonly retries: Readonly<Record<RetryOutcome, number>>;
  /** Other layers' events since start (breaker transitions, hedges, timeouts, ...). */
  readonly events: Readonly<Record<string, number>>;
  /** Calls refused or ended by a mesh layer since start, by error code (`ERR_MESH_OVERLOADED`, ...). */
  readonly refusals: Readonly<Record<string, number>>;
  /** Per route, since start. */
  readonly routes: readonly {
    route: string;
    requests: number;
    successRate: number | null;
    inFlight: number;
    latencyMs: LatencyPercentiles;
    /** Retry decisions on this route since start, by outcome (only for `call` scope). */
    retries: Readonly<Record<RetryOutcome, number>>;
  }[];
}

/** Options of {@link MetricsRegistry.snapshot}. */
export interface SnapshotOptions {
  /**
   * The window for rates, success rate and percentiles, ms. Default 10 s. Up to an hour, the
   * window starts within 1/16 of its length (or 500 ms) of the asked time; it counts from a
   * sample taken by an earlier snapshot, so a layer asked for the first time counts from its
   * creation.
   */
  windowMs?: number;
}

interface Sample {
  readonly at: number;
  readonly requests: number;
  readonly successes: number;
  readonly buckets: Float64Array;
}

/** Snapshots closer together than this reuse the last sample instead of storing another. */
const SAMPLE_SPACING_MS = 500;
/**
 * Older samples are thinned so that two neighbours are at most this share of their age apart: a
 * window's baseline is then within 1/16 of its length of the asked start (or within
 * {@link SAMPLE_SPACING_MS}, whichever is more), for a 10 s and a 1 h window alike, from at most
 * about 170 samples per layer (measured polling every 500 ms; fewer when polled less often).
 */
const SAMPLE_PRECISION = 1 / 16;
/** The longest window kept (the admin server's limit); one sample older than it stays as its baseline. */
const MAX_WINDOW_MS = 3_600_000;

function byOutcome(counts: Float64Array): Record<RetryOutcome, number> {
  return Object.fromEntries(RETRY_OUTCOMES.map((o, i) => [o, counts[i] as number])) as Record<RetryOutcome, number>;
}

function percentiles(buckets: ArrayLike<number>): LatencyPercentiles {
  return { p50: quantile(buckets, 0.5), p95: quantile(buckets, 0.95), p99: quantile(buckets, 0.99) };
}

/**
 * Every metrics layer of a process (or of a part of it): what `/metrics`, `/api/stats`, the
 * dashboard and `sidecarless stat` read. Layers join when their stack is built and leave when it
 * is closed. Windowed figures (RPS, success rate, percentiles) are differences between the
 * counters now and a sample taken by an earlier snapshot — no timer runs in the background.
 */
export class MetricsRegistry {
  readonly #states = new Set<MetricsState>();
  readonly #samples = new Map<MetricsState, Sample[]>();
  readonly #onAdd = new Set<(state: MetricsState) => void>();
  /** OpenTelemetry bindings: attached while the registry has layers, so an empty registry is not held by a meter. */
  readonly #otel = new Set<OtelBinding>();

  /** @internal a metrics layer was built. */
  add(state: MetricsState): void {
    this.#states.add(state);
    if (this.#states.size === 1) for (const binding of this.#otel) binding.attach();
    for (const hook of this.#onAdd) hook(state);
  }

  /** @internal a metrics layer was closed. */
  delete(state: MetricsState): void {
    if (!this.#states.delete(state)) return;
    this.#samples.delete(state);
    if (this.#states.size === 0) for (const binding of this.#otel) binding.detach();
  }

  /** The metrics layers, in the order they were built. */
  get states(): readonly MetricsState[] {
    return [...this.#states];
  }

  /** The metric families now. */
  families(): MetricFamily[] {
    return collectFamilies(this.#states);
  }

  /** Prometheus text of every layer, without prom-client. */
  text(): string {
    return renderText(this.families());
  }

  /** Content type of {@link MetricsRegistry.text}. */
  readonly contentType = TEXT_CONTENT_TYPE;

  /**
   * Makes our metrics part of a prom-client `Registry` (read at each of its scrapes). Returns a
   * function that removes them.
   */
  registerWith(prom: PromRegistryLike): () => void {
    return registerCollectors(prom, () => this.families());
  }

  /**
   * A prom-client registry holding our metrics, loading prom-client (an optional peer) only now;
   * `undefined` when it is not installed.
   */
  async promRegistry(): Promise<PromRegistryLike | undefined> {
    let mod: { Registry: new () => PromRegistryLike };
    try {
      const specifier = 'prom-client';
      mod = (await import(specifier)) as typeof mod;
    } catch {
      return undefined;
    }
    const Registry = mod.Registry ?? (mod as unknown as { default: typeof mod }).default.Registry;
    const prom = new Registry();
    this.registerWith(prom);
    return prom;
  }

  /**
   * Publishes our metrics as OpenTelemetry observable instruments on `provider` (default: the
   * global MeterProvider, if one is registered): the same families as {@link MetricsRegistry.text}.
   * The collection callback is registered only while the registry has metrics layers (it is
   * withdrawn when the last one is closed and made again when one is built). Returns a function
   * that stops it for good, or `undefined` when no provider is registered.
   */
  bindOpenTelemetry(provider?: MeterProviderLike): (() => void) | undefined {
    const binding = bindOpenTelemetry(this, provider);
    if (binding === undefined) return undefined;
    this.#otel.add(binding);
    if (this.#states.size > 0) binding.attach();
    return () => {
      this.#otel.delete(binding);
      binding.detach();
    };
  }

  /** @internal calls `hook` for each layer added from now on. */
  onAdd(hook: (state: MetricsState) => void): () => void {
    this.#onAdd.add(hook);
    return () => this.#onAdd.delete(hook);
  }

  /** Golden metrics per (service, scope), calls first; see {@link ServiceStats}. */
  snapshot(options: SnapshotOptions = {}): ServiceStats[] {
    const windowMs = options.windowMs ?? 10_000;
    const groups = new Map<string, MetricsState[]>();
    for (const state of this.#states) {
      const key = `${state.scope === 'call' ? 0 : 1}\u0000${state.service}`;
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [state]);
      else group.push(state);
    }
    const out: ServiceStats[] = [];
    for (const key of [...groups.keys()].sort()) out.push(this.#statsOf(groups.get(key) as MetricsState[], windowMs));
    return out;
  }

  #statsOf(states: MetricsState[], windowMs: number): ServiceStats {
    let requests = 0;
    let windowRequests = 0;
    let windowSuccesses = 0;
    let rps = 0;
    let inFlight = 0;
    const windowBuckets = new Float64Array(BUCKET_SLOTS);
    const retries = byOutcome(new Float64Array(RETRY_OUTCOMES.length)) as Record<RetryOutcome, number>;
    const events: Record<string, number> = {};
    const refusals: Record<string, number> = {};
    const routes: ServiceStats['routes'][number][] = [];
    for (const state of states) {
      const now = state.clock.now();
      const totals = state.totals();
      const base = this.#baseline(state, now, windowMs, totals);
      requests += totals.requests;
      inFlight += totals.inFlight;
      const dr = totals.requests - base.requests;
      windowRequests += dr;
      windowSuccesses += totals.successes - base.successes;
      const elapsed = now - base.at;
      if (elapsed > 0) rps += (dr * 1000) / elapsed;
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        windowBuckets[i] = (windowBuckets[i] as number) + (totals.buckets[i] as number) - (base.buckets[i] as number);
      }
      RETRY_OUTCOMES.forEach((o, i) => {
        retries[o] += state.retries[i] as number;
      });
      for (const [name, count] of state.events) events[name] = (events[name] ?? 0) + count;
      for (const [code, count] of state.refusals) refusals[code] = (refusals[code] ?? 0) + count;
      for (const route of state.routes) {
        let count = 0;
        let ok = 0;
        const buckets = new Float64Array(BUCKET_SLOTS);
        for (const series of route.series) {
          count += series.count;
          if (series.success) ok += series.count;
          for (let i = 0; i < BUCKET_SLOTS; i++) buckets[i] = (buckets[i] as number) + (series.buckets[i] as number);
        }
        routes.push({
          route: route.route,
          requests: count,
          successRate: count ? ok / count : null,
          inFlight: route.inFlight,
          latencyMs: percentiles(buckets),
          retries: byOutcome(route.retries),
        });
      }
    }
    const first = states[0] as MetricsState;
    return {
      service: first.service,
      scope: first.scope,
      requests,
      windowRequests,
      successRate: windowRequests > 0 ? windowSuccesses / windowRequests : null,
      rps,
      latencyMs: percentiles(windowBuckets),
      inFlight,
      retries,
      events,
      refusals,
      routes,
    };
  }

  /**
   * The sample to subtract: the oldest one still inside the window (the layer's creation, as
   * zeros, before any). Stores the current totals as a new sample when the last is old enough.
   */
  #baseline(
    state: MetricsState,
    now: number,
    windowMs: number,
    totals: { requests: number; successes: number; buckets: Float64Array },
  ): Sample {
    let samples = this.#samples.get(state);
    if (samples === undefined) {
      samples = [{ at: state.createdAt, requests: 0, successes: 0, buckets: new Float64Array(BUCKET_SLOTS) }];
      this.#samples.set(state, samples);
    }
    let base = samples[samples.length - 1] as Sample;
    for (const sample of samples) {
      if (sample.at >= now - windowMs) {
        base = sample;
        break;
      }
    }
    // Nothing inside the window: the newest older sample is the best baseline there is.
    if (base.at < now - windowMs) base = samples[samples.length - 1] as Sample;
    const last = samples[samples.length - 1] as Sample;
    if (now - last.at >= SAMPLE_SPACING_MS) {
      samples.push({ at: now, requests: totals.requests, successes: totals.successes, buckets: totals.buckets });
      thin(samples, now);
    }
    return base;
  }
}

/**
 * Keeps `samples` (oldest first) bounded whatever the windows asked: drops those too old for any
 * window, and any sample whose neighbours are close enough for their age without it — recent
 * samples stay dense for short windows, old ones sparse for long ones, so a one-hour window costs
 * no more memory than a one-minute one. Without this a fixed count cut long windows short.
 *
 * @internal exported for its test.
 */
export function thin(samples: { readonly at: number }[], now: number): void {
  while (samples.length > 1 && (samples[1] as { at: number }).at <= now - MAX_WINDOW_MS) samples.shift();
  // The first (the baseline of the longest window) and the last (the newest) always stay.
  for (let i = 1; i < samples.length - 1; ) {
    const before = (samples[i - 1] as { at: number }).at;
    const after = (samples[i + 1] as { at: number }).at;
    if (after - before <= Math.max(SAMPLE_SPACING_MS, (now - after) * SAMPLE_PRECISION)) samples.splice(i, 1);
    else i++;
  }
}

/** The registry metrics layers join unless given another. */
export const defaultMetricsRegistry = new MetricsRegistry();
