/**
 * Request bodies and replay. A retry must send the same bytes again, so a body is replayable
 * only if it can be produced twice: strings, byte arrays, `URLSearchParams`, `Blob` and
 * `FormData` can (fetch serializes them anew each time) if they fit the replay buffer; a stream
 * is read into the buffer, and replayed from it, if it ends within the limit. A body over the
 * limit is still sent — once, streamed, never silently cut — and the request is marked so that
 * a retryable failure of it is not retried, with the reason.
 *
 * @module
 */

import { refusingReplay } from '../shared/outbound.js';

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

/**
 * The replay state of one logical request, which each HTTP client integration's request
 * extends: why it must not be sent again, and whether its body can go out once only.
 */
export class Replayable {
  /** Why the request must not be retried (a method, a body over the limit); `undefined` if it may be. */
  refusal: string | undefined = undefined;
  /** The body is a stream sent as it is read: it can go out on one attempt only. */
  oneShot = false;
  /** A one-shot body has gone out: no later attempt (a hedge, which keeps attempt 1) may send it. */
  sent = false;

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

/** Whether a body is a stream or async iterable, which can be read once only. */
export function isStream(body: unknown): body is ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> {
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
 * the stream, and the request is not replayable.
 */
export async function planStreamBody(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>, limit: number): Promise<BodyPlan> {
  const iterator = (body instanceof ReadableStream ? iterateStream(body) : body[Symbol.asyncIterator]()) as AsyncIterator<Uint8Array>;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done) break;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Uint8Array);
    chunks.push(chunk);
    size += chunk.byteLength;
    if (size > limit) {
      return { body: replayThenRest(chunks, iterator), refusal: tooLargeReason(limit), oneShot: true };
    }
  }
  return { body: chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks), refusal: undefined, oneShot: false };
}

async function* iterateStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function replayThenRest(head: Uint8Array[], rest: AsyncIterator<Uint8Array>): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (index < head.length) {
        controller.enqueue(head[index++] as Uint8Array);
        return;
      }
      const next = await rest.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel(reason) {
      await rest.return?.(reason);
    },
  });
}
