import { type DenseSet, type EndpointState, type LoadTable, leastRequestCost, peakEwmaCost } from './endpoint.js';
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

/** Picks an endpoint from a set by the strategy in force. One per balancer; holds the RR cursor. */
export class Picker {
  #cursor = 0;
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
    const n = items.length;
    if (n === 1) return items[0] as EndpointState<Req, Res>;
    switch (params.strategy) {
      case 'round-robin': {
        if (this.#cursor >= n) this.#cursor = 0;
        return items[this.#cursor++] as EndpointState<Req, Res>;
      }
      case 'weighted': {
        const table = this.#alias;
        if (table.builtFor !== set.version) table.build(items as EndpointState<unknown, unknown>[], set.version);
        const i = Math.floor(this.#random() * n);
        return items[this.#random() < (table.prob[i] as number) ? i : (table.alias[i] as number)] as EndpointState<Req, Res>;
      }
      default: {
        // Power of two choices: two distinct indexes, the less loaded wins. Loads are read
        // from the load table by slot, without touching the endpoint objects.
        // One random number gives both: r is uniform over n × (n - 1) pairs (exact in a double
        // for any n below 2^26).
        const r = Math.floor(this.#random() * n * (n - 1));
        const i = r % n;
        let j = (r - i) / n;
        if (j >= i) j++;
        const data = this.#table.data;
        const slots = set.slots;
        const a = slots[i] as number;
        const b = slots[j] as number;
        const bWins =
          params.strategy === 'p2c-least-request'
            ? leastRequestCost(data, b) < leastRequestCost(data, a)
            : peakEwmaCost(data, b, now, params.decayMs) < peakEwmaCost(data, a, now, params.decayMs);
        return items[bWins ? j : i] as EndpointState<Req, Res>;
      }
    }
  }
}
