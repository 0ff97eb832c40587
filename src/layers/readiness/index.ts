/**
 * # readiness
 *
 * Holds or refuses calls until a {@link Readiness} is reached — the first config snapshot
 * arrived, endpoints resolved, a cache warmed. In `wait` mode (the default) a call waits for
 * readiness, bounded by its deadline and by `maxWait`; in `fail` mode it is refused at once
 * with {@link NotReadyError}, which names the latches still held. Once ready, the check is one
 * field read.
 *
 * Prior art: linkerd2-proxy's `Readiness`/`Latch` and its admin `/ready`; Kubernetes
 * readiness gates.
 *
 * @module
 */

import { z } from 'zod';
import type { CallContext } from '../../core/context.js';
import { type Duration, formatDuration } from '../../core/duration.js';
import { NotReadyError, ServiceClosedError } from '../../core/errors.js';
import { type CallHooks, callThroughHooks } from '../../core/hooks.js';
import { describeChain, type Layer, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import { duration, parseOptions } from '../../core/validate.js';
import type { Readiness } from './readiness.js';

export { Latch, Readiness } from './readiness.js';

/** Options of the readiness layer. */
export interface ReadinessOptions {
  /** `wait` for readiness (default) or `fail` fast with {@link NotReadyError}. */
  mode?: 'wait' | 'fail';
  /** Longest a call waits, within its deadline. Default: the deadline alone. */
  maxWait?: Duration;
}

const schema = z.strictObject({
  mode: z.enum(['wait', 'fail'], { error: 'must be "wait" or "fail"' }).default('wait'),
  maxWait: duration(0).optional(),
});

/** The service of the readiness layer. */
export class ReadinessService<Req, Res> implements Service<Req, Res>, CallHooks {
  readonly #inner: Service<Req, Res>;
  readonly #readiness: Readiness;
  readonly #mode: 'wait' | 'fail';
  readonly #maxWaitMs: number;
  readonly #env: StackEnv;
  readonly #waiting = new Set<() => void>();
  #closed = false;

  constructor(inner: Service<Req, Res>, readiness: Readiness, mode: 'wait' | 'fail', maxWaitMs: number, env: StackEnv) {
    this.#inner = inner;
    this.#readiness = readiness;
    this.#mode = mode;
    this.#maxWaitMs = maxWaitMs;
    this.#env = env;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return callThroughHooks(this, this.#inner, req, ctx);
  }

  /** @internal admission: at once when ready, else a wait or a refusal. */
  admit(ctx: CallContext): number | Promise<number> | Error {
    if (this.#closed) return new ServiceClosedError({ layer: 'readiness' });
    if (this.#readiness.isReady) return 0;
    if (this.#mode === 'fail') return this.#refuse();
    if (ctx.cancelled) return ctx.cancelReason as Error;
    return this.#waitForReady(ctx);
  }

  /** @internal nothing to account. */
  settled(): void {}

  async #waitForReady(ctx: CallContext): Promise<number> {
    const clock = this.#env.clock;
    const waitMs = Math.min(this.#maxWaitMs, ctx.deadline - clock.now());
    const ready = await new Promise<boolean>((resolve) => {
      let timer: unknown;
      const finish = (outcome: boolean): void => {
        subscription.dispose();
        this.#waiting.delete(abandon);
        ctx.setWaker(undefined);
        if (timer !== undefined) clock.clearTimer(timer);
        resolve(outcome);
      };
      const abandon = (): void => finish(false);
      const subscription = this.#readiness.onReady(() => finish(true));
      this.#waiting.add(abandon);
      ctx.setWaker(abandon);
      if (waitMs !== Number.POSITIVE_INFINITY) timer = clock.setTimer(abandon, Math.max(0, waitMs));
    });
    if (ready) return 0;
    // Woken by the caller's cancel (or a deadline above): the call ends for that reason.
    if (ctx.cancelled) throw ctx.cancelReason;
    throw this.#refuse();
  }

  #refuse(): NotReadyError {
    const pending = this.#readiness.pending;
    if (this.#env.events.wants('not-ready')) this.#env.events.emit('not-ready', { service: this.#env.service, pending });
    return new NotReadyError(pending);
  }

  ready(): boolean {
    return !this.#closed && this.#readiness.isReady && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    return describeChain(
      {
        layer: 'readiness',
        params: { mode: this.#mode, maxWait: formatDuration(this.#maxWaitMs) },
        state: { ready: this.#readiness.isReady, pending: this.#readiness.pending },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const abandon of [...this.#waiting]) abandon();
    await this.#inner.close?.();
  }
}

/** The readiness layer: `.readiness(readiness, { mode: 'fail' })`. */
export function readiness<Req, Res>(gate: Readiness, options: ReadinessOptions = {}): Layer<Req, Res> {
  const parsed = parseOptions(schema, options, 'readiness');
  const maxWaitMs = parsed.maxWait ?? Number.POSITIVE_INFINITY;
  return {
    name: 'readiness',
    wrap: (inner: Service<Req, Res>, env: StackEnv) => new ReadinessService(inner, gate, parsed.mode, maxWaitMs, env),
  };
}
