/**
 * Context propagation: the trace context of the current call into outgoing fetch headers or gRPC
 * metadata, and back out of incoming ones, through the API's global propagator (W3C
 * `traceparent` once the SDK registers it; nothing at all when no propagator is registered).
 *
 * @module
 */

import { type Context, context, defaultTextMapGetter, propagation, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';

/** Something with `set(key, value)`: a `Headers`, a gRPC `Metadata`, a `Map`. */
export interface SettableCarrier {
  set(key: string, value: string): unknown;
}

const setterOf: TextMapSetter<SettableCarrier> = {
  set: (carrier, key, value) => {
    carrier.set(key, value);
  },
};

/** The propagation headers of `ctx` (default: the active context) as a plain object. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const headers: Record<string, string> = {};
  propagation.inject(ctx, headers);
  return headers;
}

/**
 * A copy of fetch's `init` whose headers carry the trace context; the caller's object is left
 * alone. Works with any `HeadersInit` form (object, array of pairs, `Headers`).
 */
export function injectFetchInit<I extends { headers?: unknown }>(init?: I, ctx: Context = context.active()): I {
  const extra = traceHeaders(ctx);
  if (Object.keys(extra).length === 0) return init ?? ({} as I);
  const headers = new Headers((init?.headers as ConstructorParameters<typeof Headers>[0]) ?? undefined);
  for (const [key, value] of Object.entries(extra)) headers.set(key, value);
  return { ...(init ?? ({} as I)), headers };
}

/** Sets the trace context on a carrier with `set` (a gRPC `Metadata`, a `Headers`); returns it. */
export function injectInto<C extends SettableCarrier>(carrier: C, ctx: Context = context.active()): C {
  propagation.inject(ctx, carrier, setterOf);
  return carrier;
}

/** gRPC `Metadata.get` returns a list; `Headers.get` a string; a plain object holds either. */
const flexibleGetter: TextMapGetter<unknown> = {
  keys: (carrier) => {
    if (carrier instanceof Headers) return [...carrier.keys()];
    const map = (carrier as { getMap?: () => Record<string, unknown> }).getMap?.();
    return Object.keys(map ?? (carrier as object));
  },
  get: (carrier, key) => {
    const getter = (carrier as { get?: (k: string) => unknown }).get;
    const value =
      typeof getter === 'function' ? getter.call(carrier, key) : defaultTextMapGetter.get(carrier as Record<string, string>, key);
    if (Array.isArray(value)) return value.length > 0 ? value.map(String) : undefined;
    if (value === null || value === undefined) return undefined;
    return String(value);
  },
};

/** The context carried by incoming headers or gRPC metadata, as the parent of the server's work. */
export function extractContext(carrier: unknown, ctx: Context = context.active()): Context {
  return propagation.extract(ctx, carrier, flexibleGetter);
}
