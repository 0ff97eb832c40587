/**
 * Request bodies and replay. A retry must send the same bytes again, so a body is replayable
 * only if it can be produced twice: strings, byte arrays, `URLSearchParams`, `Blob` and
 * `FormData` can (fetch serializes them anew each time) if they fit the replay buffer; a stream
 * is read into the buffer, and replayed from it, if it ends within the limit. A body over the
 * limit is still sent — once, streamed, never silently cut — and the request is marked so that
 * a retryable failure of it is not retried, with the reason.
 *
 * A stream is read inside the stack, by {@link replayBuffer} under the total timeout and above
 * the retries, so the call's deadline and the caller's signal stop a body that never ends.
 *
 * The read belongs to the call, not to the attempt that happens to start it. A caller's builder
 * may put attempts of its own above the buffer (a retry with a per-try timeout, a hedge), and
 * the body is the caller's one stream, as a `fetch` body is: fetch cancels it when the fetch is
 * aborted, never because one try of a retry policy gave up. So the read runs once, until it ends
 * or the call settles (the caller's abort, the total deadline, a layer that answers without it);
 * an attempt whose own signal fires only stops waiting for it, and the next attempt waits on.
 * Forcing the buffer above the caller's layers instead would read the body outside their total
 * timeout, concurrency limit and metrics, and before a breaker could refuse the call. When the
 * call ends, a stream no attempt will send any more is let go (see
 * {@link Replayable.releasingBody}): the caller handed it over and cannot cancel it itself.
 *
 * @module
 */

import type { CallContext } from '../../core/context.js';
import { isNeverAborted } from '../../core/context.js';
import { CancelledError } from '../../core/errors.js';
import { describeChain, type Layer, type LayerDescription, type Service, type Settler } from '../../core/service.js';
import { callInto, settleFrom } from '../../core/settle.js';
import { refusingReplay } from '../shared/outbound.js';
import { abortError, cancelUnread, replayThenRest, type Source, sourceOf, waitUntil } from './stream-source.js';

/** Default replay buffer: 64 KiB, linkerd2-proxy's. */
export const DEFAULT_REPLAY_LIMIT = 64 * 1024;

/** How a body will be sent on every attempt. */
export interface BodyPlan {
  /** The body to send on each attempt; `undefined` keeps the caller's init as it is. */
  readonly body: RequestInit['body'] | undefined;
  /** Why the request cannot be replayed, if it cannot. */
  readonly refusal: string | undefined;
  /** A one-shot stream (the rest of a body over the limit), to be sent on the first attempt only. */
  readonly oneShot: boolean;
}

const KEEP: BodyPlan = Object.freeze({ body: undefined, refusal: undefined, oneShot: false });

/** The reason given for a body over the limit. */
export function tooLargeReason(limit: number): string {
  return `request body larger than the ${limit >= 1024 ? `${limit / 1024} KiB` : `${limit} B`} replay buffer`;
}

/** Size in bytes of a body that is not a stream, or `undefined` when it cannot be known cheaply. */
function sizeOf(body: unknown, limit: number): number | undefined {
  if (typeof body === 'string') return body.length * 3 <= limit ? body.length : Buffer.byteLength(body);
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  if (body instanceof URLSearchParams) return sizeOf(body.toString(), limit);
  if (body instanceof Blob) return body.size;
  return undefined;
}

/** A body that can be read once only: a web stream, or an async iterable (a Node stream). */
export type StreamBody = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * The replay state of one logical request, which each HTTP client integration's request
 * extends: why it must not be sent again, whether its body can go out once only, and a stream
 * body still to be read into the replay buffer.
 */
export abstract class Replayable {
  /** Why the request must not be retried (a method, a body over the limit); `undefined` if it may be. */
  refusal: string | undefined = undefined;
  /** The body is a stream sent as it is read: it can go out on one attempt only. */
  oneShot = false;
  /** A one-shot body has gone out: no later attempt (a hedge, which keeps attempt 1) may send it. */
  sent = false;
  /** A stream body that {@link replayBuffer} is still to read. */
  unread: StreamBody | undefined = undefined;
  /** The read of {@link Replayable.unread}, shared by every attempt that waits for it (a retry's, a hedge's). */
  reading: Promise<void> | undefined = undefined;
  /** Stops the read while it runs; see {@link Replayable.releasingBody}. */
  #stopRead: AbortController | undefined = undefined;
  /** The caller's stream body, let go when the call ends without having sent it (see {@link Replayable.releasingBody}). */
  #stream: StreamBody | undefined = undefined;
  /** Our reader of {@link Replayable.#stream} once the replay read started: what stops the rest of it. */
  #source: Source | undefined = undefined;

  /** Makes every attempt send `body` in place of the caller's. */
  protected abstract useBody(body: NonNullable<RequestInit['body']> | AsyncIterable<Uint8Array>): void;

  /**
   * Judges the request's body, once per call: one that needs no reading at once; a stream of a
   * request that may be retried is left {@link Replayable.unread} for {@link replayBuffer}; any
   * other stream is never replayed, so it goes out as it is read, once.
   */
  planBody(body: unknown, limit: number, mayRetry: boolean): void {
    const plan = planBody(body, limit);
    if (plan !== undefined) {
      this.refusal ??= plan.refusal;
      return;
    }
    this.#stream = body as StreamBody;
    if (this.refusal === undefined && mayRetry) this.unread = body as StreamBody;
    else {
      this.oneShot = true;
      this.useBody(body as StreamBody);
    }
  }

  /**
   * Waits, until the attempt's `signal` fires, for {@link Replayable.unread} to be read into the
   * replay buffer (see {@link planStreamBody}); the first attempt to come starts the read. The
   * read is the call's: `signal` firing rejects this attempt's wait only, and the read goes on
   * for the next attempt until {@link Replayable.releasingBody}'s call settles.
   */
  readBody(limit: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortError(signal.reason));
    if (this.reading === undefined) {
      let source: Source;
      try {
        // A locked stream cannot be read (fetch refuses one too): every attempt gets the error.
        source = sourceOf(this.unread as StreamBody);
      } catch (error) {
        return Promise.reject(error);
      }
      this.unread = undefined;
      this.#source = source;
      const stop = new AbortController();
      this.#stopRead = stop;
      this.reading = planStreamBody(source, limit, stop.signal).then(
        (plan) => {
          this.#stopRead = undefined;
          // The call ended as the read did (the read's stop listener was already gone): nothing
          // will send this, and the release has let the stream go.
          if (stop.signal.aborted) throw stop.signal.reason;
          this.useBody(plan.body as NonNullable<RequestInit['body']>);
          this.oneShot = plan.oneShot;
          this.refusal ??= plan.refusal;
        },
        (error: unknown) => {
          this.#stopRead = undefined;
          throw error;
        },
      );
      // Its waiters handle a failure; a read stopped once the call settled has none left.
      this.reading.catch(() => {});
    }
    return waitUntil(this.reading, signal);
  }

  /**
   * The call's promise, `call`, after whose settling the caller's stream body is let go when no
   * attempt will send it any more — as `fetch` cancels its body when aborted: a read still
   * running is stopped, and the stream (or what is left of it past the replay buffer) is
   * cancelled if the call ended before an attempt sent it (aborted, refused by a layer, answered
   * by a fallback) or if the call failed after sending it (a client does not cancel a body it
   * locked when its request fails). A body sent by a call that succeeded is the client's. The
   * integration's entry wraps every call with a stream body; the rest pass through with no
   * promise of ours.
   */
  releasingBody<T>(call: Promise<T>): Promise<T> {
    if (this.#stream === undefined) return call;
    return call.then(
      (value) => {
        this.#release(false);
        return value;
      },
      (error: unknown) => {
        this.#release(true);
        throw error;
      },
    );
  }

  #release(failed: boolean): void {
    const reason = new CancelledError({ layer: 'replay-buffer' });
    this.#stopRead?.abort(reason);
    const stream = this.#stream;
    const source = this.#source;
    this.#stream = undefined;
    this.#source = undefined;
    this.unread = undefined;
    if (this.sent && !failed) return;
    if (source !== undefined) source.cancel(reason);
    else if (stream !== undefined) cancelUnread(stream, reason);
  }

  /**
   * Claims the one send of a one-shot body: the error to reject an attempt with when it has
   * gone out already. A retry never comes here (the request is refused), but a hedge above
   * sends on a fork, still attempt 1, and a drained stream must not go out empty or truncated.
   */
  claimSend(): Error | undefined {
    if (!this.oneShot) return undefined;
    if (this.sent) return new Error(`sidecarless: ${this.refusal ?? 'one-shot body'}: not sent again`);
    this.sent = true;
    return undefined;
  }

  /** An attempt's outcome, marked not replayable when the request is refused. */
  marked<T>(promise: Promise<T>): Promise<T> {
    return refusingReplay(promise, this.refusal);
  }
}

/**
 * The layer that reads a request's stream body into the replay buffer, once per call. It sits
 * under the total timeout and above the retries, so the read is part of the call: the deadline
 * or the caller's signal ends it and the call rejects with their error, where a read before
 * the stack held the call for as long as the body took, forever for one that never ends. Under
 * attempts of a caller's builder, each attempt waits for the one read under its own signal (see
 * the module doc).
 */
export function replayBuffer<Req extends Replayable, Res>(limit: number): Layer<Req, Res> {
  return { name: 'replay-buffer', wrap: (inner) => new ReplayBufferService(inner, limit) };
}

class ReplayBufferService<Req extends Replayable, Res> implements Service<Req, Res> {
  readonly #inner: Service<Req, Res>;
  readonly #limit: number;

  constructor(inner: Service<Req, Res>, limit: number) {
    this.#inner = inner;
    this.#limit = limit;
  }

  call(req: Req, ctx: CallContext): Promise<Res> {
    // Most requests have nothing to read: they pass through without a promise of ours.
    if (req.unread === undefined && req.reading === undefined) return this.#inner.call(req, ctx);
    return this.#readThenCall(req, ctx);
  }

  callInto(req: Req, ctx: CallContext, settler: Settler): void {
    if (req.unread === undefined && req.reading === undefined) callInto(this.#inner, req, ctx, settler);
    else settleFrom(this.#readThenCall(req, ctx), settler);
  }

  async #readThenCall(req: Req, ctx: CallContext): Promise<Res> {
    const signal = ctx.signal;
    if (!isNeverAborted(signal)) await req.readBody(this.#limit, signal);
    else {
      // No deadline and no caller's signal, yet the call can still be cancelled (the
      // interceptor's caller aborts through ctx.cancel): the context's waker hears that.
      const controller = new AbortController();
      ctx.setWaker(() => controller.abort(ctx.cancelReason));
      try {
        await req.readBody(this.#limit, controller.signal);
      } finally {
        ctx.setWaker(undefined);
      }
    }
    return this.#inner.call(req, ctx);
  }

  ready(): boolean {
    return this.#inner.ready?.() ?? true;
  }

  describe(): LayerDescription[] {
    return describeChain({ layer: 'replay-buffer', params: { limit: this.#limit } }, this.#inner as Service<unknown, unknown>);
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}

/** Whether a body is a stream or async iterable, which can be read once only. */
function isStream(body: unknown): body is ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> {
  return body instanceof ReadableStream || (typeof body === 'object' && body !== null && Symbol.asyncIterator in body);
}

/**
 * Plans a body that needs no reading (the common case, synchronously): returns `undefined` when
 * the body is a stream and {@link planStreamBody} must read it.
 */
export function planBody(body: unknown, limit: number): BodyPlan | undefined {
  if (body === undefined || body === null) return KEEP;
  if (isStream(body)) return undefined;
  const size = sizeOf(body, limit);
  if (size !== undefined && size > limit) return { body: undefined, refusal: tooLargeReason(limit), oneShot: false };
  return KEEP;
}

/**
 * Reads a stream body into the replay buffer. If it ends within `limit`, every attempt sends
 * the buffered bytes; otherwise the first attempt sends what was read followed by the rest of
 * the stream, and the request is not replayable. When `signal` fires first, the read is
 * cancelled (a web stream is cancelled, a Node stream destroyed) and the promise rejects with
 * the signal's reason.
 */
async function planStreamBody(source: Source, limit: number, signal?: AbortSignal): Promise<BodyPlan> {
  let stopped: Promise<never> | undefined;
  let onAbort: (() => void) | undefined;
  if (signal !== undefined && !isNeverAborted(signal)) {
    stopped = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(abortError(signal.reason));
        source.cancel(signal.reason);
      };
    });
    // Handled by each race below; marked here too, as the signal may fire after the last one.
    stopped.catch(() => {});
    if (signal.aborted) (onAbort as () => void)();
    else signal.addEventListener('abort', onAbort as () => void, { once: true });
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const next = await (stopped === undefined ? source.next() : Promise.race([source.next(), stopped]));
      if (next.done) break;
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > limit) {
        return { body: replayThenRest(chunks, source), refusal: tooLargeReason(limit), oneShot: true };
      }
    }
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
  }
  return { body: chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks), refusal: undefined, oneShot: false };
}
