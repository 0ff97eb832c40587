import type { Clock } from '../../core/clock.js';
import type { EventHub } from '../../core/events.js';
import type { StackEnv } from '../../core/service.js';
import type { DenseSet, EndpointState } from './endpoint.js';
import type { BalanceParams } from './options.js';

/** The backoff params an ejection and an endpoint's rebuild share. */
export type BackoffParams = Pick<BalanceParams, 'backoffMinMs' | 'backoffMaxMs' | 'backoffJitter'>;

/**
 * The `n`-th backoff (from 0) of an endpoint: doubling from the minimum, capped at the maximum,
 * with up to `jitter` of itself added so that endpoints ejected together do not come back
 * together (Linkerd's failure-accrual backoff).
 */
export function accrualBackoff(n: number, params: BackoffParams, random: () => number): number {
  const base = Math.min(params.backoffMaxMs, params.backoffMinMs * 2 ** Math.min(n, 30));
  return Math.min(params.backoffMaxMs, base + base * params.backoffJitter * random());
}

/**
 * Failure accrual per endpoint (Linkerd's, Finagle's): `consecutiveFailures` in a row take an
 * endpoint out of the pick set for a jittered backoff that doubles with each ejection; when it
 * runs out the endpoint waits for a single probe call, whose success brings it back and whose
 * failure ejects it again for longer. Touched on failures and state changes only: a success of
 * a healthy endpoint never gets here.
 */
export class FailureAccrual<Req, Res> {
  /** Ejected endpoints whose backoff ran out, each waiting for its single probe call. */
  readonly #probes: EndpointState<Req, Res>[] = [];
  readonly #ready: DenseSet<Req, Res>;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #events: EventHub;
  readonly #service: string;

  /** `ready` is the balancer's pick set, which ejections leave and restorations join. */
  constructor(ready: DenseSet<Req, Res>, env: StackEnv) {
    this.#ready = ready;
    this.#clock = env.clock;
    this.#random = env.random;
    this.#events = env.events;
    this.#service = env.service;
  }

  /** Endpoints waiting for their probe (the pick checks this before asking for one). */
  get probesDue(): number {
    return this.#probes.length;
  }

  /** The next endpoint to probe, marked probing; `undefined` when none waits. */
  nextProbe(): EndpointState<Req, Res> | undefined {
    const probes = this.#probes;
    while (probes.length > 0) {
      const probe = probes.pop() as EndpointState<Req, Res>;
      // One whose ejection ended otherwise meanwhile (a call sent before it succeeded, or it was
      // removed) is no longer waiting for a probe.
      if (probe.state !== 'ejected') continue;
      probe.state = 'probing';
      return probe;
    }
    return undefined;
  }

  /** A success: the failure streak ends, and an ejected or probing endpoint is back. */
  succeeded(endpoint: EndpointState<Req, Res>): void {
    endpoint.failures = 0;
    if (endpoint.state === 'probing' || endpoint.state === 'ejected') {
      // The probe (or a call sent during panic) answered: the endpoint is healthy again.
      if (endpoint.timer !== undefined) this.#clock.clearTimer(endpoint.timer);
      endpoint.timer = undefined;
      endpoint.ejections = 0;
      endpoint.state = 'active';
      this.#ready.add(endpoint);
      if (this.#events.wants('endpoint-restored'))
        this.#events.emit('endpoint-restored', { service: this.#service, endpoint: endpoint.id });
    }
  }

  /** A failure at `now`: counted, and the endpoint ejected when its streak (or its probe) says so. */
  failed(endpoint: EndpointState<Req, Res>, params: BalanceParams, now: number): void {
    endpoint.failures++;
    endpoint.failuresTotal++;
    if (params.consecutiveFailures === 0) return;
    if (endpoint.state === 'probing' || (endpoint.state === 'active' && endpoint.failures >= params.consecutiveFailures)) {
      this.#eject(endpoint, params, now);
    }
  }

  #eject(endpoint: EndpointState<Req, Res>, params: BalanceParams, now: number): void {
    const backoffMs = accrualBackoff(endpoint.ejections, params, this.#random);
    endpoint.ejections++;
    endpoint.state = 'ejected';
    endpoint.ejectedUntil = now + backoffMs;
    this.#ready.delete(endpoint);
    endpoint.timer = this.#clock.setTimer(() => {
      endpoint.timer = undefined;
      if (endpoint.state === 'ejected') this.#probes.push(endpoint);
    }, backoffMs);
    // An ejection running out is no reason for a finished program to stay up.
    this.#clock.unrefTimer?.(endpoint.timer);
    if (this.#events.wants('endpoint-ejected')) {
      this.#events.emit('endpoint-ejected', {
        service: this.#service,
        endpoint: endpoint.id,
        failures: endpoint.failures,
        backoffMs,
        ejections: endpoint.ejections,
      });
    }
  }
}
