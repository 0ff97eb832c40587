import type { TimerHandle } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import type { Service, Settler } from '../../core/service.js';
import type { Endpoint } from '../../discovery/types.js';
import type { BalanceService } from './balancer.js';
import type { BalanceParams } from './options.js';

/** Where an endpoint stands in the balancer. */
export type EndpointStateName = 'active' | 'ejected' | 'probing' | 'removed';

/**
 * One endpoint of a balancer: its inner service, its load (pending calls and the peak EWMA of
 * its round-trip time) and its health (consecutive failures, ejection). Mutable and owned by
 * one balancer; the indexes let the balancer remove it from its dense arrays in O(1).
 */
export class EndpointState<Req, Res> {
  // Fields a call touches come first, so they share the object's first cache lines.
  readonly id: string;
  readonly service: Service<Req, Res>;
  state: EndpointStateName = 'active';
  /** Where this endpoint's load lives in {@link LoadTable.data}. */
  readonly slot: number;
  readonly #table: LoadTable;
  /** The inner service has no `ready()`: a pick need not ask it (looked up once, not per pick). */
  readonly #alwaysReady: boolean;
  /** Consecutive failures. */
  failures = 0;
  /** Calls sent, for introspection. */
  calls = 0;
  endpoint: Endpoint;
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
  /** Failures seen, for introspection. */
  failuresTotal = 0;

  constructor(endpoint: Endpoint, service: Service<Req, Res>, table: LoadTable, defaultRttMs: number, now: number) {
    this.id = internalized(endpoint.id);
    this.endpoint = endpoint;
    this.service = service;
    this.#alwaysReady = typeof service.ready !== 'function';
    this.#table = table;
    this.slot = table.alloc();
    const base = this.slot * FIELDS;
    const data = table.data;
    data[base + EWMA] = defaultRttMs;
    data[base + STAMP] = now;
    data[base + PENDING] = 0;
    data[base + WEIGHT] = endpoint.weight;
  }

  /** Calls in flight. */
  get pending(): number {
    return this.#table.data[this.slot * FIELDS + PENDING] as number;
  }
  set pending(value: number) {
    this.#table.data[this.slot * FIELDS + PENDING] = value;
  }

  /** Peak-EWMA estimate of the round-trip time, in ms (as of the last update). */
  get ewma(): number {
    return this.#table.data[this.slot * FIELDS + EWMA] as number;
  }

  /** Relative weight. */
  get weight(): number {
    return this.#table.data[this.slot * FIELDS + WEIGHT] as number;
  }
  set weight(value: number) {
    this.#table.data[this.slot * FIELDS + WEIGHT] = value;
  }

  /**
   * Whether the inner service would take a call now: its own `ready()` (Tower's `poll_ready`,
   * say a full connection pool or an open per-endpoint breaker); true when it has none. A
   * throwing `ready()` counts as not ready — it is a bug there, not a reason to fail the pick.
   */
  isReady(): boolean {
    if (this.#alwaysReady) return true;
    const service = this.service as Required<Service<Req, Res>>;
    try {
      return service.ready() !== false;
    } catch {
      return false;
    }
  }

  /** Gives the load slot back; only once no call of this endpoint is in flight. */
  release(): void {
    this.#table.free(this.slot);
  }

  /**
   * Records a round trip: a sample above the estimate replaces it (the "peak": a slow endpoint
   * is avoided at once), one below is blended in with weight `1 - e^(-elapsed/decay)`, so the
   * estimate follows time, not call counts (Tower's `PeakEwma`).
   */
  observe(now: number, rttMs: number, decayMs: number): void {
    const data = this.#table.data;
    const base = this.slot * FIELDS;
    const elapsed = now - (data[base + STAMP] as number);
    data[base + STAMP] = now;
    const ewma = data[base + EWMA] as number;
    if (rttMs > ewma) data[base + EWMA] = rttMs;
    else if (elapsed > 0) {
      // The decay written out, not called: see peakEwmaPrefersSecond.
      const x = elapsed / decayMs;
      const w = x < 1e-2 ? 1 - x + 0.5 * x * x : Math.exp(-x);
      data[base + EWMA] = ewma * w + rttMs * (1 - w);
    }
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
      // The inner service's own readiness: picks avoid the endpoint while it is false.
      serviceReady: this.isReady(),
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
 * The same string, internalized (property keys are): the id is handed to the layers above on
 * every call, and two internalized strings compare by pointer — the metrics layer looks an
 * endpoint up among the last few by `===`, which on two built strings of one length compares
 * them character by character.
 */
function internalized(id: string): string {
  return Object.keys({ [id]: 0 })[0] ?? id;
}

const FIELDS = 4;
const EWMA = 0;
const STAMP = 1;
const PENDING = 2;
const WEIGHT = 3;

/**
 * @internal counts a call in (+1) or out (-1) of a slot and returns the calls pending: the
 * balancer's hot path uses this rather than {@link EndpointState.pending}, whose accessor was
 * not inlined in long stacks (V8's inlining budget runs out) — a tiny function on a typed
 * array is.
 */
export function addPending(data: Float64Array, slot: number, delta: number): number {
  const at = slot * FIELDS + PENDING;
  const pending = (data[at] as number) + delta;
  data[at] = pending;
  return pending;
}

/**
 * The load of every endpoint of a balancer in one `Float64Array`, four numbers per endpoint
 * (EWMA, its timestamp, pending calls, weight). Why not fields on the endpoint objects: a P2C
 * pick reads the load of two random endpoints, and at 10,000 endpoints scattered objects cost
 * a cache miss or two each, making the pick three times slower than at 3; 32 bytes per endpoint
 * in one array keep it flat. Slots are reused through a free list and stable while an endpoint
 * lives (the array may be replaced when it grows: read `data` at each use).
 */
export class LoadTable {
  data = new Float64Array(FIELDS * 16);
  readonly #free: number[] = [];
  #next = 0;

  alloc(): number {
    const slot = this.#free.pop() ?? this.#next++;
    if ((slot + 1) * FIELDS > this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    return slot;
  }

  free(slot: number): void {
    this.data.fill(0, slot * FIELDS, slot * FIELDS + FIELDS);
    this.#free.push(slot);
  }
}

/**
 * Whether slot `b` costs less than slot `a` by peak EWMA: each estimate first decayed towards
 * zero for the time since it was last updated (an idle endpoint slowly becomes attractive again,
 * so a once-slow endpoint gets a chance to show it recovered, and the decayed value is stored),
 * times pending calls plus one, over the weight.
 *
 * One function answering a boolean, with the decay written out for each slot rather than called:
 * in a long stack V8 stops inlining (its budget is per call chain), and a helper returning a
 * double then boxes it in a fresh heap number on every call — a pick paid five calls and four
 * allocations that way, about a bare call in a mesh stack.
 */
export function peakEwmaPrefersSecond(data: Float64Array, a: number, b: number, now: number, decayMs: number): boolean {
  let costA = 0;
  let costB = 0;
  for (let k = 0; k < 2; k++) {
    const base = (k === 0 ? a : b) * FIELDS;
    let ewma = data[base + EWMA] as number;
    // Decayed once at least a ten-thousandth of the decay has passed (1 ms of the default 10 s):
    // the stamp stays put meanwhile, so no decay is lost, and a busy endpoint's cost is read
    // without the arithmetic and the two writes, off by at most a factor e^(-1e-4).
    const elapsed = now - (data[base + STAMP] as number);
    if (elapsed * 10_000 > decayMs) {
      // e^-x; below x = 1e-2 (100 ms of the default 10 s) as 1 - x + x²/2, within 2e-7 of it.
      const x = elapsed / decayMs;
      ewma *= x < 1e-2 ? 1 - x + 0.5 * x * x : Math.exp(-x);
      data[base + EWMA] = ewma;
      data[base + STAMP] = now;
    }
    // cost = ewma × (pending + 1) / weight, each side multiplied by both (positive) weights: a
    // multiplication where a division costs several times as much.
    const cost = ewma * ((data[base + PENDING] as number) + 1) * (data[(k === 0 ? b : a) * FIELDS + WEIGHT] as number);
    if (k === 0) costA = cost;
    else costB = cost;
  }
  return costB < costA;
}

/** Whether slot `b` has fewer pending calls per weight than slot `a`. */
export function leastRequestPrefersSecond(data: Float64Array, a: number, b: number): boolean {
  const baseA = a * FIELDS;
  const baseB = b * FIELDS;
  // Compared crosswise, as in peakEwmaPrefersSecond.
  return (
    ((data[baseB + PENDING] as number) + 1) * (data[baseA + WEIGHT] as number) <
    ((data[baseA + PENDING] as number) + 1) * (data[baseB + WEIGHT] as number)
  );
}

/**
 * A dense array with O(1) insert and swap-remove, each member knowing its index — how the
 * balancer keeps "ready endpoints" and "all endpoints" so that a pick is two random indexes
 * whatever the number of endpoints. `key` selects which index field of the member to use.
 */
export class DenseSet<Req, Res> {
  readonly items: EndpointState<Req, Res>[] = [];
  /** `slots[i]` is `items[i].slot`: a pick reads loads without touching the objects. */
  slots = new Int32Array(16);
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
    const index = this.items.length;
    if (index >= this.slots.length) {
      const grown = new Int32Array(this.slots.length * 2);
      grown.set(this.slots);
      this.slots = grown;
    }
    item[this.#key] = index;
    this.slots[index] = item.slot;
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
      this.slots[index] = last.slot;
      last[this.#key] = index;
    }
    item[this.#key] = -1;
    this.version = ++versions;
  }
}

/** One call sent to an endpoint by {@link BalanceService.callInto}: its outcome comes back here. */
export class EndpointCall implements Settler {
  constructor(
    readonly balancer: BalanceService<unknown, unknown>,
    readonly endpoint: EndpointState<unknown, unknown>,
    readonly params: BalanceParams,
    /** Start time of the round trip; NaN when the strategy keeps none. */
    readonly start: number,
    readonly ctx: CallContext,
    readonly outer: Settler,
  ) {}

  settle(threw: boolean, outcome: unknown): void {
    this.balancer.endpointSettled(this, threw, outcome);
  }
}
