import type { Classification } from '../../core/classify.js';
import type { Clock } from '../../core/clock.js';
import type { LayerDescription } from '../../core/service.js';
import { BUCKET_SLOTS, bucketIndex } from './buckets.js';

/** Whether a metrics layer counts logical calls (`call`, Linkerd's "effective") or each attempt (`attempt`, "actual"). */
export type MetricsScope = 'call' | 'attempt';

/** Route or endpoint label used once a stack has more distinct values than its limit. */
export const OVERFLOW = 'overflow';

/** Outcomes of the retry layer, as counted: retries sent and each reason a retry did not happen. */
export const RETRY_OUTCOMES = ['retried', 'budget', 'not_retryable', 'exhausted', 'deadline', 'cancelled'] as const;
export type RetryOutcome = (typeof RETRY_OUTCOMES)[number];

/**
 * The counts of one (route, endpoint, classification, status): a counter and a latency
 * histogram in per-slot counts. Created once per distinct key and then only incremented; its
 * label object is built once, here, and reused at every scrape.
 */
export class Series {
  readonly labels: Readonly<Record<string, string>>;
  readonly success: boolean;
  count = 0;
  /** Sum of latencies, ms. */
  sumMs = 0;
  readonly buckets = new Float64Array(BUCKET_SLOTS);

  constructor(labels: Readonly<Record<string, string>>, success: boolean) {
    this.labels = labels;
    this.success = success;
  }

  observe(ms: number): void {
    this.count++;
    this.sumMs += ms;
    const i = bucketIndex(ms);
    this.buckets[i] = (this.buckets[i] as number) + 1;
  }
}

/** Endpoints a route remembers by identity (see {@link RouteStats}). */
const RECENT = 4;

/**
 * The series of one endpoint of a route, by classification and status, with the last one used
 * cached: a call with the shared `SUCCESS` classification finds its series with one compare.
 */
class EndpointSeries {
  readonly endpoint: string;
  readonly byKey = new Map<string, Series>();
  lastVerdict: Classification | undefined = undefined;
  last: Series | undefined = undefined;

  constructor(endpoint: string) {
    this.endpoint = endpoint;
  }
}

/**
 * One route of one metrics layer: its in-flight gauge and its series. The last endpoint's
 * series are cached, and each endpoint caches its last series, so the common cases (one
 * endpoint, or a balancer alternating among a few, with the shared `SUCCESS` classification)
 * find their series without building a key.
 */
export class RouteStats {
  readonly route: string;
  readonly labels: Readonly<Record<string, string>>;
  inFlight = 0;
  /**
   * Retry outcomes of this route, indexed like {@link RETRY_OUTCOMES} (call scope only). Counted
   * from the retry layer's events, which name the route; the service totals are kept beside them.
   */
  readonly retries = new Float64Array(RETRY_OUTCOMES.length);
  /** Calls of this route a mesh layer refused or ended, by layer and error code (the service totals are kept beside them). */
  readonly refusals = new Map<string, { layer: string; code: string; count: number }>();
  readonly series: Series[] = [];
  readonly #byEndpoint = new Map<string, EndpointSeries>();
  readonly #owner: MetricsState;
  /**
   * The last few endpoints seen and their series, searched by identity before the map: a
   * balancer hands the same id strings call after call, so a pick among a few endpoints costs
   * a couple of pointer compares rather than a hash lookup.
   */
  readonly #recentNames: (string | undefined)[] = [undefined, undefined, undefined, undefined];
  readonly #recentSeries: (EndpointSeries | undefined)[] = [undefined, undefined, undefined, undefined];
  #recentNext = 0;

  constructor(owner: MetricsState, route: string) {
    this.#owner = owner;
    this.route = route;
    this.labels = Object.freeze({ ...owner.labels, route });
  }

  /** Counts one settled call of `ms` milliseconds. */
  record(endpoint: string | undefined, verdict: Classification, ms: number): void {
    const ofEndpoint = this.#recent(endpoint ?? '');
    let series = ofEndpoint.last;
    if (verdict !== ofEndpoint.lastVerdict || series === undefined) {
      series = this.#find(ofEndpoint, verdict);
      ofEndpoint.lastVerdict = verdict;
      ofEndpoint.last = series;
    }
    series.observe(ms);
  }

  #recent(endpoint: string): EndpointSeries {
    const names = this.#recentNames;
    for (let i = 0; i < RECENT; i++) if (names[i] === endpoint) return this.#recentSeries[i] as EndpointSeries;
    const ofEndpoint = this.#endpoint(endpoint);
    const slot = this.#recentNext;
    this.#recentNext = (slot + 1) % RECENT;
    names[slot] = endpoint;
    this.#recentSeries[slot] = ofEndpoint;
    return ofEndpoint;
  }

  #endpoint(endpoint: string): EndpointSeries {
    let ofEndpoint = this.#byEndpoint.get(endpoint);
    if (ofEndpoint === undefined) {
      if (this.#byEndpoint.size >= this.#owner.maxEndpoints && endpoint !== OVERFLOW) return this.#endpoint(OVERFLOW);
      ofEndpoint = new EndpointSeries(endpoint);
      this.#byEndpoint.set(endpoint, ofEndpoint);
    }
    return ofEndpoint;
  }

  #find(ofEndpoint: EndpointSeries, verdict: Classification): Series {
    const key = verdict.kind === 'success' ? `s:${verdict.status}` : `f:${verdict.status}`;
    let series = ofEndpoint.byKey.get(key);
    if (series === undefined) {
      series = new Series(
        Object.freeze({ ...this.labels, endpoint: ofEndpoint.endpoint, classification: verdict.kind, status: verdict.status }),
        verdict.kind === 'success',
      );
      ofEndpoint.byKey.set(key, series);
      this.series.push(series);
    }
    return series;
  }
}

/** What one metrics layer counts; see the module doc in `index.ts`. */
export class MetricsState {
  readonly service: string;
  readonly scope: MetricsScope;
  readonly clock: Clock;
  readonly labels: Readonly<Record<string, string>>;
  readonly maxRoutes: number;
  readonly maxEndpoints: number;
  /** Wall-clock-free creation time on {@link MetricsState.clock}, for rates before a second sample. */
  readonly createdAt: number;
  readonly routes: RouteStats[] = [];
  /** Retry outcomes over every route, indexed like {@link RETRY_OUTCOMES}: the dashboard's and `stat`'s totals. */
  readonly retries = new Float64Array(RETRY_OUTCOMES.length);
  /**
   * Live state of the layers this one wraps (breakers, balancers), read at scrape time only;
   * `undefined` when another metrics layer of the same stack reports it (see `layer-state.ts`).
   */
  layerStates: (() => readonly LayerDescription[]) | undefined = undefined;
  /** Counts of other layers' events (breaker transitions, hedges, timeouts, ...), by event name. */
  readonly events = new Map<string, number>();
  /** Calls a mesh layer refused or ended (shed, rate-limited, circuit open, timed out, ...), by error code. */
  readonly refusals = new Map<string, number>();
  readonly #byRoute = new Map<string, RouteStats>();
  #lastRouteName: string | undefined = undefined;
  #lastRoute: RouteStats | undefined = undefined;

  constructor(service: string, scope: MetricsScope, clock: Clock, maxRoutes: number, maxEndpoints: number) {
    this.service = service;
    this.scope = scope;
    this.clock = clock;
    this.maxRoutes = maxRoutes;
    this.maxEndpoints = maxEndpoints;
    this.labels = Object.freeze({ service, scope });
    this.createdAt = clock.now();
  }

  /** The stats of a route (`undefined` is the unnamed route); resolved once per route, then cached. */
  route(name: string | undefined): RouteStats {
    const last = this.#lastRoute;
    // Small on purpose, so V8 inlines it on the call path; the lookup is a function of its own.
    return name === this.#lastRouteName && last !== undefined ? last : this.#lookUpRoute(name);
  }

  #lookUpRoute(name: string | undefined): RouteStats {
    const key = name ?? '';
    let stats = this.#byRoute.get(key);
    if (stats === undefined) {
      if (this.#byRoute.size >= this.maxRoutes && key !== OVERFLOW) return this.route(OVERFLOW);
      stats = new RouteStats(this, key);
      this.#byRoute.set(key, stats);
      this.routes.push(stats);
    }
    this.#lastRouteName = name;
    this.#lastRoute = stats;
    return stats;
  }

  /** Counts a call of `route` a mesh layer refused: the failure path only, so map updates are fine. */
  countRefusal(route: RouteStats, layer: string, code: string): void {
    // Per route by layer and code (several layers share a code: load-shed, concurrency-limit and
    // adaptive-concurrency all refuse with ERR_MESH_OVERLOADED); the service totals by code.
    const key = `${layer}\u0000${code}`;
    const entry = route.refusals.get(key);
    if (entry === undefined) route.refusals.set(key, { layer, code, count: 1 });
    else entry.count++;
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
  }

  /**
   * Counts a retry decision (`outcome` indexes {@link RETRY_OUTCOMES}) for its route and the
   * service. Only on failed attempts, so the route lookup is no hot-path cost; the route obeys
   * the same limit and overflow as the requests.
   */
  countRetry(route: string | undefined, outcome: number): void {
    const retries = this.route(route).retries;
    retries[outcome] = (retries[outcome] as number) + 1;
    this.retries[outcome] = (this.retries[outcome] as number) + 1;
  }

  /** Counts an event of another layer. */
  countEvent(name: string): void {
    this.events.set(name, (this.events.get(name) ?? 0) + 1);
  }

  /** Totals over every route: requests, successes, in flight and per-slot latency counts. */
  totals(): { requests: number; successes: number; inFlight: number; buckets: Float64Array } {
    let requests = 0;
    let successes = 0;
    let inFlight = 0;
    const buckets = new Float64Array(BUCKET_SLOTS);
    for (const route of this.routes) {
      inFlight += route.inFlight;
      for (const series of route.series) {
        requests += series.count;
        if (series.success) successes += series.count;
        for (let i = 0; i < BUCKET_SLOTS; i++) buckets[i] = (buckets[i] as number) + (series.buckets[i] as number);
      }
    }
    return { requests, successes, inFlight, buckets };
  }
}
