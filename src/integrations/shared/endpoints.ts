/**
 * A small latency-aware endpoint picker for the integrations: power of two choices over
 * peak-EWMA round-trip time times outstanding requests (Finagle's and linkerd2-proxy's P2C
 * PeakEWMA, with the same 30 ms seed and 10 s decay). It is the integrations' own stand-in until
 * the balance layer of `src/layers/balance` can be composed here; it balances one request at a
 * time and needs no discovery.
 *
 * @module
 */

import type { Clock } from '../../core/clock.js';
import { InvalidOptionError } from '../../core/errors.js';

/** Load state of one endpoint. */
export class EndpointLoad<T> {
  readonly address: string;
  /** What the integration uses to reach it: a base URL, a gRPC client, ... */
  readonly target: T;
  /** Requests in flight. */
  outstanding = 0;
  /** Peak-EWMA round-trip time, ms. */
  rttMs: number;
  #stampedAt: number;

  constructor(address: string, target: T, seedMs: number, now: number) {
    this.address = address;
    this.target = target;
    this.rttMs = seedMs;
    this.#stampedAt = now;
  }

  /** Load as P2C compares it: RTT times (outstanding + 1). */
  get load(): number {
    return this.rttMs * (this.outstanding + 1);
  }

  /** Folds one round trip in: a slower sample replaces the average at once (the peak). */
  observe(rttMs: number, now: number, decayMs: number): void {
    const elapsed = Math.max(0, now - this.#stampedAt);
    this.#stampedAt = now;
    if (rttMs > this.rttMs) this.rttMs = rttMs;
    else {
      const weight = Math.exp(-elapsed / decayMs);
      this.rttMs = this.rttMs * weight + rttMs * (1 - weight);
    }
  }
}

/** Options of an {@link EndpointPicker}. */
export interface EndpointPickerOptions {
  /** RTT assumed for an endpoint never measured, ms. Default 30. */
  seedRttMs?: number;
  /** How fast old RTT samples fade, ms. Default 10,000. */
  decayMs?: number;
}

/** Picks one of a fixed set of endpoints per request; see the module doc. */
export class EndpointPicker<T> {
  readonly endpoints: readonly EndpointLoad<T>[];
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #decayMs: number;

  constructor(targets: ReadonlyMap<string, T>, clock: Clock, random: () => number, options: EndpointPickerOptions = {}) {
    if (targets.size === 0) throw new InvalidOptionError('endpoints', 'must list at least one endpoint');
    const now = clock.now();
    const seed = options.seedRttMs ?? 30;
    this.endpoints = [...targets].map(([address, target]) => new EndpointLoad(address, target, seed, now));
    this.#clock = clock;
    this.#random = random;
    this.#decayMs = options.decayMs ?? 10_000;
  }

  /** Chooses the less loaded of two random endpoints and counts a request on it. */
  acquire(): EndpointLoad<T> {
    const list = this.endpoints;
    const n = list.length;
    let chosen = list[0] as EndpointLoad<T>;
    if (n > 1) {
      const i = Math.floor(this.#random() * n);
      let j = Math.floor(this.#random() * (n - 1));
      if (j >= i) j++;
      const a = list[i] as EndpointLoad<T>;
      const b = list[j] as EndpointLoad<T>;
      chosen = a.load <= b.load ? a : b;
    }
    chosen.outstanding++;
    return chosen;
  }

  /** Ends a request started at `startedAt` (clock ms) on `endpoint`. */
  release(endpoint: EndpointLoad<T>, startedAt: number): void {
    endpoint.outstanding--;
    const now = this.#clock.now();
    endpoint.observe(now - startedAt, now, this.#decayMs);
  }

  /** Each endpoint's load, for `describe()` and the admin page. */
  describe(): { address: string; outstanding: number; rttMs: number }[] {
    return this.endpoints.map((e) => ({ address: e.address, outstanding: e.outstanding, rttMs: Math.round(e.rttMs * 100) / 100 }));
  }
}
