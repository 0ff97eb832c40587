/**
 * Shared checks for "every call settles, nothing is left behind": unhandled rejections are
 * recorded for the whole test file and asserted absent at the end.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

after(() => {
  assert.deepEqual(unhandled, [], 'no unhandled rejections');
});

/** Observes a promise: how many times it settled and with what. */
export function observe<T>(promise: Promise<T>): { readonly settled: number; readonly value?: T; readonly error?: unknown } {
  const state: { settled: number; value?: T; error?: unknown } = { settled: 0 };
  promise.then(
    (value) => {
      state.settled++;
      state.value = value;
    },
    (error: unknown) => {
      state.settled++;
      state.error = error;
    },
  );
  return state;
}

/** An error shaped like a socket reset, which the default classifier retries. */
export function resetError(message = 'socket hang up'): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}
