import { type Classification, type Classifier, SUCCESS } from '../../core/classify.js';
import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { formatDuration } from '../../core/duration.js';
import { NoEndpointsError, ServiceClosedError } from '../../core/errors.js';
import type { EventHub, Subscription } from '../../core/events.js';
import type { Param } from '../../core/params.js';
import type { LayerDescription, Service, Settler, StackEnv } from '../../core/service.js';
import { callInto } from '../../core/settle.js';
import type { Changeset, Discovery, Endpoint } from '../../discovery/types.js';
import { FailureAccrual } from './accrual.js';
import { addPending, DenseSet, EndpointCall, EndpointState, LoadTable } from './endpoint.js';
import { type BalanceParams, describeBalanceParams } from './options.js';
import { Picker } from './pick.js';
import { UnbuiltEndpoints } from './unbuilt.js';

/** Builds the inner service of one endpoint: an undici pool, a gRPC client, any function. */
export type EndpointFactory<Req, Res> = (endpoint: Endpoint) => Service<Req, Res>;

declare module '../../core/events.js' {
  interface MeshEvents {
    /** An endpoint failed `failures` times in a row and leaves the pick set for `backoffMs`. */
    'endpoint-ejected': { service: string; endpoint: string; failures: number; backoffMs: number; ejections: number };
    /** An ejected endpoint's probe succeeded (or it answered during panic): it is back. */
    'endpoint-restored': { service: string; endpoint: string };
    /** Too few endpoints are ready: picking among all of them (`active`), or back to normal. */
    'balancer-panic': { service: string; active: boolean; ready: number; total: number };
    /** The endpoint factory threw; the endpoint is left out and built again in `retryInMs`. */
    'endpoint-factory-error': { service: string; endpoint: string; error: unknown; retryInMs: number };
  }
}

function warnBookkeeping(error: unknown): void {
  process.emitWarning(`sidecarless: balancer bookkeeping failed: ${String(error)}`, 'SidecarlessWarning');
}

/** The service of the balance layer; see the module doc in `index.ts`. */
export class BalanceService<Req, Res> implements Service<Req, Res> {
  readonly #byId = new Map<string, EndpointState<Req, Res>>();
  readonly #loads = new LoadTable();
  /** Endpoints that may be picked (not ejected, not removed). */
  readonly #ready = new DenseSet<Req, Res>('readyIndex');
  /** Every endpoint not removed, for panic mode. */
  readonly #all = new DenseSet<Req, Res>('allIndex');
  readonly #accrual: FailureAccrual<Req, Res>;
  /** Removed endpoints still finishing calls; closed when their last call settles. */
  readonly #draining = new Set<EndpointState<Req, Res>>();
  readonly #closing = new Set<Promise<void>>();
  /** Discovered endpoints whose factory threw, for {@link NoEndpointsError}. */
  readonly #unbuilt: UnbuiltEndpoints;
  readonly #picker: Picker;
  readonly #discovery: Discovery;
  readonly #factory: EndpointFactory<Req, Res>;
  readonly #param: Param<BalanceParams>;
  readonly #clock: Clock;
  readonly #classifier: Classifier<unknown>;
  readonly #events: EventHub;
  readonly #service: string;
  readonly #ownsDiscovery: boolean;
  readonly #inner: Service<unknown, unknown> | undefined;
  readonly #subscription: Subscription;
  #panic = false;
  #closed = false;
  #drained: (() => void) | undefined = undefined;

  constructor(
    discovery: Discovery,
    factory: EndpointFactory<Req, Res>,
    param: Param<BalanceParams>,
    env: StackEnv,
    options: { ownsDiscovery: boolean; inner?: Service<unknown, unknown> | undefined },
  ) {
    this.#discovery = discovery;
    this.#factory = factory;
    this.#param = param;
    this.#clock = env.clock;
    this.#classifier = env.classifier;
    this.#events = env.events;
    this.#service = env.service;
    this.#picker = new Picker(env.random, this.#loads);
    this.#accrual = new FailureAccrual(this.#ready, env);
    this.#unbuilt = new UnbuiltEndpoints(env.clock, env.random, (endpoint) => {
      if (!this.#closed && !this.#byId.has(endpoint.id)) this.#insert(endpoint);
    });
    this.#ownsDiscovery = options.ownsDiscovery;
    this.#inner = options.inner;
    this.#subscription = discovery.subscribe((changes) => this.#apply(changes));
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'balance' }));
    const params = this.#param.get();
    // The start time is shared with what runs beneath (no try/finally: nothing here throws, and
    // a call's own throw is caught where it is made).
    const opened = params.strategy === 'p2c-peak-ewma' && ctx.openTime(this.#clock);
    const now = this.#startTime(params, ctx);
    const endpoint = this.#pick(params, now);
    const answer = endpoint === undefined ? Promise.reject(this.#noEndpoints(params)) : this.#callEndpoint(endpoint, req, ctx, params, now);
    if (opened) ctx.closeTime();
    return answer;
  }

  /**
   * {@link BalanceService.call} for a layer above that takes the outcome through a settler: the
   * bookkeeping and the layer above settle from the endpoint's one reaction, and the end time
   * read for the round trip is shared with the layers it settles.
   */
  callInto(req: Req, ctx: CallContext, settler: Settler): void {
    if (this.#closed) {
      settler.settle(true, new ServiceClosedError({ layer: 'balance' }));
      return;
    }
    const params = this.#param.get();
    const opened = params.strategy === 'p2c-peak-ewma' && ctx.openTime(this.#clock);
    const now = this.#startTime(params, ctx);
    const endpoint = this.#pick(params, now);
    if (endpoint === undefined) settler.settle(true, this.#noEndpoints(params));
    else {
      ctx.endpoint = endpoint.id;
      addPending(this.#loads.data, endpoint.slot, 1);
      endpoint.calls++;
      callInto(endpoint.service, req, ctx, new EndpointCall(this as BalanceService<unknown, unknown>, endpoint, params, now, ctx, settler));
    }
    if (opened) ctx.closeTime();
  }

  /** Only peak EWMA needs round-trip times; one reading serves the pick and the start time. */
  #startTime(params: BalanceParams, ctx: CallContext): number {
    return params.strategy === 'p2c-peak-ewma' ? ctx.timeOn(this.#clock) : Number.NaN;
  }

  /** @internal an endpoint answered a call sent by {@link BalanceService.callInto}. */
  endpointSettled(call: EndpointCall, threw: boolean, outcome: unknown): void {
    const ctx = call.ctx;
    const opened = !Number.isNaN(call.start) && ctx.openTime(this.#clock);
    this.#settled(call.endpoint as EndpointState<Req, Res>, call.params, call.start, threw, outcome, ctx);
    call.outer.settle(threw, outcome);
    if (opened) ctx.closeTime();
  }

  /**
   * Sends the call and returns the endpoint's own promise: the caller awaits it directly, so the
   * balancer adds no promise hop to the call. The load and health bookkeeping hangs off the
   * same promise as a reaction registered first, so it has run by the time the caller resumes.
   */
  #callEndpoint(endpoint: EndpointState<Req, Res>, req: Req, ctx: CallContext, params: BalanceParams, start: number): Promise<Res> {
    ctx.endpoint = endpoint.id;
    addPending(this.#loads.data, endpoint.slot, 1);
    endpoint.calls++;
    let promise: Promise<Res>;
    try {
      promise = endpoint.service.call(req, ctx);
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (result) => this.#settled(endpoint, params, start, false, result, ctx),
      (error: unknown) => this.#settled(endpoint, params, start, true, error, ctx),
    );
    return promise;
  }

  /** Never throws: a throw here would reject a promise nobody awaits. */
  #settled(
    endpoint: EndpointState<Req, Res>,
    params: BalanceParams,
    start: number,
    threw: boolean,
    outcome: unknown,
    ctx: CallContext,
  ): void {
    const pending = addPending(this.#loads.data, endpoint.slot, -1);
    try {
      const classifier = this.#classifier;
      const verdict = threw
        ? classifier.classifyError(outcome)
        : classifier.judgesResults === false
          ? SUCCESS
          : classifier.classifyResult(outcome);
      this.#account(endpoint, params, start, verdict, ctx);
    } catch (error) {
      warnBookkeeping(error);
    }
    if (pending === 0 && endpoint.state === 'removed') this.#closeEndpoint(endpoint);
  }

  /**
   * Load and health accounting of one outcome; `start` is NaN when no round-trip time is kept.
   * The common case (a success with a round-trip time) stays small: V8 inlines small functions
   * only, within a budget per call chain, and a stack is a long chain.
   */
  #account(endpoint: EndpointState<Req, Res>, params: BalanceParams, start: number, verdict: Classification, ctx: CallContext): void {
    if (!Number.isNaN(start)) {
      const now = ctx.timeOn(this.#clock);
      endpoint.observe(now, now - start, params.decayMs);
    }
    if (verdict.kind === 'failure' || verdict.retryAfterMs !== undefined) this.#accountFailure(endpoint, params, verdict, ctx);
    else if (endpoint.failures !== 0 || endpoint.state !== 'active') this.#accrual.succeeded(endpoint);
  }

  /** A failure, or an answer that asks to come back later (Retry-After). */
  #accountFailure(endpoint: EndpointState<Req, Res>, params: BalanceParams, verdict: Classification, ctx: CallContext): void {
    const now = ctx.timeOn(this.#clock);
    // A server's Retry-After (429, 503) is the best estimate of when it is worth calling again:
    // count it as a round trip that long, so the endpoint is avoided and the penalty decays.
    if (verdict.retryAfterMs !== undefined) endpoint.observe(now, verdict.retryAfterMs, params.decayMs);
    if (verdict.kind === 'failure') this.#accrual.failed(endpoint, params, now);
    else this.#accrual.succeeded(endpoint);
  }

  #pick(params: BalanceParams, now: number): EndpointState<Req, Res> | undefined {
    if (this.#accrual.probesDue > 0) {
      const probe = this.#accrual.nextProbe();
      if (probe !== undefined) return probe;
    }
    const ready = this.#ready.size;
    const total = this.#all.size;
    const panic = ready < params.panicThreshold * total;
    if (panic !== this.#panic) this.#setPanic(panic, ready, total);
    if (panic) return this.#picker.pick(this.#all, params, now);
    if (ready === 0) return undefined;
    return this.#picker.pick(this.#ready, params, now);
  }

  #noEndpoints(params: BalanceParams): NoEndpointsError {
    if (this.#all.size > 0) {
      let next = Number.POSITIVE_INFINITY;
      for (const e of this.#all.items) if (e.state === 'ejected' && e.ejectedUntil < next) next = e.ejectedUntil;
      const detail = `${this.#all.size} ejected, panic ${params.panicThreshold > 0 ? 'threshold not met' : 'disabled'}`;
      return new NoEndpointsError(
        'all-ejected',
        next === Number.POSITIVE_INFINITY ? detail : `${detail}, next probe in ${formatDuration(Math.ceil(next - this.#clock.now()))}`,
      );
    }
    const unbuilt = this.#unbuilt.explain();
    if (unbuilt !== undefined) return new NoEndpointsError('factory-failed', unbuilt.detail, { cause: unbuilt.cause });
    const status = this.#discovery.status();
    if (status.health === 'failing') {
      return new NoEndpointsError('discovery-failing', String((status.lastError as Error)?.message ?? status.lastError), {
        cause: status.lastError,
      });
    }
    return new NoEndpointsError('none-discovered', status.health === 'pending' ? 'discovery has not answered yet' : this.#discovery.kind);
  }

  #setPanic(active: boolean, ready: number, total: number): void {
    this.#panic = active;
    if (this.#events.wants('balancer-panic')) this.#events.emit('balancer-panic', { service: this.#service, active, ready, total });
  }

  #apply(changes: Changeset): void {
    if (this.#closed) return;
    for (const change of changes) {
      if (change.type === 'remove') {
        this.#remove(change.id);
        continue;
      }
      // One whose factory threw waits for its rebuild (which takes this latest form): a change of
      // weight or metadata is no reason to call the factory again before its backoff.
      if (this.#unbuilt.update(change.endpoint)) continue;
      const known = this.#byId.get(change.endpoint.id);
      if (known !== undefined) {
        const before = known.endpoint;
        if (before.address === change.endpoint.address && before.port === change.endpoint.port) {
          known.endpoint = change.endpoint;
          known.weight = change.endpoint.weight;
          this.#ready.touch();
          this.#all.touch();
          continue;
        }
        this.#remove(known.id); // a new address needs a new inner service
      }
      this.#insert(change.endpoint);
    }
  }

  #insert(endpoint: Endpoint): void {
    let service: Service<Req, Res>;
    try {
      service = this.#factory(endpoint);
    } catch (error) {
      const retryInMs = this.#unbuilt.failed(endpoint, error, this.#param.get());
      if (this.#events.wants('endpoint-factory-error')) {
        this.#events.emit('endpoint-factory-error', { service: this.#service, endpoint: endpoint.id, error, retryInMs });
      }
      return;
    }
    this.#unbuilt.forget(endpoint.id);
    const state = new EndpointState(endpoint, service, this.#loads, this.#param.get().defaultRttMs, this.#clock.now());
    this.#byId.set(state.id, state);
    this.#all.add(state);
    this.#ready.add(state);
  }

  #remove(id: string): void {
    this.#unbuilt.forget(id);
    const endpoint = this.#byId.get(id);
    if (endpoint === undefined) return;
    this.#byId.delete(id);
    this.#ready.delete(endpoint);
    this.#all.delete(endpoint);
    if (endpoint.timer !== undefined) this.#clock.clearTimer(endpoint.timer);
    endpoint.timer = undefined;
    endpoint.state = 'removed';
    // In-flight calls finish on the old service; it is closed when the last one settles.
    if (endpoint.pending === 0) this.#closeEndpoint(endpoint);
    else this.#draining.add(endpoint);
  }

  #closeEndpoint(endpoint: EndpointState<Req, Res>): void {
    this.#draining.delete(endpoint);
    endpoint.release();
    const closing = (async () => {
      try {
        await endpoint.service.close?.();
      } catch (error) {
        process.emitWarning(`sidecarless: closing endpoint ${endpoint.id} failed: ${String(error)}`, 'SidecarlessWarning');
      }
    })();
    this.#closing.add(closing);
    void closing.then(() => {
      this.#closing.delete(closing);
      if (this.#draining.size === 0 && this.#closing.size === 0) this.#drained?.();
    });
  }

  /** Each endpoint with its state, EWMA, pending calls and ejection deadline (for `/endpoints`). */
  endpoints(): Record<string, unknown>[] {
    const now = this.#clock.now();
    return [...this.#byId.values(), ...this.#draining].map((e) => e.dump(now));
  }

  /**
   * Counts of endpoints by state. `ready` counts endpoints in the pick set (not ejected);
   * `busy` those whose inner service says `ready() === false` right now, which picks avoid
   * while others are ready. O(n): for introspection, not for the call path.
   */
  counts(): { total: number; ready: number; ejected: number; busy: number; draining: number; panic: boolean } {
    const total = this.#all.size;
    const ready = this.#ready.size;
    let busy = 0;
    for (const e of this.#all.items) if (!e.isReady()) busy++;
    return { total, ready, ejected: total - ready, busy, draining: this.#draining.size, panic: this.#panic };
  }

  ready(): boolean {
    return !this.#closed && this.#all.size > 0;
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    return [
      {
        layer: 'balance',
        params: describeBalanceParams(p),
        state: { ...this.counts(), discovery: this.#discovery.describe(), endpoints: this.endpoints() },
      },
    ];
  }

  /**
   * Stops taking calls and endpoint changes, clears ejection timers, waits for calls in flight
   * to finish and closes every endpoint's service, then the discovery (when it owns it).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription.dispose();
    this.#unbuilt.clear();
    for (const id of [...this.#byId.keys()]) this.#remove(id);
    if (this.#draining.size > 0 || this.#closing.size > 0) {
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
    }
    if (this.#ownsDiscovery) await this.#discovery.close();
    await this.#inner?.close?.();
  }
}
