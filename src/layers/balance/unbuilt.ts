import type { Clock, TimerHandle } from '../../core/clock.js';
import type { Endpoint } from '../../discovery/types.js';
import { accrualBackoff, type BackoffParams } from './accrual.js';

interface Unbuilt {
  /** The latest the discovery said of it. */
  endpoint: Endpoint;
  error: unknown;
  /** Builds tried so far (drives the backoff). */
  attempts: number;
  timer: TimerHandle | undefined;
}

/**
 * The endpoints whose factory threw, each with its error, until it is built or removed.
 *
 * Why keep them: a balancer left with nothing to pick then says its endpoints failed to build,
 * and why, instead of that none were discovered — which sends an operator to check DNS when the
 * bug is in the factory. And why build again: a factory fails for passing reasons too (a pool
 * that cannot open yet, a certificate not yet mounted), and an unchanged discovery set sends no
 * change that would try again; so each one is built again after a backoff, as an ejected
 * endpoint is probed, until it builds or leaves the set. Touched only when the set changes,
 * when a rebuild is due and when a call finds nothing to pick.
 */
export class UnbuiltEndpoints {
  readonly #entries = new Map<string, Unbuilt>();
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #rebuild: (endpoint: Endpoint) => void;

  /** `rebuild` is called when an endpoint's backoff has passed; it tries the factory again. */
  constructor(clock: Clock, random: () => number, rebuild: (endpoint: Endpoint) => void) {
    this.#clock = clock;
    this.#random = random;
    this.#rebuild = rebuild;
  }

  /**
   * The factory threw for `endpoint`: remembered with its error (the latest goes last) and
   * built again after a backoff that grows with each failure. Returns that backoff.
   */
  failed(endpoint: Endpoint, error: unknown, params: BackoffParams): number {
    const known = this.#entries.get(endpoint.id);
    const entry: Unbuilt = known ?? { endpoint, error, attempts: 0, timer: undefined };
    this.#entries.delete(endpoint.id);
    this.#entries.set(endpoint.id, entry);
    entry.endpoint = endpoint;
    entry.error = error;
    if (entry.timer !== undefined) this.#clock.clearTimer(entry.timer);
    const backoffMs = accrualBackoff(entry.attempts++, params, this.#random);
    entry.timer = this.#clock.setTimer(() => {
      entry.timer = undefined;
      if (this.#entries.get(endpoint.id) === entry) this.#rebuild(entry.endpoint);
    }, backoffMs);
    // A rebuild due is no reason for a finished program to stay up.
    this.#clock.unrefTimer?.(entry.timer);
    return backoffMs;
  }

  /**
   * Takes the latest form of an endpoint waiting for its rebuild (a new weight or metadata);
   * `false` when it is not waiting, or when its address changed: a corrected address is worth
   * building at once rather than after the backoff, and its failures start afresh.
   */
  update(endpoint: Endpoint): boolean {
    const entry = this.#entries.get(endpoint.id);
    if (entry === undefined) return false;
    if (entry.endpoint.address !== endpoint.address || entry.endpoint.port !== endpoint.port) {
      this.forget(endpoint.id);
      return false;
    }
    entry.endpoint = endpoint;
    return true;
  }

  /** `id` was built or removed: its rebuild, if due, is called off. */
  forget(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    if (entry.timer !== undefined) this.#clock.clearTimer(entry.timer);
    this.#entries.delete(id);
  }

  /** Calls off every rebuild (the balancer closes). */
  clear(): void {
    for (const id of [...this.#entries.keys()]) this.forget(id);
  }

  /** Endpoints left out because their factory threw. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * What a call that found nothing to pick should say, or `undefined` when no endpoint failed to
   * build: how many failed and the latest factory error, which is also the cause.
   */
  explain(): { detail: string; cause: unknown } | undefined {
    let cause: unknown;
    for (const entry of this.#entries.values()) cause = entry.error;
    const count = this.#entries.size;
    if (count === 0) return undefined;
    const message = cause instanceof Error ? cause.message : String(cause);
    return { detail: `${count} endpoint${count === 1 ? '' : 's'} failed to build: ${message}`, cause };
  }
}
