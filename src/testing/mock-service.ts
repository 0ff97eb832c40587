import type { CallContext } from '../core/context.js';
import type { Service } from '../core/service.js';

/** One call the mock received; answer it, fail it, or leave it pending. */
export class MockCall<Req, Res> {
  readonly req: Req;
  readonly ctx: CallContext;
  /** 1-based position among the mock's calls. */
  readonly index: number;
  /** The attempt number the stack gave this call (the context's, when the call arrived). */
  readonly attempt: number;
  /** The deadline in force when the call arrived. */
  readonly deadline: number;
  #settled = false;
  readonly #resolve: (value: Res) => void;
  readonly #reject: (error: unknown) => void;

  /** @internal */
  constructor(req: Req, ctx: CallContext, index: number, resolve: (value: Res) => void, reject: (error: unknown) => void) {
    this.req = req;
    this.ctx = ctx;
    this.index = index;
    this.attempt = ctx.attempt;
    this.deadline = ctx.deadline;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Whether it was answered or failed. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Answers the call. */
  respond(value: Res): void {
    if (this.#settled) throw new Error(`mock call ${this.index} already settled`);
    this.#settled = true;
    this.#resolve(value);
  }

  /** Fails the call. */
  fail(error: unknown): void {
    if (this.#settled) throw new Error(`mock call ${this.index} already settled`);
    this.#settled = true;
    this.#reject(error);
  }
}

/** A scripted answer: a value, or `{ error }` to fail; `hold` leaves the call to the test. */
export type MockStep<Res> = { value: Res } | { error: unknown } | 'hold';

/**
 * A service whose each call the test answers — tower-test's mock handle. Calls can be scripted
 * up front (`mock.script({ error }, { error }, { value: 'ok' })`) or taken one at a time with
 * {@link MockService.nextCall} and answered, failed or held.
 */
export class MockService<Req = unknown[], Res = unknown> implements Service<Req, Res> {
  readonly calls: MockCall<Req, Res>[] = [];
  readonly #script: MockStep<Res>[] = [];
  readonly #waiters: ((call: MockCall<Req, Res>) => void)[] = [];
  readonly #unclaimed: MockCall<Req, Res>[] = [];
  #ready = true;
  closed = false;

  /** A function for `builder.service(mock.fn)`: its calls come to this mock. */
  readonly fn = (...args: unknown[]): Promise<Res> => {
    const ctx = args[args.length - 1] as CallContext;
    return this.call(args.slice(0, -1) as Req, ctx);
  };

  /** Queues answers for the next calls, in order. */
  script(...steps: MockStep<Res>[]): this {
    this.#script.push(...steps);
    return this;
  }

  /** Makes {@link MockService.ready} report `value` (for load shedding and balancer tests). */
  setReady(value: boolean): void {
    this.#ready = value;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const call = new MockCall<Req, Res>(req, ctx, this.calls.length + 1, resolve, reject);
      this.calls.push(call);
      const step = this.#script.shift();
      if (step !== undefined && step !== 'hold') {
        if ('error' in step) call.fail(step.error);
        else call.respond(step.value);
        return;
      }
      const waiter = this.#waiters.shift();
      if (waiter !== undefined) waiter(call);
      else this.#unclaimed.push(call);
    });
  }

  /** The next call not answered by the script (waits for it if none yet). */
  nextCall(): Promise<MockCall<Req, Res>> {
    const call = this.#unclaimed.shift();
    if (call !== undefined) return Promise.resolve(call);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Calls not yet settled. */
  get pending(): MockCall<Req, Res>[] {
    return this.calls.filter((c) => !c.settled);
  }

  ready(): boolean {
    return this.#ready && !this.closed;
  }

  close(): void {
    this.closed = true;
  }
}
