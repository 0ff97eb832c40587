import type { Subscription } from '../core/events.js';

/** One concrete backend: an address, a weight and free metadata. */
export interface Endpoint {
  /** Stable identity within its discovery, `host:port` unless the source says otherwise. */
  readonly id: string;
  /** Host name or IP address. */
  readonly address: string;
  /** Port, when the source knows one. */
  readonly port: number | undefined;
  /** Relative weight, > 0. Default 1. */
  readonly weight: number;
  /** Free metadata (zone, version, SRV priority, ...). */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** One change to an endpoint set (Tower's `Change`, ginepro's changeset entries). */
export type Change =
  | { readonly type: 'insert'; readonly endpoint: Endpoint }
  | { readonly type: 'update'; readonly endpoint: Endpoint }
  | { readonly type: 'remove'; readonly id: string };

/** Changes delivered together, to be applied atomically. */
export type Changeset = readonly Change[];

/**
 * How a source is doing: `pending` before its first answer, `ok` after a good one, `failing`
 * while lookups fail (the last good set stays in force).
 */
export type DiscoveryHealth = 'pending' | 'ok' | 'failing';

/** What a source says about itself, for the admin endpoint and for `NoEndpointsError`. */
export interface DiscoveryStatus {
  readonly health: DiscoveryHealth;
  /** The last lookup error while `failing`. */
  readonly lastError: unknown;
  /** Endpoints currently published. */
  readonly endpoints: number;
}

/** Receives changesets; the first delivery (on subscribe) inserts the whole current set. */
export type DiscoveryListener = (changes: Changeset) => void;

/**
 * A source of endpoint changesets — Tower's `Discover`, ginepro's `LookupService` loop.
 *
 * Why a subscribe callback and not an async iterable: a balancer must see a change the moment it
 * is known (between two calls, without a promise hop), one source may feed several balancers,
 * and closing must leave nothing pending — an iterator parked on `next()` is a promise that only
 * its producer can settle. A listener is called synchronously, in order, and a subscription is
 * disposed in one step; the current set is replayed to each new listener so that it needs no
 * separate snapshot call.
 */
export interface Discovery {
  /** Short name of the source kind, for describe(): `static`, `dns`, `config`. */
  readonly kind: string;
  /** Listens to changesets; the current set is delivered at once as inserts (if not empty). */
  subscribe(listener: DiscoveryListener): Subscription;
  /** Health of the source. */
  status(): DiscoveryStatus;
  /** The endpoints in force, by id. */
  endpoints(): ReadonlyMap<string, Endpoint>;
  /** Parameters and state, for describe(). */
  describe(): Readonly<Record<string, unknown>>;
  /** Resolves once the source has answered at least once (or failed, or closed). */
  answered?(): Promise<void>;
  /** Stops lookups and timers; listeners get nothing more. Idempotent. */
  close(): void | Promise<void>;
}

/** An endpoint as a user or config writes it; everything but `address` is optional. */
export interface EndpointInput {
  readonly address: string;
  readonly port?: number | undefined;
  readonly id?: string | undefined;
  readonly weight?: number | undefined;
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
}

declare module '../core/events.js' {
  interface MeshEvents {
    /** A discovery lookup failed; the last good set stays in force. */
    'discovery-error': { source: string; kind: string; error: unknown; consecutive: number };
    /** A lookup answered with no endpoints; `kept` says whether the previous set was kept. */
    'discovery-empty': { source: string; kind: string; consecutive: number; kept: boolean };
    /** A source published a changeset. */
    'discovery-change': { source: string; kind: string; inserted: number; updated: number; removed: number };
  }
}
