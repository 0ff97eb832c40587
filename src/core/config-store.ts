/**
 * The config store: immutable, versioned snapshots swapped atomically. Layers read the current
 * snapshot (through a {@link Param}) when a call starts and keep it for the whole call, so a new
 * snapshot applies to the next call while in-flight calls finish under the one they started
 * with. A snapshot that fails validation is rejected whole; the last good one stays in force and
 * the rejection is kept for the admin endpoint and the control endpoint's NACK.
 *
 * @module
 */

import type { OptionProblem } from './errors.js';

/** One immutable version of a config document. */
export interface Snapshot<T> {
  readonly version: string;
  readonly value: T;
  /** Wall-clock time it was applied, in ms since the epoch. */
  readonly appliedAt: number;
}

/** A document that was rejected, and why. */
export interface Rejection {
  readonly version: string;
  readonly problems: readonly OptionProblem[];
  readonly rejectedAt: number;
}

/** The outcome of {@link ConfigStore.swap}: ACK or NACK, as xDS says it. */
export type SwapResult<T> =
  | { readonly applied: true; readonly snapshot: Snapshot<T> }
  | { readonly applied: false; readonly rejection: Rejection };

/** Validates a raw document into a typed one, or lists every problem. */
export type Validator<T> = (raw: unknown) => { ok: true; value: T } | { ok: false; problems: OptionProblem[] };

/** Options of a {@link ConfigStore}. */
export interface ConfigStoreOptions<T> {
  /** The document in force before any snapshot arrives (builder defaults). */
  initial: T;
  /** Version of the initial document. Default `"0"`. */
  initialVersion?: string;
  /** Checks every incoming document; without it, documents are taken as they are. */
  validate?: Validator<T>;
}

type Subscriber<T> = (snapshot: Snapshot<T>, previous: Snapshot<T>) => void;

/** Holds the current snapshot; see the module doc. */
export class ConfigStore<T> {
  #current: Snapshot<T>;
  #lastRejected: Rejection | undefined = undefined;
  readonly #validate: Validator<T> | undefined;
  readonly #subscribers = new Set<Subscriber<T>>();

  constructor(options: ConfigStoreOptions<T>) {
    this.#validate = options.validate;
    this.#current = Object.freeze({ version: options.initialVersion ?? '0', value: options.initial, appliedAt: Date.now() });
  }

  /** The snapshot in force. Reading it is a field load. */
  get current(): Snapshot<T> {
    return this.#current;
  }

  /** The last document rejected, if any, with its problems. */
  get lastRejected(): Rejection | undefined {
    return this.#lastRejected;
  }

  /**
   * Validates `raw` and, when valid, makes it current under `version`. An invalid document
   * changes nothing and is returned with every problem.
   */
  swap(raw: unknown, version: string): SwapResult<T> {
    let value: T;
    if (this.#validate !== undefined) {
      const result = this.#validate(raw);
      if (!result.ok) {
        const rejection = Object.freeze({ version, problems: Object.freeze(result.problems), rejectedAt: Date.now() });
        this.#lastRejected = rejection;
        return { applied: false, rejection };
      }
      value = result.value;
    } else {
      value = raw as T;
    }
    const previous = this.#current;
    const snapshot = Object.freeze({ version, value, appliedAt: Date.now() });
    this.#current = snapshot;
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(snapshot, previous);
      } catch (error) {
        process.emitWarning(`sidecarless: a config subscriber threw: ${String(error)}`, 'SidecarlessListenerWarning');
      }
    }
    return { applied: true, snapshot };
  }

  /** Calls `subscriber` after each applied swap; returns a function that unsubscribes. */
  subscribe(subscriber: Subscriber<T>): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Number of subscribers, for leak checks. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }
}
