/**
 * Events, free when nobody listens. Each event is published on a `node:diagnostics_channel`
 * named `sidecarless:<event>` (so APMs and tests can subscribe without a reference to the stack)
 * and to typed listeners on the stack's {@link EventHub}, cockatiel-style:
 * `hub.on('retry', (e) => ...)` returns a {@link Subscription}. No EventEmitter on the hot path;
 * layers ask {@link EventHub.wants} before building a payload.
 *
 * @module
 */

import diagnostics from 'node:diagnostics_channel';
import type { OptionProblem } from './errors.js';

/** Why a retry did not happen. */
export type RetrySkipReason = 'budget' | 'not-retryable' | 'attempts' | 'deadline' | 'cancelled';

/**
 * The events of every layer, by name. Other modules add theirs by declaration merging
 * (`declare module 'sidecarless' { interface MeshEvents { ... } }`).
 */
export interface MeshEvents {
  /** A failed attempt will be retried after `delayMs`. */
  retry: { service: string; route: string | undefined; attempt: number; delayMs: number; status: string; error?: unknown };
  /** A failed attempt was not retried, and why. */
  'retry-skipped': { service: string; route: string | undefined; attempt: number; reason: RetrySkipReason; status: string };
  /** A deadline fired: in attempt `attempt`, and in its `hedge`-th hedge when above 0 (see `CallContext.hedge`). */
  timeout: { service: string; route: string | undefined; timeoutMs: number; attempt: number; hedge: number };
  /** A readiness gate refused or timed out a call. */
  'not-ready': { service: string; pending: readonly string[] };
  /** A live parameter change was rejected; the previous value stays in force. */
  'param-rejected': { service: string; layer: string; problems: readonly OptionProblem[] };
}

/** Names of all events. */
export type MeshEventName = keyof MeshEvents;

/** A handle to stop listening. */
export interface Subscription {
  dispose(): void;
}

type Listener<K extends MeshEventName> = (event: MeshEvents[K]) => void;

const channels = new Map<string, diagnostics.Channel>();

/** The diagnostics channel of an event: `sidecarless:<name>`. */
export function eventChannel(name: MeshEventName): diagnostics.Channel {
  let channel = channels.get(name);
  if (channel === undefined) {
    channel = diagnostics.channel(`sidecarless:${name}`);
    channels.set(name, channel);
  }
  return channel;
}

/** Typed listeners of one stack, plus publication on diagnostics channels. */
export class EventHub {
  // Created on the first subscription: most stacks never get a typed listener.
  #listeners: Map<MeshEventName, Set<Listener<never>>> | undefined = undefined;

  /** Listens to one event; returns a subscription to dispose. */
  on<K extends MeshEventName>(name: K, listener: Listener<K>): Subscription {
    this.#listeners ??= new Map();
    const listeners = this.#listeners;
    let set = listeners.get(name);
    if (set === undefined) {
      set = new Set();
      listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return {
      dispose: () => {
        set.delete(listener as Listener<never>);
        if (set.size === 0) listeners.delete(name);
      },
    };
  }

  /** Whether anybody listens: check before building a payload. */
  wants(name: MeshEventName): boolean {
    return this.#listeners?.has(name) === true || eventChannel(name).hasSubscribers;
  }

  /** Publishes an event. A throwing listener is reported, never allowed to break the call. */
  emit<K extends MeshEventName>(name: K, event: MeshEvents[K]): void {
    const channel = eventChannel(name);
    if (channel.hasSubscribers) channel.publish(event);
    const set = this.#listeners?.get(name);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(event);
      } catch (error) {
        process.emitWarning(`sidecarless: a '${name}' listener threw: ${String(error)}`, 'SidecarlessListenerWarning');
      }
    }
  }

  /** Number of typed listeners, for leak checks. */
  listenerCount(): number {
    let count = 0;
    for (const set of this.#listeners?.values() ?? []) count += set.size;
    return count;
  }
}
