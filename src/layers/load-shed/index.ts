/**
 * # load-shed
 *
 * Refuses a call at once with {@link OverloadedError} when the service beneath is not ready —
 * a full concurrency limit, an open breaker, an adaptive limit reached — instead of letting it
 * wait. It turns backpressure into fast failure at the top of a stack, where a caller (or a
 * balancer, or a retry on another endpoint) can do something useful with it. The check is one
 * `ready()` call; the admitted path adds nothing else.
 *
 * Prior art: Tower's `LoadShed` (which turns `poll_ready` pending into `Overloaded`), Envoy's
 * overload manager.
 *
 * @module
 */

import type { CallContext } from '../../core/context.js';
import { OverloadedError, ServiceClosedError } from '../../core/errors.js';
import { describeChain, type Layer, type LayerDescription, type Service } from '../../core/service.js';

export { innerReady } from './admission.js';

/** The service of the load-shed layer. */
export class LoadShedService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  #shed = 0;
  #closed = false;

  constructor(inner: Service<Req, Res>) {
    this.#inner = inner;
  }

  /** Calls refused so far. */
  get shed(): number {
    return this.#shed;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'load-shed' }));
    const inner = this.#inner;
    if (inner.ready !== undefined && !inner.ready()) {
      this.#shed++;
      return Promise.reject(new OverloadedError('inner service not ready', { layer: 'load-shed' }));
    }
    return inner.call(req, ctx);
  }

  ready(): boolean {
    return !this.#closed;
  }

  describe(): LayerDescription[] {
    return describeChain({ layer: 'load-shed', params: {}, state: { shed: this.#shed } }, this.#inner as Service<unknown, unknown>);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#inner.close?.();
  }
}

/** The load-shed layer: `.loadShed()` above a layer that reports readiness. */
export function loadShed<Req, Res>(): Layer<Req, Res> {
  return { name: 'load-shed', wrap: (inner: Service<Req, Res>) => new LoadShedService(inner) };
}
