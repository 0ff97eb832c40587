import type { EventHub } from '../core/events.js';
import { parseEndpoints, SetDiscovery } from './base.js';
import type { EndpointInput } from './types.js';

/**
 * A fixed list of endpoints, which the application may still change by hand ({@link
 * StaticDiscovery.set}, {@link StaticDiscovery.add}, {@link StaticDiscovery.remove}) — for
 * tests, for endpoints from the command line, and as the simplest source.
 */
export class StaticDiscovery extends SetDiscovery {
  readonly kind = 'static';

  constructor(endpoints: readonly EndpointInput[] = [], options: { name?: string; events?: EventHub } = {}) {
    super(options.name ?? 'static', options.events);
    this.publish(parseEndpoints(endpoints, 'endpoints'));
  }

  /** Replaces the whole set; only the differences are delivered. */
  set(endpoints: readonly EndpointInput[]): void {
    this.publish(parseEndpoints(endpoints, 'endpoints'));
  }

  /** Adds (or updates) endpoints. */
  add(...endpoints: EndpointInput[]): void {
    const added = parseEndpoints(endpoints, 'endpoints');
    const ids = new Set(added.map((e) => e.id));
    this.publish([...[...this.endpoints().values()].filter((e) => !ids.has(e.id)), ...added]);
  }

  /** Removes endpoints by id (`host:port`). */
  remove(...ids: string[]): void {
    const gone = new Set(ids);
    this.publish([...this.endpoints().values()].filter((e) => !gone.has(e.id)));
  }
}

/** A static source: `staticDiscovery([{ address: '10.0.0.1', port: 8080 }])`. */
export function staticDiscovery(endpoints: readonly EndpointInput[], options?: { name?: string; events?: EventHub }): StaticDiscovery {
  return new StaticDiscovery(endpoints, options);
}
