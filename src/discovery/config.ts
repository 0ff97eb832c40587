import type { ConfigStore, Snapshot } from '../core/config-store.js';
import type { EventHub } from '../core/events.js';
import { SetDiscovery, tryParseEndpoints } from './base.js';
import type { EndpointInput } from './types.js';

/** Options of {@link configDiscovery}. */
export interface ConfigDiscoveryOptions {
  /** Name in events and describe(). Default `"config"`. */
  name?: string;
  /** Where `discovery-error` and `discovery-change` go. Default a hub of its own. */
  events?: EventHub;
}

/**
 * Endpoints selected from the snapshots of a {@link ConfigStore}, so a control endpoint that
 * pushes config can push endpoints too. Each applied snapshot is diffed against the previous
 * set; a snapshot whose selection is not a valid endpoint list is reported as a
 * `discovery-error` and the last good set stays (the store's own validation should normally
 * catch it first). `select` returning `undefined` means "no endpoints in this snapshot".
 */
export class ConfigDiscovery<S> extends SetDiscovery {
  readonly kind = 'config';
  readonly #select: (config: S) => readonly EndpointInput[] | undefined;
  readonly #unsubscribe: () => void;

  constructor(store: ConfigStore<S>, select: (config: S) => readonly EndpointInput[] | undefined, options: ConfigDiscoveryOptions = {}) {
    super(options.name ?? 'config', options.events);
    this.#select = select;
    this.#apply(store.current);
    this.#unsubscribe = store.subscribe((snapshot) => this.#apply(snapshot));
  }

  #apply(snapshot: Snapshot<S>): void {
    this.stats.lookups++;
    let selected: readonly EndpointInput[] | undefined;
    try {
      selected = this.#select(snapshot.value);
    } catch (error) {
      this.failed(error);
      return;
    }
    const parsed = tryParseEndpoints(selected ?? [], `endpoints@${snapshot.version}`);
    if (parsed.ok) this.publish(parsed.endpoints);
    else this.failed(parsed.error);
  }

  override close(): void {
    this.#unsubscribe();
    super.close();
  }
}

/**
 * A source fed by a config store: `configDiscovery(store, (c) => c.users?.endpoints)` over a
 * document of your own, or `configDiscovery(store, (c) => endpointsOf(c, 'users'))` over the mesh
 * document, whose `host:port` addresses `endpointsOf` splits.
 */
export function configDiscovery<S>(
  store: ConfigStore<S>,
  select: (config: S) => readonly EndpointInput[] | undefined,
  options?: ConfigDiscoveryOptions,
): ConfigDiscovery<S> {
  return new ConfigDiscovery(store, select, options);
}
