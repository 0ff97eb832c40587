import type { CallContext } from '../core/context.js';
import type { LayerDescription, Service } from '../core/service.js';

/**
 * The innermost service of a stack built over a plain function. The request is the argument
 * list, whose last element is the call context (the wrapper put it there); a concurrent attempt
 * (a hedge) swaps in its own context before calling.
 */
export class FunctionService<R> implements Service<unknown[], R> {
  readonly #fn: (...args: any[]) => R | Promise<R>;
  readonly #passContext: boolean;

  constructor(fn: (...args: any[]) => R | Promise<R>, passContext = true) {
    this.#fn = fn;
    this.#passContext = passContext;
  }

  call(args: unknown[], ctx: CallContext): Promise<R> {
    if (this.#passContext) args[args.length - 1] = ctx;
    try {
      const result = this.#fn.apply(undefined, args);
      return result instanceof Promise ? result : Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  describe(): LayerDescription[] {
    return [{ layer: 'service', params: { function: this.#fn.name || 'anonymous' } }];
  }
}
