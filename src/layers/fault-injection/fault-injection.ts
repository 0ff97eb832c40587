import type { Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { DeadlineEntry, type DeadlineQueue } from '../../core/deadlines.js';
import { formatDuration } from '../../core/duration.js';
import { ServiceClosedError, TimeoutError } from '../../core/errors.js';
import type { Param } from '../../core/params.js';
import { describeChain, type LayerDescription, type Service, type StackEnv } from '../../core/service.js';
import type { FaultInjectionParams } from './options.js';

/** What the layer injected. */
export interface FaultInjectionStats {
  calls: number;
  delayed: number;
  aborted: number;
}

type WaitOutcome = 'elapsed' | 'woken';

/** One injected delay: an entry in the shared deadline lists, woken early by cancellation. */
class InjectedDelay extends DeadlineEntry {
  resolve!: (outcome: WaitOutcome) => void;
  readonly ctx: CallContext;
  readonly owner: FaultInjectionService<unknown, unknown>;
  readonly wake = (): void => this.finish('woken');

  constructor(owner: FaultInjectionService<unknown, unknown>, ctx: CallContext) {
    super();
    this.owner = owner;
    this.ctx = ctx;
  }

  expire(): void {
    this.finish('elapsed');
  }

  finish(outcome: WaitOutcome): void {
    this.list?.remove(this);
    this.ctx.setWaker(undefined);
    this.owner.delays.delete(this);
    this.resolve(outcome);
  }
}

/** The service of the fault injection layer; see the module doc in `index.ts`. */
export class FaultInjectionService<Req, Res> implements Service<Req, Res> {
  readonly stats: FaultInjectionStats = { calls: 0, delayed: 0, aborted: 0 };
  /** @internal delays in progress, woken on close so no timer outlives the stack. */
  readonly delays = new Set<InjectedDelay>();
  readonly #inner: Service<Req, Res>;
  readonly #param: Param<FaultInjectionParams>;
  readonly #env: StackEnv;
  readonly #clock: Clock;
  readonly #deadlines: DeadlineQueue;
  #closed = false;

  constructor(inner: Service<Req, Res>, param: Param<FaultInjectionParams>, env: StackEnv) {
    this.#inner = inner;
    this.#param = param;
    this.#env = env;
    this.#clock = env.clock;
    this.#deadlines = env.deadlines;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    if (this.#closed) return Promise.reject(new ServiceClosedError({ layer: 'fault-injection' }));
    const p = this.#param.get();
    this.stats.calls++;
    if (p.delayPercent > 0 && this.#draw(p.delayPercent)) return this.#delayThenCall(req, ctx, p);
    if (p.abortPercent > 0 && this.#draw(p.abortPercent)) return Promise.reject(this.#abort(p));
    return this.#inner.call(req, ctx);
  }

  async #delayThenCall(req: Req, ctx: CallContext, p: FaultInjectionParams): Promise<Res> {
    if (ctx.cancelled) throw ctx.cancelReason;
    const now = this.#clock.now();
    const until = Math.min(now + p.delayMs, ctx.deadline);
    if (until > now) {
      this.stats.delayed++;
      const events = this.#env.events;
      if (events.wants('fault')) events.emit('fault', { service: this.#env.service, kind: 'delay', delayMs: p.delayMs });
      const delay = new InjectedDelay(this as FaultInjectionService<unknown, unknown>, ctx);
      const waited = new Promise<WaitOutcome>((resolve) => {
        delay.resolve = resolve;
      });
      this.delays.add(delay);
      ctx.setWaker(delay.wake);
      this.#deadlines.listFor(p.delayMs).insert(delay, until, now);
      if ((await waited) === 'woken') {
        if (this.#closed) throw new ServiceClosedError({ layer: 'fault-injection' });
        // Cancelled, or a deadline above fired: the reason is the attempt's.
        throw ctx.cancelReason ?? ctx.signal.reason;
      }
    }
    if (this.#clock.now() >= ctx.deadline) throw new TimeoutError(Math.max(0, Math.round(until - now)), { layer: 'fault-injection' });
    if (p.abortPercent > 0 && this.#draw(p.abortPercent)) throw this.#abort(p);
    return this.#inner.call(req, ctx);
  }

  #draw(percent: number): boolean {
    return percent >= 100 || this.#env.random() * 100 < percent;
  }

  #abort(p: FaultInjectionParams): unknown {
    this.stats.aborted++;
    const events = this.#env.events;
    if (events.wants('fault')) events.emit('fault', { service: this.#env.service, kind: 'abort', status: p.abortStatus });
    return p.abortError();
  }

  ready(): boolean {
    return !this.#closed && (this.#inner.ready?.() ?? true);
  }

  describe(): LayerDescription[] {
    const p = this.#param.get();
    return describeChain(
      {
        layer: 'fault-injection',
        params: {
          delay: { percentage: p.delayPercent, fixedDelay: formatDuration(p.delayMs) },
          abort: { percentage: p.abortPercent, status: p.abortStatus },
        },
        state: { ...this.stats },
      },
      this.#inner as Service<unknown, unknown>,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const delay of [...this.delays]) delay.finish('woken');
    this.#deadlines.disarmIfIdle();
    await this.#inner.close?.();
  }
}
