/**
 * Semantic-convention attributes for the spans of the tracing layer (OpenTelemetry semantic
 * conventions for HTTP client spans and RPC spans, stable names). The layer is generic over its
 * request type, so it recognises the shapes the integrations pass: a wrapped `fetch`'s argument
 * list (`[input, init]`), a `Request`-like object (`{ url, method }`), and gRPC calls named by
 * route (`package.Service/Method`).
 *
 * @module
 */

import type { Attributes } from '@opentelemetry/api';
import type { Classification } from '../../core/classify.js';
import type { CallContext } from '../../core/context.js';

/** Which conventions to follow. */
export type TracingProtocol = 'http' | 'rpc' | 'generic';

interface HttpRequestShape {
  method: string;
  url: string | undefined;
}

function httpShape(req: unknown): HttpRequestShape {
  let input: unknown = req;
  let init: { method?: unknown } | undefined;
  if (Array.isArray(req)) {
    input = req[0];
    const second = req[1];
    if (second !== null && typeof second === 'object' && !Array.isArray(second)) init = second as { method?: unknown };
  }
  let url: string | undefined;
  let method: unknown = init?.method;
  if (typeof input === 'string') url = input;
  else if (input instanceof URL) url = input.href;
  else if (input !== null && typeof input === 'object') {
    const candidate = input as { url?: unknown; method?: unknown };
    if (typeof candidate.url === 'string') url = candidate.url;
    method ??= candidate.method;
  }
  return { method: typeof method === 'string' ? method.toUpperCase() : 'GET', url };
}

/** Attributes known before the call, and the span name (per the conventions of `protocol`). */
export function startAttributes(
  protocol: TracingProtocol,
  service: string,
  req: unknown,
  ctx: CallContext,
  attempt: boolean,
): { name: string; attributes: Attributes } {
  const attributes: Attributes = { 'sidecarless.service': service };
  if (ctx.route !== undefined) attributes['sidecarless.route'] = ctx.route;
  if (attempt) attributes['sidecarless.attempt'] = ctx.attempt;
  // A hedge keeps the number of the attempt it hedges: its index tells the two apart.
  if (attempt && ctx.hedge > 0) attributes['sidecarless.hedge'] = ctx.hedge;
  let name = ctx.route === undefined ? service : `${service} ${ctx.route}`;
  if (protocol === 'http') {
    const { method, url } = httpShape(req);
    attributes['http.request.method'] = method;
    if (url !== undefined) {
      attributes['url.full'] = url;
      try {
        const parsed = new URL(url);
        attributes['server.address'] = parsed.hostname;
        attributes['server.port'] = parsed.port ? Number(parsed.port) : parsed.protocol === 'https:' ? 443 : 80;
      } catch {
        // A relative URL has no server to name.
      }
    }
    if (attempt && ctx.attempt > 1) attributes['http.request.resend_count'] = ctx.attempt - 1;
    // HTTP client span names are the method, with the route template when one is known.
    name = ctx.route === undefined ? method : `${method} ${ctx.route}`;
  } else if (protocol === 'rpc') {
    attributes['rpc.system'] = 'grpc';
    const route = ctx.route ?? '';
    const slash = route.lastIndexOf('/');
    if (slash > 0) {
      attributes['rpc.service'] = route.slice(route.startsWith('/') ? 1 : 0, slash);
      attributes['rpc.method'] = route.slice(slash + 1);
      name = route.startsWith('/') ? route.slice(1) : route;
    }
  }
  return { name, attributes };
}

/** Attributes known once the call settled. */
export function endAttributes(
  protocol: TracingProtocol,
  result: unknown,
  error: unknown,
  verdict: Classification,
  ctx: CallContext,
): Attributes {
  const attributes: Attributes = { 'sidecarless.classification': verdict.kind, 'sidecarless.status': verdict.status };
  if (ctx.endpoint !== undefined) attributes['sidecarless.endpoint'] = ctx.endpoint;
  if (verdict.kind === 'failure') attributes['error.type'] = errorType(error, verdict);
  if (protocol === 'http') {
    const status = (result as { status?: unknown } | null | undefined)?.status;
    if (typeof status === 'number') attributes['http.response.status_code'] = status;
  } else if (protocol === 'rpc') {
    const code = (error as { code?: unknown } | null | undefined)?.code;
    attributes['rpc.grpc.status_code'] = typeof code === 'number' ? code : verdict.kind === 'success' ? 0 : 2;
  }
  return attributes;
}

function errorType(error: unknown, verdict: Classification): string {
  if (error === undefined) return verdict.status;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  return (error as { name?: unknown } | null)?.constructor?.name ?? verdict.status;
}
