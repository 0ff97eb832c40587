/**
 * The `endpoints` shorthand of the outbound integrations: a fixed list of base URLs
 * (`http://10.0.0.7:8080`) or `host:port` pairs, turned into a static discovery for the balance
 * layer. The URL's scheme travels in the endpoint's metadata, so an HTTP endpoint service knows
 * whether to speak `http` or `https`.
 *
 * @module
 */

import { InvalidOptionError } from '../../core/errors.js';
import { StaticDiscovery } from '../../discovery/static.js';
import type { Endpoint, EndpointInput } from '../../discovery/types.js';

function parseUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** Parses the `endpoints` option into a discovery; `undefined` when not given. */
export function endpointDiscovery(list: readonly string[] | undefined, field: string): StaticDiscovery | undefined {
  if (list === undefined) return undefined;
  const inputs = list.map((entry, index): EndpointInput => {
    const url = parseUrl(/^[a-z]+:\/\//i.test(entry) ? entry : `x://${entry}`);
    if (url === null || url.hostname === '' || (url.protocol === 'x:' && url.port === '')) {
      throw new InvalidOptionError(
        `${field}.${index}`,
        `must be a base URL such as "http://127.0.0.1:8080" or "host:port" (got ${JSON.stringify(entry)})`,
      );
    }
    const scheme = url.protocol === 'x:' ? undefined : url.protocol.slice(0, -1);
    const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
    return { address: url.hostname.replace(/^\[|\]$/g, ''), port, metadata: scheme === undefined ? {} : { scheme } };
  });
  if (inputs.length === 0) throw new InvalidOptionError(field, 'must list at least one endpoint');
  return new StaticDiscovery(inputs);
}

/** The base URL of an HTTP endpoint: `scheme://host:port`, IPv6 hosts bracketed. */
export function baseUrlOf(endpoint: Endpoint): string {
  const scheme = typeof endpoint.metadata.scheme === 'string' ? endpoint.metadata.scheme : 'http';
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  return endpoint.port === undefined ? `${scheme}://${host}` : `${scheme}://${host}:${endpoint.port}`;
}

/** `host:port` of an endpoint, for a gRPC channel. */
export function targetOf(endpoint: Endpoint): string {
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  return endpoint.port === undefined ? host : `${host}:${endpoint.port}`;
}
