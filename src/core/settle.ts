/**
 * A promise whose settle functions land on an object of ours, without an executor closure per
 * call: the executor runs synchronously inside `new Promise`, so it can read its target from a
 * module slot. Used where a layer must be able to settle the caller's promise itself (a timeout
 * racing its deadline, hooks settled from a reaction beneath).
 *
 * @module
 */

import type { CallContext } from './context.js';
import type { Service, Settler } from './service.js';

/** Something that holds the settle functions of its promise. */
export interface Settleable {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

let slot: Settleable | undefined;
function capture(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
  const target = slot as Settleable;
  target.resolve = resolve;
  target.reject = reject;
}

/** A new promise whose `resolve` and `reject` are stored on `holder`. */
export function promiseFor(holder: Settleable): Promise<unknown> {
  slot = holder;
  const promise = new Promise(capture);
  slot = undefined;
  return promise;
}

/** Reports a promise's outcome to a settler. */
export function settleFrom(promise: Promise<unknown>, settler: Settler): void {
  promise.then(
    (value) => settler.settle(false, value),
    (error: unknown) => settler.settle(true, error),
  );
}

/** Runs `service` for `settler`: through its own settler entry point when it has one. */
export function callInto<Req, Res>(service: Service<Req, Res>, req: Req, ctx: CallContext, settler: Settler): void {
  if (service.callInto !== undefined) {
    service.callInto(req, ctx, settler);
    return;
  }
  let answer: Promise<Res>;
  try {
    answer = service.call(req, ctx);
  } catch (error) {
    answer = Promise.reject(error);
  }
  settleFrom(answer, settler);
}
