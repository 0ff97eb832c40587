import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { parseOptions } from '../../core/validate.js';
import { appendHeader, deadlineHeaderValue, httpClassifier, methodRefusal } from '../shared/http.js';
import { buildOutbound, type OutboundHandle } from '../shared/outbound.js';
import { Replayable, replayBuffer, type StreamBody } from './body.js';
import { type HttpOutboundOptions, httpOutboundShape } from './options.js';

const schema = z.strictObject(httpOutboundShape);

/** Options of {@link meshInterceptor}. */
export type MeshInterceptorOptions = HttpOutboundOptions;

type Controller = Dispatcher.DispatchController;
type Handler = Dispatcher.DispatchHandler;

/** One dispatch of one attempt; holds the response (paused) until the stack picks or drops it. */
class Attempt {
  statusCode = 0;
  headers: Record<string, string | string[] | undefined> = {};
  statusMessage: string | undefined = undefined;
  controller: Controller | undefined = undefined;
  chunks: Buffer[] = [];
  trailers: Record<string, string | string[] | undefined> | undefined = undefined;
  error: Error | undefined = undefined;
  /** The outer call once adopted: later events go straight to the caller's handler. */
  adopted: OuterCall | undefined = undefined;
  discarded = false;
  resolve!: (attempt: Attempt) => void;
  reject!: (error: unknown) => void;
  started = false;
  /** Why the attempt was aborted, kept for a dispatch that has not started yet. */
  abortReason: Error | undefined = undefined;

  /** Aborts the dispatch now, or as soon as it starts. */
  abort(reason: Error): void {
    this.abortReason ??= reason;
    this.controller?.abort(reason);
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller;
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }
  onResponseStart(
    controller: Controller,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return;
    this.controller = controller;
    this.statusCode = statusCode;
    this.headers = headers;
    this.statusMessage = statusMessage;
    this.started = true;
    controller.pause();
    this.resolve(this);
  }
  onResponseData(_controller: Controller, chunk: Buffer): void {
    if (this.adopted !== undefined) this.adopted.data(chunk);
    else if (!this.discarded) this.chunks.push(chunk);
  }
  onResponseEnd(_controller: Controller, trailers: Record<string, string | string[] | undefined>): void {
    if (this.adopted !== undefined) this.adopted.end(trailers);
    else this.trailers = trailers;
  }
  onResponseError(_controller: Controller, error: Error): void {
    if (!this.started) this.reject(error);
    else if (this.adopted !== undefined) this.adopted.fail(error);
    else this.error = error;
  }
}

/**
 * The caller's side: its handler, and a controller whose abort reaches the current attempt. It
 * also runs the call (see {@link OuterCall.run}), so a dispatch allocates this object, the
 * request and one promise, and no closures.
 */
class OuterCall implements Controller {
  readonly handler: Handler;
  readonly ctx: CallContext;
  current: Attempt | undefined = undefined;
  #aborted = false;
  #reason: Error | null = null;
  #paused = false;

  constructor(handler: Handler, ctx: CallContext) {
    this.handler = handler;
    this.ctx = ctx;
  }
  /**
   * Sends the call down the stack and hands the chosen attempt to the caller. Never rejects:
   * every outcome reaches the caller's handler.
   */
  async run(service: Service<DispatchRequest, Attempt>, req: DispatchRequest): Promise<void> {
    try {
      this.adopt(await req.releasingBody(service.call(req, this.ctx)));
    } catch (error) {
      this.fail(error);
    }
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get reason(): Error | null {
    return this.#reason;
  }
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.ctx.cancel(reason);
    this.current?.abort(reason);
  }
  pause(): void {
    this.#paused = true;
    this.current?.controller?.pause();
  }
  resume(): void {
    this.#paused = false;
    this.current?.controller?.resume();
  }
  adopt(attempt: Attempt): void {
    this.current = attempt;
    this.handler.onResponseStart?.(this, attempt.statusCode, attempt.headers, attempt.statusMessage);
    for (const chunk of attempt.chunks) this.data(chunk);
    attempt.chunks = [];
    if (attempt.error !== undefined) this.fail(attempt.error);
    else if (attempt.trailers !== undefined) this.end(attempt.trailers);
    else {
      attempt.adopted = this;
      if (!this.#paused) attempt.controller?.resume();
    }
  }
  data(chunk: Buffer): void {
    this.handler.onResponseData?.(this, chunk);
  }
  end(trailers: Record<string, string | string[] | undefined>): void {
    this.handler.onResponseEnd?.(this, trailers);
  }
  fail(error: unknown): void {
    this.handler.onResponseError?.(this, error as Error);
  }
}

/** One logical request: mutable, as its body is only planned once a stream has been read. */
class DispatchRequest extends Replayable {
  readonly dispatch: Dispatcher['dispatch'];
  opts: Dispatcher.DispatchOptions;
  readonly outer: OuterCall;
  constructor(dispatch: Dispatcher['dispatch'], opts: Dispatcher.DispatchOptions, outer: OuterCall) {
    super();
    this.dispatch = dispatch;
    this.opts = opts;
    this.outer = outer;
  }
  protected useBody(body: NonNullable<RequestInit['body']> | StreamBody): void {
    this.opts = { ...this.opts, body: body as Dispatcher.DispatchOptions['body'] };
  }
}

class DispatchService implements Service<DispatchRequest, Attempt> {
  readonly #clock: Clock;
  readonly #header: string | false;

  constructor(env: StackEnv, header: string | false) {
    this.#clock = env.clock;
    this.#header = header;
  }

  call(req: DispatchRequest, ctx: CallContext): Promise<Attempt> {
    const attempt = new Attempt();
    const promise = new Promise<Attempt>((resolve, reject) => {
      attempt.resolve = resolve;
      attempt.reject = reject;
    });
    req.outer.current = attempt;
    if (ctx.cancelled) return Promise.reject(ctx.cancelReason);
    // Abort the dispatch when the context's signal fires: a deadline, a hedge that lost, a
    // cancelled call. The caller's own abort reaches the current attempt through the outer
    // call, so the outer context without a deadline is not asked for a signal (on the common
    // path that would only hand out one that never fires).
    const signal = ctx.deadline !== Number.POSITIVE_INFINITY || ctx !== req.outer.ctx ? ctx.signal : undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Claimed once nothing can stop the attempt before it sends: a claim by an attempt refused
    // here would leave a one-shot body marked sent that never went out.
    const sentAlready = req.claimSend();
    if (sentAlready !== undefined) return Promise.reject(sentAlready);
    if (signal !== undefined && !isNeverAborted(signal))
      signal.addEventListener('abort', () => attempt.abort(signal.reason), { once: true });
    let opts = req.opts;
    if (this.#header !== false && ctx.deadline !== Number.POSITIVE_INFINITY) {
      opts = { ...opts, headers: appendHeader(opts.headers, this.#header, deadlineHeaderValue(ctx.deadline, this.#clock.now())) };
    }
    req.dispatch(opts, attempt as unknown as Handler);
    return req.marked(promise);
  }

  describe(): LayerDescription[] {
    return [{ layer: 'undici-dispatch', params: { deadlineHeader: this.#header } }];
  }
}

/** Drops an attempt that will be retried: its response is aborted, its connection freed. */
function discardAttempt(result: unknown): void {
  const attempt = result as Attempt;
  attempt.discarded = true;
  attempt.chunks = [];
  attempt.abort(new Error('sidecarless: response discarded for a retry'));
}

/**
 * An undici interceptor running every request of a dispatcher through a sidecarless stack:
 * `setGlobalDispatcher(new Agent().compose(meshInterceptor({ name: 'egress' })))` makes every
 * `fetch` of the process meshed — an explicit opt-in, never an implicit patch. A response is
 * held (paused) at its headers until it is classified; a retried one is aborted.
 *
 * Request bodies follow `meshFetch`'s replay rules. fetch hands every body to its dispatcher as
 * an async iterable, so a body of a request that may be retried (an idempotent method, or any
 * with `retryNonIdempotent`) is read into the replay buffer (64 KiB by default) before the first
 * attempt, within the call's timeout and the caller's abort, and every attempt sends the same
 * bytes. A body that does not fit is sent once,
 * streamed (what was read, then the rest), and a retryable failure of it is not retried: it is
 * counted in `replayRefused` and published as a `replay-refused` event, with the reason. A
 * request that will not be retried anyway (a POST by default, or `retry: false`) is streamed
 * through without buffering.
 *
 * The returned function carries the stack's handles (`events`, `describe()`, `close()`).
 */
export function meshInterceptor(options: MeshInterceptorOptions = {}): Dispatcher.DispatcherComposeInterceptor & OutboundHandle {
  const parsed = parseOptions(schema, options, 'meshInterceptor');
  const retryNonIdempotent = parsed.retryNonIdempotent;
  const limit = parsed.replayBuffer;
  // With retries off nothing is ever replayed: stream every body straight through.
  const mayRetry = options.retry !== false;
  const { service, handle } = buildOutbound<DispatchRequest, Attempt>(
    options,
    httpClassifier(),
    discardAttempt,
    (env) => new DispatchService(env, parsed.deadlineHeader),
    undefined,
    mayRetry ? replayBuffer(limit) : undefined,
  );
  const interceptor = (dispatch: Dispatcher['dispatch']): Dispatcher['dispatch'] => {
    return (opts, handler) => {
      const ctx = new CallContext();
      const outer = new OuterCall(handler, ctx);
      handler.onRequestStart?.(outer, {});
      const req = new DispatchRequest(dispatch, opts, outer);
      req.refusal = methodRefusal(opts.method.toUpperCase(), retryNonIdempotent);
      req.planBody(opts.body, limit, mayRetry);
      void outer.run(service, req);
      return true;
    };
  };
  return Object.assign(interceptor, handle);
}
