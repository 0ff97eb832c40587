/**
 * Live parameters. Every layer reads its parameters through a {@link Param}: a static value, or
 * a value derived from a {@link ConfigStore} that changes while the service runs. A change takes
 * effect on the next call without rebuilding the stack. Derivation (parsing durations, checking
 * ranges) runs once per snapshot, not per call: a read is a pointer compare and a field load.
 *
 * @module
 */

import type { ConfigStore, Snapshot } from './config-store.js';
import { InvalidOptionError, type OptionProblem } from './errors.js';

/** A parameter a layer reads at the start of each call. */
export interface Param<T> {
  get(): T;
}

/** A parameter that never changes. */
export class StaticParam<T> implements Param<T> {
  readonly value: T;
  constructor(value: T) {
    this.value = value;
  }
  get(): T {
    return this.value;
  }
}

/**
 * Options drawn from a config store: `select` picks the raw options of one layer from a
 * snapshot (or `undefined` for the layer's static fallback). Pass one wherever a layer takes
 * options: `.retry(live(store, (c) => c.services.users?.retries))`.
 */
export interface LiveOptions<S, O> {
  readonly kind: 'live';
  readonly store: ConfigStore<S>;
  readonly select: (config: S) => O | undefined;
  /** Used when `select` returns `undefined`. */
  readonly fallback?: O | undefined;
}

/** Marks options as live: read from `store` through `select` on every snapshot change. */
export function live<S, O>(store: ConfigStore<S>, select: (config: S) => O | undefined, fallback?: O): LiveOptions<S, O> {
  return { kind: 'live', store, select, fallback };
}

/** Options as a layer takes them: given directly, or live from a store. */
export type OptionsOrLive<O> = O | LiveOptions<any, O>;

/** Whether `options` were made by {@link live} (rather than given directly). */
export function isLive<O>(options: OptionsOrLive<O>): options is LiveOptions<unknown, O> {
  return typeof options === 'object' && options !== null && (options as { kind?: unknown }).kind === 'live' && 'store' in options;
}

/** Derives a layer's parameters from a store, once per snapshot; keeps the last good ones. */
class StoreParam<S, O, T> implements Param<T> {
  #seen: Snapshot<S>;
  #value: T;
  readonly #live: LiveOptions<S, O>;
  readonly #resolve: (options: O | undefined) => T;
  readonly #onRejected: (problems: readonly OptionProblem[]) => void;

  constructor(
    options: LiveOptions<S, O>,
    resolve: (options: O | undefined) => T,
    onRejected: (problems: readonly OptionProblem[]) => void,
  ) {
    this.#live = options;
    this.#resolve = resolve;
    this.#onRejected = onRejected;
    this.#seen = options.store.current;
    // The first derivation throws: a stack built on bad options must not start.
    this.#value = resolve(options.select(this.#seen.value) ?? options.fallback);
  }

  get(): T {
    const current = this.#live.store.current;
    if (current !== this.#seen) this.#refresh(current);
    return this.#value;
  }

  #refresh(snapshot: Snapshot<S>): void {
    this.#seen = snapshot;
    try {
      this.#value = this.#resolve(this.#live.select(snapshot.value) ?? this.#live.fallback);
    } catch (error) {
      // Whatever went wrong (bad options, or a selector that throws on a snapshot without its
      // section), a built stack keeps its last good parameters: get() runs inside calls, where a
      // throw would skip the settle of layers already admitted (a concurrency permit, a probe).
      this.#onRejected(
        error instanceof InvalidOptionError ? error.problems : [{ field: 'options', message: `could not be read: ${String(error)}` }],
      );
    }
  }
}

/**
 * Turns a layer's options into a {@link Param} of resolved parameters. Static options are
 * resolved now (throwing {@link InvalidOptionError} at build time); live ones on each snapshot,
 * where a bad value is reported through `onRejected` and the previous one kept.
 */
export function toParam<O, T>(
  options: OptionsOrLive<O>,
  resolve: (options: O | undefined) => T,
  onRejected: (problems: readonly OptionProblem[]) => void,
): Param<T> {
  if (isLive(options)) return new StoreParam(options, resolve, onRejected);
  return new StaticParam(resolve(options));
}

/**
 * What a layer factory does with its options: static options are checked at once (so a bad
 * option throws where the builder is written), live ones when the stack is built; either way
 * the result makes the layer's {@link Param} for a stack, reporting rejected live values as
 * `param-rejected` events.
 */
export function prepareParam<O, T>(
  layer: string,
  options: OptionsOrLive<O>,
  resolve: (options: O | undefined) => T,
): (env: {
  service: string;
  events: { emit(name: 'param-rejected', e: { service: string; layer: string; problems: readonly OptionProblem[] }): void };
}) => Param<T> {
  if (!isLive(options)) {
    const param = new StaticParam(resolve(options));
    return () => param;
  }
  return (env) =>
    new StoreParam(options, resolve, (problems) => env.events.emit('param-rejected', { service: env.service, layer, problems }));
}
