/**
 * One continuation for the layers that only look at a call before it starts and after it
 * settles — a circuit breaker's admission and accounting, a concurrency permit, a readiness
 * check, golden metrics. Such a layer's service also implements {@link CallHooks}; when the
 * builder stacks several of them back to back it runs all their `admit` hooks, calls the service
 * beneath once, and reports the outcome to each `settled` hook — one promise hop for the group
 * instead of one per layer (DESIGN.md, principle 1). Layers that change the control flow
 * (retry, hedge, timeout, balance) keep their own `call`.
 *
 * @module
 */

import type { Clock } from './clock.js';
import type { CallContext } from './context.js';
import type { LayerDescription, Service, Settler } from './service.js';
import { callInto, promiseFor, type Settleable, settleFrom } from './settle.js';

/** What a before/after layer does for each call. */
export interface CallHooks {
  /**
   * Decides whether the call may go on: a number (a token handed back to `settled`: a
   * generation, a start time, a partition) admits it now; a promise of one admits it later (a
   * queue or readiness wait); an `Error` refuses it.
   */
  admit(ctx: CallContext): number | Promise<number> | Error;
  /** Called exactly once for every admitted call, outermost hook last. */
  settled(token: number, threw: boolean, outcome: unknown, ctx: CallContext): void;
  /**
   * The clock a hook reads on every call (metrics, adaptive concurrency). The group then shares
   * one reading per edge with the layers around it ({@link CallContext.openTime}), and the hook
   * takes its times from {@link CallContext.timeOn}.
   */
  readonly timedBy?: Clock | undefined;
}

/** The clock of the first hook that reads one on every call. */
function timedBy(hooks: readonly CallHooks[]): Clock | undefined {
  for (const hook of hooks) if (hook.timedBy !== undefined) return hook.timedBy;
  return undefined;
}

/** A service that can run as hooks around a shared continuation. */
export type HookedService<Req, Res> = Service<Req, Res> & CallHooks;

/** Whether a service offers {@link CallHooks}. */
export function isHooked<Req, Res>(service: Service<Req, Res>): service is HookedService<Req, Res> {
  return typeof (service as Partial<CallHooks>).admit === 'function' && typeof (service as Partial<CallHooks>).settled === 'function';
}

function report(
  hooks: readonly CallHooks[],
  tokens: readonly number[],
  upTo: number,
  threw: boolean,
  outcome: unknown,
  ctx: CallContext,
): void {
  for (let i = upTo - 1; i >= 0; i--) {
    try {
      (hooks[i] as CallHooks).settled(tokens[i] as number, threw, outcome, ctx);
    } catch (error) {
      // Accounting must never turn a success into a failure; a throwing hook is our bug.
      process.emitWarning(`sidecarless: a layer's settle hook threw: ${String(error)}`, 'SidecarlessInternalWarning');
    }
  }
}

/**
 * An admitted call whose service beneath reports into it ({@link Service.callInto}): the hooks
 * settle and the caller's promise resolves from the same reaction, with no promise of the
 * service's own in between.
 */
class SettledCall implements Settler, Settleable {
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;
  readonly promise: Promise<unknown> | undefined;
  readonly hooks: readonly CallHooks[];
  readonly tokens: readonly number[];
  readonly ctx: CallContext;
  readonly outer: Settler | undefined;
  readonly clock: Clock | undefined;

  /** With `outer`, the outcome goes on to it (the layer above's settler) instead of a promise. */
  constructor(
    hooks: readonly CallHooks[],
    tokens: readonly number[],
    ctx: CallContext,
    outer: Settler | undefined,
    clock: Clock | undefined,
  ) {
    this.hooks = hooks;
    this.tokens = tokens;
    this.ctx = ctx;
    this.outer = outer;
    this.clock = clock;
    this.promise = outer === undefined ? promiseFor(this) : undefined;
  }

  settle(threw: boolean, outcome: unknown): void {
    const clock = this.clock;
    // No try/finally around the share: `report` catches what hooks throw and settlers do not
    // throw, and this path runs measurably faster without one.
    const opened = clock !== undefined && this.ctx.openTime(clock);
    report(this.hooks, this.tokens, this.hooks.length, threw, outcome, this.ctx);
    if (this.outer !== undefined) this.outer.settle(threw, outcome);
    else if (threw) this.reject(outcome);
    else this.resolve(outcome);
    if (opened) this.ctx.closeTime();
  }
}

/**
 * Runs an admitted call and settles its hooks, then the caller's promise, from one reaction:
 * through the service's settler entry point when it has one.
 */
function runAdmittedCall<Req, Res>(
  hooks: readonly CallHooks[],
  tokens: number[],
  target: Service<Req, Res>,
  req: Req,
  ctx: CallContext,
): Promise<Res> {
  const call = new SettledCall(hooks, tokens, ctx, undefined, timedBy(hooks));
  callInto(target, req, ctx, call);
  return call.promise as Promise<Res>;
}

/** Admits from hook `from` on, waiting where a hook says so; unwinds the admitted ones on refusal. */
async function admitSlowly<Req, Res>(
  hooks: readonly CallHooks[],
  tokens: number[],
  from: number,
  first: Promise<number> | Error,
  target: Service<Req, Res>,
  req: Req,
  ctx: CallContext,
): Promise<Res> {
  let pending: number | Promise<number> | Error = first;
  for (let i = from; i < hooks.length; i++) {
    if (i > from) pending = admitOne(hooks[i] as CallHooks, ctx);
    try {
      if (pending instanceof Error) throw pending;
      tokens[i] = await pending;
    } catch (refusal) {
      report(hooks, tokens, i, true, refusal, ctx);
      throw refusal;
    }
  }
  return runAdmittedCall(hooks, tokens, target, req, ctx);
}

function admitOne(hook: CallHooks, ctx: CallContext): number | Promise<number> | Error {
  try {
    return hook.admit(ctx);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

// What stopped {@link admitAll}: read right after it returns, then cleared.
let unadmitted: Promise<number> | Error | undefined;

/**
 * Runs the hooks' admissions in order. Returns -1 when all admitted the call at once; else the
 * index of the hook that refused (its error, with the admitted hooks already told) or must wait
 * (its promise), left in `unadmitted`.
 */
function admitAll(hooks: readonly CallHooks[], tokens: number[], ctx: CallContext): number {
  for (let i = 0; i < hooks.length; i++) {
    const token = admitOne(hooks[i] as CallHooks, ctx);
    if (typeof token !== 'number') {
      if (token instanceof Error) report(hooks, tokens, i, true, token, ctx);
      unadmitted = token;
      return i;
    }
    tokens[i] = token;
  }
  return -1;
}

/**
 * Hooks of consecutive before/after layers around the service beneath them. Readiness,
 * description and closing go through the outermost layer's own service, which reaches the
 * others through its inner chain as usual.
 */
export class FusedService<Req, Res> implements Service<Req, Res> {
  readonly hooks: readonly CallHooks[];
  /** The first service beneath the group that is not a hook layer. */
  readonly target: Service<Req, Res>;
  readonly #outermost: HookedService<Req, Res>;
  readonly #clock: Clock | undefined;

  constructor(outermost: HookedService<Req, Res>, hooks: readonly CallHooks[], target: Service<Req, Res>) {
    this.#outermost = outermost;
    this.hooks = hooks;
    this.target = target;
    this.#clock = timedBy(hooks);
  }

  /** Puts `outer` (a hooked service wrapping this group) at the head of the group. */
  static over<Req, Res>(outer: HookedService<Req, Res>, inner: Service<Req, Res>): FusedService<Req, Res> {
    if (inner instanceof FusedService) return new FusedService(outer, [outer, ...inner.hooks], inner.target);
    return new FusedService(outer, [outer], inner);
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return this.#run(req, ctx, undefined) as Promise<Res>;
  }

  /** {@link FusedService.call}, reporting to the caller's settler: no promise of the group's own. */
  callInto(req: Req, ctx: CallContext, settler: Settler): void {
    this.#run(req, ctx, settler);
  }

  /** Admits, then calls the target for `settler`, or for a promise of the group's own. */
  #run(req: Req, ctx: CallContext, settler: Settler | undefined): Promise<Res> | undefined {
    const clock = this.#clock;
    // Hooks that read the clock share one reading with the layers beneath (no try/finally:
    // admissions and `callInto` catch what hooks and services throw).
    const opened = clock !== undefined && ctx.openTime(clock);
    const answer = this.#admitAndCall(req, ctx, settler);
    if (opened) ctx.closeTime();
    return answer;
  }

  #admitAndCall(req: Req, ctx: CallContext, settler: Settler | undefined): Promise<Res> | undefined {
    const hooks = this.hooks;
    const tokens = new Array<number>(hooks.length);
    const stopped = admitAll(hooks, tokens, ctx);
    if (stopped < 0) {
      const call = new SettledCall(hooks, tokens, ctx, settler, this.#clock);
      callInto(this.target, req, ctx, call);
      return call.promise as Promise<Res> | undefined;
    }
    return this.#refusedOrLater(req, ctx, settler, tokens, stopped);
  }

  /** A hook refused the call, or must wait (a queue, a readiness wait): off the common path. */
  #refusedOrLater(req: Req, ctx: CallContext, settler: Settler | undefined, tokens: number[], stopped: number): Promise<Res> | undefined {
    const answer = unadmitted as Promise<number> | Error;
    unadmitted = undefined;
    if (answer instanceof Error) {
      if (settler === undefined) return Promise.reject(answer);
      settler.settle(true, answer);
      return undefined;
    }
    const later = admitSlowly(this.hooks, tokens, stopped, answer, this.target, req, ctx);
    if (settler === undefined) return later;
    settleFrom(later, settler);
    return undefined;
  }

  /** The service of the outermost layer of the group (its handle: state, stats, ...). */
  get outermost(): HookedService<Req, Res> {
    return this.#outermost;
  }

  ready(): boolean {
    return this.#outermost.ready?.() ?? true;
  }

  describe(): LayerDescription[] {
    return this.#outermost.describe?.() ?? [];
  }

  close(): void | Promise<void> {
    return this.#outermost.close?.();
  }
}

/**
 * A hook layer's own `call`, for when it is not fused with neighbours (used through
 * `Layer.wrap` directly, or alone): the same admission and accounting, one hop.
 */
export function callThroughHooks<Req, Res>(hooks: CallHooks, inner: Service<Req, Res>, req: Req, ctx: CallContext): Promise<Res> {
  const clock = hooks.timedBy;
  const opened = clock !== undefined && ctx.openTime(clock);
  const token = admitOne(hooks, ctx);
  const answer =
    typeof token === 'number'
      ? runAdmittedCall([hooks], [token], inner, req, ctx)
      : token instanceof Error
        ? Promise.reject(token)
        : admitSlowly([hooks], [0], 0, token, inner, req, ctx);
  if (opened) ctx.closeTime();
  return answer;
}
