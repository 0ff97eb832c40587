import type { IDefaultPolicyContext, IPolicy } from 'cockatiel';
import type { CallContext } from '../../core/context.js';
import { InvalidOptionError, ServiceClosedError } from '../../core/errors.js';
import type { Subscription } from '../../core/events.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';

/** Cockatiel's event properties and the names they are re-published under. */
const COCKATIEL_EVENTS = {
  onRetry: 'retry',
  onGiveUp: 'give-up',
  onBreak: 'break',
  onReset: 'reset',
  onHalfOpen: 'half-open',
  onStateChange: 'state-change',
  onTimeout: 'timeout',
  onReject: 'reject',
} as const;

/** An event of a cockatiel policy, as re-published on the stack's hub. */
export type CockatielEventName = (typeof COCKATIEL_EVENTS)[keyof typeof COCKATIEL_EVENTS];

// Cockatiel's CircuitState: Open = 1, Isolated = 3 refuse calls.
const REFUSING_STATES = new Set([1, 3]);

type AnyPolicy = IPolicy<IDefaultPolicyContext, unknown>;
type EventSource = (listener: (data: unknown) => void) => { dispose(): void };

/** Every policy of a `wrap(...)` tree, outermost first. */
function policiesOf(policy: AnyPolicy): AnyPolicy[] {
  const wrapped = (policy as { wrapped?: unknown }).wrapped;
  if (!Array.isArray(wrapped)) return [policy];
  return (wrapped as AnyPolicy[]).flatMap(policiesOf);
}

/** The service of a {@link fromCockatiel} layer. */
export class CockatielService<Req, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #policy: AnyPolicy;
  readonly #parts: AnyPolicy[];
  readonly #subscriptions: Subscription[] = [];
  #closed = false;

  constructor(inner: Service<Req, Res>, policy: AnyPolicy, env: StackEnv) {
    this.#inner = inner;
    this.#policy = policy;
    this.#parts = policiesOf(policy);
    for (const part of this.#parts) {
      for (const [property, event] of Object.entries(COCKATIEL_EVENTS)) {
        const source = (part as unknown as Record<string, unknown>)[property];
        if (typeof source !== 'function') continue;
        this.#subscriptions.push(
          (source as EventSource).call(part, (detail) => {
            if (env.events.wants('cockatiel')) env.events.emit('cockatiel', { service: env.service, event, detail });
          }),
        );
      }
    }
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'cockatiel' }));
    // Cockatiel calls back with its own context; the closure is the price of its API.
    return this.#policy.execute((context) => this.#attempt(req, ctx, context), ctx.signal) as Promise<Res>;
  }

  async #attempt(req: Req, ctx: CallContext, context: IDefaultPolicyContext & { attempt?: number }): Promise<Res> {
    if (context.attempt !== undefined && context.attempt > 0) ctx.beginAttempt(ctx.attempt + 1);
    const signal = context.signal;
    // No policy derived a signal (no cockatiel timeout): the call's own context serves.
    if (signal === undefined || signal === ctx.signal) return this.#inner.call(req, ctx);
    // A cockatiel timeout made its own signal: a fork carries it to the callee.
    const child = ctx.fork();
    const abort = (): void => child.cancel(signal.reason);
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
    try {
      return await this.#inner.call(req, child);
    } finally {
      signal.removeEventListener('abort', abort);
      ctx.release(child);
    }
  }

  ready(): boolean {
    if (this.#closed || !(this.#inner.ready?.() ?? true)) return false;
    for (const part of this.#parts) {
      const state = (part as { state?: unknown }).state;
      if (typeof state === 'number' && REFUSING_STATES.has(state)) return false;
    }
    return true;
  }

  describe(): LayerDescription[] {
    const policies = this.#parts.map((p) => (p as object).constructor?.name ?? 'policy');
    return describeChain({ layer: 'cockatiel', params: { policies } }, this.#inner as Service<unknown, unknown>);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const subscription of this.#subscriptions.splice(0)) subscription.dispose();
    await this.#inner.close?.();
  }
}

/**
 * Turns a cockatiel policy (or a `wrap(...)` of several) into a layer: calls run through
 * `policy.execute`, with the call's signal; a cockatiel timeout's signal reaches the callee;
 * the policies' events (`onRetry`, `onBreak`, `onReset`, `onHalfOpen`, `onGiveUp`, `onTimeout`,
 * `onReject`, ...) are re-published as `cockatiel` events so metrics see them. The listeners
 * are disposed on `close()`; the policy itself stays the application's.
 */
export function fromCockatiel<Req = any, Res = any>(policy: IPolicy<any, any>): Layer<Req, Res> {
  if (typeof (policy as { execute?: unknown } | null)?.execute !== 'function') {
    throw new InvalidOptionError('policy', 'must be a cockatiel policy: an object with execute(fn, signal)');
  }
  return {
    name: 'cockatiel',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new CockatielService(inner, policy as AnyPolicy, env),
  };
}
