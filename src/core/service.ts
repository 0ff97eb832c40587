/**
 * The unit everything wraps. A {@link Service} answers a request asynchronously; it may say
 * whether it is ready (backpressure, as Tower's `poll_ready`), describe itself for the admin
 * endpoint, and be closed. A {@link Layer} turns one service into another; a stack is built by
 * the {@link ServiceBuilder}, which hands every layer the same {@link StackEnv}.
 *
 * @module
 */

import type { Classifier } from './classify.js';
import type { Clock } from './clock.js';
import type { CallContext } from './context.js';
import type { DeadlineQueue } from './deadlines.js';
import type { EventHub } from './events.js';

/** What a layer reports about itself for `/stack`: its name and live parameters. */
export interface LayerDescription {
  readonly layer: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** Live state (a breaker's state, a budget's balance, a balancer's endpoints). */
  readonly state?: Readonly<Record<string, unknown>>;
}

/** Something that answers a request asynchronously. */
export interface Service<Req, Res> {
  /** Handles one request. The context is the call's; read and extend it, do not copy it. */
  call(req: Req, ctx: CallContext): Promise<Res>;
  /**
   * Whether a call now would be admitted without waiting (Tower's `poll_ready` as a boolean):
   * a full concurrency limit or an open breaker says `false`. Absent means always ready.
   */
  ready?(): boolean;
  /** Releases timers, connections and listeners. Calls after close are refused. */
  close?(): void | Promise<void>;
  /** This layer's description, outermost first, including the layers it wraps. */
  describe?(): LayerDescription[];
  /**
   * Handles one request and reports its outcome to `settler` instead of returning a promise.
   * A layer that already holds a promise of its own for the call (a timeout's race) uses this
   * to skip one promise and one hop of the layer beneath; `call` stays the reference behaviour.
   */
  callInto?(req: Req, ctx: CallContext, settler: Settler): void;
}

/** Receives the outcome of {@link Service.callInto}, exactly once. */
export interface Settler {
  settle(threw: boolean, outcome: unknown): void;
}

/** What every layer of one stack shares. */
export interface StackEnv {
  /** Name of the logical service (for metrics, events and config lookups). */
  readonly service: string;
  readonly clock: Clock;
  readonly classifier: Classifier<unknown>;
  readonly events: EventHub;
  /** The shared deadline structure of `clock`. */
  readonly deadlines: DeadlineQueue;
  /** Uniform random numbers in [0, 1) for jitter and sampling; injectable for tests. */
  readonly random: () => number;
}

/** Turns a service into another. Every middleware is one. */
export interface Layer<InReq, InRes, OutReq = InReq, OutRes = InRes> {
  /** Short name, as in `/stack` and error messages: `timeout`, `retry`, ... */
  readonly name: string;
  wrap(inner: Service<InReq, InRes>, env: StackEnv): Service<OutReq, OutRes>;
}

/** A layer that does not change request or response types. */
export type SimpleLayer = Layer<any, any>;

/** Closes a service if it can be closed. */
export async function closeService(service: Service<unknown, unknown>): Promise<void> {
  await service.close?.();
}

/** Describes a chain: this layer's entry followed by the inner service's. */
export function describeChain(own: LayerDescription, inner: Service<unknown, unknown>): LayerDescription[] {
  return [own, ...(inner.describe?.() ?? [])];
}
