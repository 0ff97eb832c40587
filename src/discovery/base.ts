import { z } from 'zod';
import { InvalidOptionError } from '../core/errors.js';
import { EventHub, type Subscription } from '../core/events.js';
import { parseOptions, problemsOf } from '../core/validate.js';
import type { Change, Discovery, DiscoveryHealth, DiscoveryListener, DiscoveryStatus, Endpoint, EndpointInput } from './types.js';

const endpointSchema = z.strictObject({
  address: z.string({ error: 'must be a host name or IP address' }).min(1, { error: 'must be a host name or IP address' }),
  port: z.number().int().min(0).max(65535, { error: 'must be an integer from 0 to 65535' }).optional(),
  id: z.string().min(1, { error: 'must be a non-empty string' }).optional(),
  weight: z.number().gt(0, { error: 'must be a number above 0' }).max(1e6, { error: 'must be at most 1000000' }).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});
const endpointListSchema = z.array(endpointSchema, { error: 'must be a list of endpoints' });

/** Makes an {@link Endpoint} from its written form, filling the id (`host:port`) and weight. */
export function toEndpoint(input: EndpointInput): Endpoint {
  const port = input.port;
  const address = input.address;
  const host = address.includes(':') ? `[${address}]` : address;
  return Object.freeze({
    id: input.id ?? (port === undefined ? address : `${host}:${port}`),
    address,
    port,
    weight: input.weight ?? 1,
    metadata: Object.freeze({ ...(input.metadata ?? {}) }),
  });
}

/** Checks a list of written endpoints, throwing {@link InvalidOptionError} naming each bad field. */
export function parseEndpoints(value: unknown, field: string): Endpoint[] {
  return (parseOptions(endpointListSchema, value, field) as EndpointInput[]).map(toEndpoint);
}

/** Like {@link parseEndpoints}, returning the problems instead of throwing. */
export function tryParseEndpoints(
  value: unknown,
  field: string,
): { ok: true; endpoints: Endpoint[] } | { ok: false; error: InvalidOptionError } {
  const result = endpointListSchema.safeParse(value);
  if (result.success) return { ok: true, endpoints: (result.data as EndpointInput[]).map(toEndpoint) };
  return { ok: false, error: new InvalidOptionError(problemsOf(result.error, value, field)) };
}

function sameMetadata(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) if (!Object.is(a[key], b[key])) return false;
  return true;
}

/**
 * What every source shares: the published set, diffing a new full set into a changeset
 * (ginepro's `create_changeset`), listeners, health and events. A source only says "the set is
 * now this" ({@link SetDiscovery.publish}) or "the lookup failed" ({@link SetDiscovery.failed}).
 */
export abstract class SetDiscovery implements Discovery {
  abstract readonly kind: string;
  /** Typed listeners of this source's events (`discovery-error`, `discovery-empty`, ...). */
  readonly events: EventHub;
  /** Name used in events and describe(). */
  readonly source: string;
  /** Counters: lookups, errors, empty answers and changesets published. */
  readonly stats = { lookups: 0, errors: 0, empty: 0, changesets: 0 };
  readonly #listeners = new Set<DiscoveryListener>();
  #current = new Map<string, Endpoint>();
  #health: DiscoveryHealth = 'pending';
  #lastError: unknown = undefined;
  #consecutiveErrors = 0;
  #answered: Promise<void> | undefined = undefined;
  #answer: (() => void) | undefined = undefined;
  protected closed = false;

  constructor(source: string, events: EventHub | undefined) {
    this.source = source;
    this.events = events ?? new EventHub();
  }

  subscribe(listener: DiscoveryListener): Subscription {
    if (this.closed) return { dispose() {} };
    this.#listeners.add(listener);
    if (this.#current.size > 0) {
      const changes: Change[] = [];
      for (const endpoint of this.#current.values()) changes.push({ type: 'insert', endpoint });
      listener(changes);
    }
    return { dispose: () => this.#listeners.delete(listener) };
  }

  status(): DiscoveryStatus {
    return { health: this.#health, lastError: this.#lastError, endpoints: this.#current.size };
  }

  endpoints(): ReadonlyMap<string, Endpoint> {
    return this.#current;
  }

  describe(): Readonly<Record<string, unknown>> {
    return { kind: this.kind, source: this.source, health: this.#health, endpoints: this.#current.size, ...this.stats };
  }

  /**
   * Resolves once the source has answered (a set, an empty set or an error) or is closed: for a
   * readiness latch, so calls wait for the first DNS answer rather than fail `none-discovered`.
   * `readiness.latch('endpoints')` released by `discovery.answered().then(...)`.
   */
  answered(): Promise<void> {
    if (this.#health !== 'pending' || this.closed) return Promise.resolve();
    if (this.#answered === undefined) {
      this.#answered = new Promise<void>((resolve) => {
        this.#answer = resolve;
      });
    }
    return this.#answered;
  }

  #settleAnswered(): void {
    const answer = this.#answer;
    this.#answer = undefined;
    answer?.();
  }

  /** Number of listeners, for leak checks. */
  get listenerCount(): number {
    return this.#listeners.size;
  }

  close(): void | Promise<void> {
    this.closed = true;
    this.#listeners.clear();
    this.#settleAnswered();
  }

  /** Replaces the set by `next`, delivering only what changed. */
  protected publish(next: readonly Endpoint[]): void {
    if (this.closed) return;
    this.#health = 'ok';
    this.#lastError = undefined;
    this.#consecutiveErrors = 0;
    this.#settleAnswered();
    const previous = this.#current;
    const current = new Map<string, Endpoint>();
    const changes: Change[] = [];
    let inserted = 0;
    let updated = 0;
    for (const endpoint of next) {
      if (current.has(endpoint.id)) continue;
      current.set(endpoint.id, endpoint);
      const before = previous.get(endpoint.id);
      if (before === undefined) {
        changes.push({ type: 'insert', endpoint });
        inserted++;
      } else if (
        before.weight !== endpoint.weight ||
        before.address !== endpoint.address ||
        before.port !== endpoint.port ||
        !sameMetadata(before.metadata, endpoint.metadata)
      ) {
        changes.push({ type: 'update', endpoint });
        updated++;
      }
    }
    for (const id of previous.keys()) if (!current.has(id)) changes.push({ type: 'remove', id });
    this.#current = current;
    if (changes.length === 0) return;
    this.stats.changesets++;
    if (this.events.wants('discovery-change')) {
      const removed = changes.length - inserted - updated;
      this.events.emit('discovery-change', { source: this.source, kind: this.kind, inserted, updated, removed });
    }
    for (const listener of this.#listeners) {
      try {
        listener(changes);
      } catch (error) {
        process.emitWarning(`sidecarless: a discovery listener threw: ${String(error)}`, 'SidecarlessListenerWarning');
      }
    }
  }

  /** Records a failed lookup: reported, counted, and the last good set kept. */
  protected failed(error: unknown): void {
    if (this.closed) return;
    this.stats.errors++;
    this.#consecutiveErrors++;
    this.#health = 'failing';
    this.#lastError = error;
    this.#settleAnswered();
    if (this.events.wants('discovery-error')) {
      this.events.emit('discovery-error', { source: this.source, kind: this.kind, error, consecutive: this.#consecutiveErrors });
    }
  }
}
