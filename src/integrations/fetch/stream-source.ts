/**
 * The plumbing of a stream request body the replay buffer reads: one interface over web streams
 * and async iterables (Node streams among them), how to stop each, and a wait on the read that
 * only an attempt's own signal ends. Apart from `body.ts`, which decides what is read and when.
 *
 * @module
 */

import { isNeverAborted } from '../../core/context.js';
import { CancelledError } from '../../core/errors.js';
import type { StreamBody } from './body.js';

/** The error to reject with for an abort's `reason`: the reason itself when it is one. */
export function abortError(reason: unknown): Error {
  return reason instanceof Error ? reason : new CancelledError({ cause: reason, layer: 'replay-buffer' });
}

/** `reading`, or a rejection with `signal`'s reason once it fires first; the listener goes either way. */
export function waitUntil(reading: Promise<void>, signal: AbortSignal): Promise<void> {
  if (isNeverAborted(signal)) return reading;
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    reading.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A stream body being read: its next chunk, and how to stop reading it. */
export interface Source {
  next(): Promise<IteratorResult<Uint8Array | string>>;
  cancel(reason: unknown): void;
}

/**
 * Cancels a stream body nobody read from us: a web stream that is not locked (one a client
 * locked answers cancel() with a rejection, which is dropped), a Node stream destroyed.
 */
export function cancelUnread(body: StreamBody, reason: unknown): void {
  if (body instanceof ReadableStream) void body.cancel(reason).catch(() => {});
  else {
    const destroy = (body as { destroy?: unknown }).destroy;
    if (typeof destroy === 'function') destroy.call(body);
  }
}

/** Reads `body` as a {@link Source}: a web stream through a reader (locking it; throws if it is locked), an iterable through its iterator. */
export function sourceOf(body: StreamBody): Source {
  if (body instanceof ReadableStream) {
    const reader = body.getReader();
    return {
      next: () => reader.read(),
      cancel: (reason) => void reader.cancel(reason).catch(() => {}),
    };
  }
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Uint8Array | string>;
  const destroy = (body as { destroy?: unknown }).destroy;
  return {
    next: () => iterator.next(),
    // An iterator's return() waits for the read in progress, which may never end; a Node
    // stream can be destroyed, which ends that read at once.
    cancel: (reason) => {
      if (typeof destroy === 'function') destroy.call(body);
      else void Promise.resolve(iterator.return?.(reason)).catch(() => {});
    },
  };
}

/** What the replay buffer read (`head`), then the rest of the stream: the one-shot body of a request over the limit. */
export function replayThenRest(head: Uint8Array[], rest: Source): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (index < head.length) {
        controller.enqueue(head[index++] as Uint8Array);
        return;
      }
      const next = await rest.next();
      if (next.done) controller.close();
      else controller.enqueue(typeof next.value === 'string' ? Buffer.from(next.value) : next.value);
    },
    cancel(reason) {
      rest.cancel(reason);
    },
  });
}
