import { type DenseSet, type EndpointState, type LoadTable, leastRequestPrefersSecond, peakEwmaPrefersSecond } from './endpoint.js';
import type { BalanceParams } from './options.js';

/**
 * Vose's alias table over a {@link DenseSet}: O(n) to build when the set or a weight changes,
 * O(1) per pick (one index, one coin) — weighted random without a scan or a binary search.
 */
class AliasTable {
  prob = new Float64Array(0);
  alias = new Int32Array(0);
  builtFor = -1;

  build(items: readonly EndpointState<unknown, unknown>[], version: number): void {
    const n = items.length;
    this.builtFor = version;
    if (this.prob.length < n) {
      this.prob = new Float64Array(n);
      this.alias = new Int32Array(n);
    }
    let total = 0;
    for (const item of items) total += item.weight;
    const small: number[] = [];
    const large: number[] = [];
    for (let i = 0; i < n; i++) {
      const scaled = ((items[i] as EndpointState<unknown, unknown>).weight * n) / total;
      this.prob[i] = scaled;
      (scaled < 1 ? small : large).push(i);
    }
    while (small.length > 0 && large.length > 0) {
      const s = small.pop() as number;
      const l = large.pop() as number;
      this.alias[s] = l;
      const rest = (this.prob[l] as number) + (this.prob[s] as number) - 1;
      this.prob[l] = rest;
      (rest < 1 ? small : large).push(l);
    }
    for (const i of large) this.prob[i] = 1;
    for (const i of small) this.prob[i] = 1;
  }
}

/**
 * Sampling rounds a pick spends looking for an endpoint whose inner service is ready: a P2C
 * round checks both of its pair, so at most 6 endpoints are looked at — O(1) at any size. If
 * none of them is ready the pick goes to the first candidate anyway (its own layers may queue
 * or refuse the call with a typed error), rather than failing a call that could have waited.
 */
const READY_ROUNDS = 3;

/**
 * Picks an endpoint from a set by the strategy in force. One per balancer; holds the RR cursor.
 *
 * Every strategy prefers endpoints whose inner service reports `ready() !== false` (Tower's
 * balancer only picks among ready endpoints): P2C takes the loser of its pair when the winner is
 * not ready and samples a new pair when neither is; round robin skips to the next in turn;
 * weighted samples again. Each is bounded by {@link READY_ROUNDS}. Readiness is only asked of
 * the winner first, so the common case (every endpoint ready) looks at no extra endpoint.
 */
export class Picker {
  #cursor = 0;
  /**
   * Index in the set of the other endpoint of the last P2C pair, looked at only when the winner
   * is not ready. An index, not the endpoint: a removed endpoint is not kept alive by it.
   */
  #loser = 0;
  readonly #alias = new AliasTable();
  readonly #random: () => number;
  readonly #table: LoadTable;

  constructor(random: () => number, table: LoadTable) {
    this.#random = random;
    this.#table = table;
  }

  /** A member of `set` (which must not be empty). */
  pick<Req, Res>(set: DenseSet<Req, Res>, params: BalanceParams, now: number): EndpointState<Req, Res> {
    const items = set.items;
    // A single endpoint is the answer whatever its readiness: there is nothing else to prefer.
    if (items.length === 1) return items[0] as EndpointState<Req, Res>;
    // One small function per strategy: V8 inlines only small functions, within a budget for the
    // whole call chain, and a stack is a long chain.
    const strategy = params.strategy;
    if (strategy === 'round-robin') return this.#roundRobin(items);
    if (strategy === 'weighted') return this.#weighted(set);
    return this.#powerOfTwo(set, params, now);
  }

  #roundRobin<Req, Res>(items: readonly EndpointState<Req, Res>[]): EndpointState<Req, Res> {
    const n = items.length;
    if (this.#cursor >= n) this.#cursor = 0;
    const start = this.#cursor;
    for (let tries = Math.min(n, READY_ROUNDS * 2); tries > 0; tries--) {
      if (this.#cursor >= n) this.#cursor = 0;
      const candidate = items[this.#cursor++] as EndpointState<Req, Res>;
      if (candidate.isReady()) return candidate;
    }
    // None ready: the first one looked at, and the turn moves on from it, so the calls are
    // still spread rather than all sent to whichever endpoint the search started from.
    this.#cursor = start + 1;
    return items[start] as EndpointState<Req, Res>;
  }

  #weighted<Req, Res>(set: DenseSet<Req, Res>): EndpointState<Req, Res> {
    const items = set.items;
    const n = items.length;
    const table = this.#alias;
    if (table.builtFor !== set.version) table.build(items as EndpointState<unknown, unknown>[], set.version);
    let first: EndpointState<Req, Res> | undefined;
    for (let round = 0; round < READY_ROUNDS * 2; round++) {
      const i = Math.floor(this.#random() * n);
      const candidate = items[this.#random() < (table.prob[i] as number) ? i : (table.alias[i] as number)] as EndpointState<Req, Res>;
      if (candidate.isReady()) return candidate;
      first ??= candidate;
    }
    return first as EndpointState<Req, Res>;
  }

  #powerOfTwo<Req, Res>(set: DenseSet<Req, Res>, params: BalanceParams, now: number): EndpointState<Req, Res> {
    const winner = this.#p2c(set, params, now);
    // The common case: every endpoint ready, one round.
    if (winner.isReady()) return winner;
    return this.#powerOfTwoAmongReady(set, params, now, winner);
  }

  /** The winner of the first pair was not ready: its loser, or further pairs (bounded). */
  #powerOfTwoAmongReady<Req, Res>(
    set: DenseSet<Req, Res>,
    params: BalanceParams,
    now: number,
    first: EndpointState<Req, Res>,
  ): EndpointState<Req, Res> {
    const items = set.items;
    // With two endpoints every pair is the same pair: one round says all there is to say.
    const rounds = items.length === 2 ? 1 : READY_ROUNDS;
    for (let round = 1; ; round++) {
      const loser = items[this.#loser] as EndpointState<Req, Res>;
      if (loser.isReady()) return loser;
      if (round >= rounds) return first;
      const winner = this.#p2c(set, params, now);
      if (winner.isReady()) return winner;
    }
  }

  /**
   * Power of two choices: two distinct indexes, the less loaded first. Loads are read from the
   * load table by slot, without touching the endpoint objects. One random number gives both: its
   * whole part over n picks the first, the fraction left over picks the second among the other
   * n - 1 (a double's 52 random bits leave plenty for both at any n below 2^26) — truncations
   * and multiplications, where a remainder and a quotient of doubles cost a division each.
   * Returns the winner and leaves the other's index in `#loser` (a field, not a returned pair:
   * nothing allocated).
   */
  #p2c<Req, Res>(set: DenseSet<Req, Res>, params: BalanceParams, now: number): EndpointState<Req, Res> {
    const items = set.items;
    const n = items.length;
    const x = this.#random() * n;
    const i = x | 0;
    let j = ((x - i) * (n - 1)) | 0;
    if (j >= i) j++;
    const data = this.#table.data;
    const slots = set.slots;
    const a = slots[i] as number;
    const b = slots[j] as number;
    const bWins =
      params.strategy === 'p2c-least-request'
        ? leastRequestPrefersSecond(data, a, b)
        : peakEwmaPrefersSecond(data, a, b, now, params.decayMs);
    this.#loser = bWins ? i : j;
    return items[bWins ? j : i] as EndpointState<Req, Res>;
  }
}
