import type { CallContext } from '../../core/context.js';
import { ServiceClosedError } from '../../core/errors.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service } from '../../core/service.js';
import type { CompiledRule, SplitParams } from './options.js';

function headerValue(headers: unknown, name: string): unknown {
  if (headers === null || typeof headers !== 'object') return undefined;
  const get = (headers as { get?: unknown }).get;
  if (typeof get === 'function') return (get as (n: string) => unknown).call(headers, name) ?? undefined;
  return (headers as Record<string, unknown>)[name];
}

function matches(rule: CompiledRule, attributes: Record<string, unknown>): boolean {
  const value = rule.header ? headerValue(attributes.headers, rule.key) : attributes[rule.key];
  if (value === undefined || value === null) return false;
  const text = Array.isArray(value) ? value.join(',') : String(value);
  if (rule.equals !== undefined) return text === rule.equals;
  if (rule.regex !== undefined) return rule.regex.test(text);
  return true;
}

/** The service of the split layer; see the module doc in `index.ts`. */
export class SplitService<Req, Res> implements Service<Req, Res> {
  /** Calls sent to each backend, by name. */
  readonly #counts: number[];
  readonly #names: readonly string[];
  readonly #backends: readonly Service<Req, Res>[];
  readonly #param: Param<SplitParams>;
  readonly #random: () => number;
  #closed = false;

  /** `backends[0]` is the wrapped (primary) service. */
  constructor(names: readonly string[], backends: readonly Service<Req, Res>[], param: Param<SplitParams>, random: () => number) {
    this.#names = names;
    this.#backends = backends;
    this.#param = param;
    this.#random = random;
    this.#counts = names.map(() => 0);
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'split' }));
    const index = this.#choose(this.#param.get(), ctx);
    this.#counts[index] = (this.#counts[index] as number) + 1;
    return (this.#backends[index] as Service<Req, Res>).call(req, ctx);
  }

  #choose(params: SplitParams, ctx: CallContext): number {
    const rules = params.rules;
    if (rules.length > 0) {
      const attributes = ctx.attributes;
      for (let i = 0; i < rules.length; i++) {
        const rule = rules[i] as CompiledRule;
        if (matches(rule, attributes)) return rule.target;
      }
    }
    if (params.only >= 0) return params.only;
    const r = this.#random() * params.total;
    const cumulative = params.cumulative;
    for (let i = 0; i < cumulative.length; i++) if (r < (cumulative[i] as number)) return i;
    return cumulative.length - 1;
  }

  /** Calls sent to each backend so far. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    this.#names.forEach((name, i) => {
      out[name] = this.#counts[i] as number;
    });
    return out;
  }

  ready(): boolean {
    if (this.#closed) return false;
    const weights = this.#param.get().weights;
    return this.#backends.every((b, i) => (weights[i] as number) === 0 || (b.ready?.() ?? true));
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    const weights: Record<string, number> = {};
    this.#names.forEach((name, i) => {
      weights[name] = p.weights[i] as number;
    });
    const rules = p.rules.map((r) => ({
      [r.header ? 'header' : 'attribute']: r.key,
      ...(r.equals !== undefined ? { equals: r.equals } : {}),
      ...(r.regex !== undefined ? { matches: r.regex.source } : {}),
      backend: this.#names[r.target],
    }));
    const backends: Record<string, LayerDescription[]> = {};
    this.#names.forEach((name, i) => {
      if (i > 0) backends[name] = (this.#backends[i] as Service<unknown, unknown>).describe?.() ?? [];
    });
    return describeChain(
      { layer: 'split', params: { weights, rules }, state: { calls: this.counts(), backends } },
      this.#backends[0] as Service<unknown, unknown>,
    );
  }

  /**
   * Closes the primary (the rest of this stack) and refuses further calls. The other backends
   * were handed in, not built here: they stay open, since another split or caller may use them;
   * their owner closes them.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#backends[0]?.close?.();
  }
}
