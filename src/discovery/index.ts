/**
 * # discovery
 *
 * Where a balancer's endpoints come from. A {@link Discovery} publishes changesets — insert,
 * update (weight, metadata), remove — to its subscribers; a balancer applies each changeset
 * between two calls. Sources:
 *
 * - {@link staticDiscovery}: a list, changeable by hand;
 * - {@link dnsDiscovery}: A/AAAA or SRV records resolved periodically through `node:dns`'s
 *   `Resolver`, re-resolved when the TTL runs out (bounded, jittered), lookup errors reported
 *   while the last good set stays, empty answers treated as suspect;
 * - {@link configDiscovery}: endpoints selected from a {@link ConfigStore} snapshot, so a
 *   control endpoint can push them.
 *
 * Prior art: Tower's `Discover` and `Change`; ginepro's `LookupService` and periodic changesets
 * (whose gaps — no TTL, errors indistinguishable from an empty set, a resolver flap removing
 * every endpoint — are the reasons for the DNS source's rules); linkerd2-proxy's destination
 * resolution; gRPC's DNS resolver (`min_time_between_resolutions`).
 *
 * @module
 */

export { parseEndpoints, SetDiscovery, toEndpoint } from './base.js';
export { ConfigDiscovery, type ConfigDiscoveryOptions, configDiscovery } from './config.js';
export { DnsDiscovery, type DnsDiscoveryOptions, dnsDiscovery } from './dns.js';
export { StaticDiscovery, staticDiscovery } from './static.js';
export type {
  Change,
  Changeset,
  Discovery,
  DiscoveryHealth,
  DiscoveryListener,
  DiscoveryStatus,
  Endpoint,
  EndpointInput,
} from './types.js';
