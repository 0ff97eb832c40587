import type { EventEmitter } from 'node:events';
import type CircuitBreaker from 'opossum';
import type { CallContext } from '../../core/context.js';
import { InvalidOptionError, ServiceClosedError } from '../../core/errors.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';

/** Opossum's events re-published as `opossum` events. */
export const OPOSSUM_EVENTS = [
  'open',
  'halfOpen',
  'close',
  'reject',
  'timeout',
  'fallback',
  'shutdown',
  'semaphoreLocked',
  'healthCheckFailed',
] as const;

/** An event of an opossum breaker, as re-published on the stack's hub. */
export type OpossumEventName = (typeof OPOSSUM_EVENTS)[number];

/**
 * The action an opossum breaker must be created over to guard a stack:
 * `new CircuitBreaker(opossumAction, options)`. Opossum binds its action at construction, so
 * the layer hands the action the rest of the stack as arguments.
 */
export function opossumAction(service: Service<unknown, unknown>, req: unknown, ctx: CallContext): Promise<unknown> {
  return service.call(req, ctx);
}

/** Options of {@link fromOpossum}. */
export interface OpossumLayerOptions {
  /** Shut the breaker down (its timers and listeners) when the stack closes. Default false: it is the application's. */
  shutdownOnClose?: boolean;
}

/** The service of a {@link fromOpossum} layer. */
export class OpossumService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #breaker: CircuitBreaker;
  readonly #shutdownOnClose: boolean;
  readonly #listeners: [OpossumEventName, (detail: unknown) => void][] = [];
  #closed = false;

  constructor(inner: Service<Req, Res>, breaker: CircuitBreaker, shutdownOnClose: boolean, env: StackEnv) {
    this.#inner = inner;
    this.#breaker = breaker;
    this.#shutdownOnClose = shutdownOnClose;
    for (const event of OPOSSUM_EVENTS) {
      const listener = (detail: unknown): void => {
        if (env.events.wants('opossum')) env.events.emit('opossum', { service: env.service, event, detail });
      };
      (breaker as unknown as EventEmitter).on(event, listener);
      this.#listeners.push([event, listener]);
    }
  }

  async call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) throw new ServiceClosedError({ layer: 'opossum' });
    try {
      return (await this.#breaker.fire(this.#inner, req, ctx)) as Res;
    } catch (error) {
      // Opossum's timeout rejects but leaves the action running: fire the callee's signal.
      if (
        (error as { code?: unknown })?.code === 'ETIMEDOUT' &&
        (this.#breaker.constructor as typeof CircuitBreaker).isOurError?.(error as Error)
      ) {
        ctx.abortAttempt(error);
      }
      throw error;
    }
  }

  ready(): boolean {
    return !this.#closed && !this.#breaker.opened && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    const b = this.#breaker;
    return describeChain(
      { layer: 'opossum', params: { name: b.name }, state: { state: b.opened ? 'open' : b.halfOpen ? 'half-open' : 'closed' } },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [event, listener] of this.#listeners.splice(0)) this.#breaker.removeListener(event, listener);
    if (this.#shutdownOnClose) this.#breaker.shutdown();
    await this.#inner.close?.();
  }
}

/**
 * Turns an opossum breaker into a layer guarding the rest of the stack. The breaker must be
 * created over {@link opossumAction} (`new CircuitBreaker(opossumAction, options)`, with the
 * team's existing options); its events (`open`, `halfOpen`, `close`, `reject`, `timeout`, ...)
 * are re-published as `opossum` events, and its listeners removed on `close()`.
 */
export function fromOpossum<Req = any, Res = any>(breaker: CircuitBreaker<any[], any>, options: OpossumLayerOptions = {}): Layer<Req, Res> {
  if (typeof (breaker as { fire?: unknown } | null)?.fire !== 'function') {
    throw new InvalidOptionError('breaker', 'must be an opossum CircuitBreaker');
  }
  if ((breaker as unknown as { action?: unknown }).action !== opossumAction) {
    throw new InvalidOptionError(
      'breaker',
      'must be created over opossumAction: new CircuitBreaker(opossumAction, options), so it guards the rest of the stack',
    );
  }
  if (options.shutdownOnClose !== undefined && typeof options.shutdownOnClose !== 'boolean') {
    throw new InvalidOptionError('shutdownOnClose', `must be true or false (got ${JSON.stringify(options.shutdownOnClose)})`);
  }
  return {
    name: 'opossum',
    wrap: (inner: Service<Req, Res>, env: StackEnv) =>
      new OpossumService(inner, breaker as unknown as CircuitBreaker, options.shutdownOnClose ?? false, env),
  };
}
