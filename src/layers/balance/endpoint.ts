import type { TimerHandle } from '../../core/clock.js';
import type { Service } from '../../core/service.js';
import type { Endpoint } from '../../discovery/types.js';

/** Where an endpoint stands in the balancer. */
export type EndpointStateName = 'active' | 'ejected' | 'probing' | 'removed';

/**
 * One endpoint of a balancer: its inner service, its load (pending calls and the peak EWMA of
 * its round-trip time) and its health (consecutive failures, ejection). Mutable and owned by
 * one balancer; the indexes let the balancer remove it from its dense arrays in O(1).
 */
export class EndpointState<Req, Res> {
  readonly id: string;
  endpoint: Endpoint;
  readonly service: Service<Req, Res>;
  weight: number;
  state: EndpointStateName = 'active';
  /** Calls in flight. */
  pending = 0;
  /** Peak-EWMA estimate of the round-trip time, in ms. */
  ewma: number;
  /** Clock time of the last estimate update. */
  stamp: number;
  /** Consecutive failures. */
  failures = 0;
  /** Consecutive ejections without a successful probe in between (drives the backoff). */
  ejections = 0;
  /** Clock time at which an ejected endpoint may be probed. */
  ejectedUntil = 0;
  /** @internal the ejection timer. */
  timer: TimerHandle | undefined = undefined;
  /** @internal position in the balancer's ready array, or -1. */
  readyIndex = -1;
  /** @internal position in the balancer's array of all live endpoints, or -1. */
  allIndex = -1;
  /** Calls sent, failures seen: for introspection. */
  calls = 0;
  failuresTotal = 0;

  constructor(endpoint: Endpoint, service: Service<Req, Res>, defaultRttMs: number, now: number) {
    this.id = endpoint.id;
    this.endpoint = endpoint;
    this.service = service;
    this.weight = endpoint.weight;
    this.ewma = defaultRttMs;
    this.stamp = now;
  }

  /**
   * Records a round trip: a sample above the estimate replaces it (the "peak": a slow endpoint
   * is avoided at once), one below is blended in with weight `1 - e^(-elapsed/decay)`, so the
   * estimate follows time, not call counts (Tower's `PeakEwma`).
   */
  observe(now: number, rttMs: number, decayMs: number): void {
    const elapsed = now - this.stamp;
    this.stamp = now;
    if (rttMs > this.ewma) {
      this.ewma = rttMs;
    } else if (elapsed > 0) {
      const w = Math.exp(-elapsed / decayMs);
      this.ewma = this.ewma * w + rttMs * (1 - w);
    }
  }

  /**
   * The load: the estimate, first decayed towards zero for the time since it was last updated
   * (an idle endpoint slowly becomes attractive again, so a once-slow endpoint gets a chance to
   * show it recovered), times pending calls plus one, over the weight.
   */
  peakEwmaCost(now: number, decayMs: number): number {
    const elapsed = now - this.stamp;
    if (elapsed > 0) {
      this.ewma *= Math.exp(-elapsed / decayMs);
      this.stamp = now;
    }
    return (this.ewma * (this.pending + 1)) / this.weight;
  }

  /** The load by pending calls alone. */
  leastRequestCost(): number {
    return (this.pending + 1) / this.weight;
  }

  /** Describes the endpoint for `/endpoints`. */
  dump(now: number): Record<string, unknown> {
    return {
      id: this.id,
      address: this.endpoint.address,
      port: this.endpoint.port,
      weight: this.weight,
      state: this.state,
      ewmaMs: Math.round(this.ewma * 1000) / 1000,
      pending: this.pending,
      failures: this.failures,
      ejectedUntil: this.state === 'ejected' ? this.ejectedUntil : undefined,
      ejectionEndsInMs: this.state === 'ejected' ? Math.max(0, Math.round(this.ejectedUntil - now)) : undefined,
      calls: this.calls,
      failuresTotal: this.failuresTotal,
      metadata: this.endpoint.metadata,
    };
  }
}

let versions = 0;

/**
 * A dense array with O(1) insert and swap-remove, each member knowing its index — how the
 * balancer keeps "ready endpoints" and "all endpoints" so that a pick is two random indexes
 * whatever the number of endpoints. `key` selects which index field of the member to use.
 */
export class DenseSet<Req, Res> {
  readonly items: EndpointState<Req, Res>[] = [];
  readonly #key: 'readyIndex' | 'allIndex';
  /** Changes on every change (unique across sets), so derived structures know to rebuild. */
  version = ++versions;

  constructor(key: 'readyIndex' | 'allIndex') {
    this.#key = key;
  }

  get size(): number {
    return this.items.length;
  }

  add(item: EndpointState<Req, Res>): void {
    if (item[this.#key] >= 0) return;
    item[this.#key] = this.items.length;
    this.items.push(item);
    this.version = ++versions;
  }

  /** Marks the set changed (a member's weight changed). */
  touch(): void {
    this.version = ++versions;
  }

  delete(item: EndpointState<Req, Res>): void {
    const index = item[this.#key];
    if (index < 0) return;
    const last = this.items.pop() as EndpointState<Req, Res>;
    if (last !== item) {
      this.items[index] = last;
      last[this.#key] = index;
    }
    item[this.#key] = -1;
    this.version = ++versions;
  }
}
