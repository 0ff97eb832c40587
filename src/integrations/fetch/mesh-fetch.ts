import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { parseOptions } from '../../core/validate.js';
import { baseUrlOf, endpointDiscovery } from '../shared/endpoints.js';
import { deadlineHeaderValue, httpClassifier, methodRefusal } from '../shared/http.js';
import { buildOutbound, type OutboundHandle } from '../shared/outbound.js';
import { Replayable, replayBuffer, type StreamBody } from './body.js';
import { type HttpClientOptions, httpClientShape } from './options.js';

/** What `fetch` takes as its first argument: a URL string, a `URL` or a `Request`. */
export type FetchInput = Parameters<typeof fetch>[0];

/** A route of {@link MeshFetchOptions.routes}: matched by method and path, first match wins. */
export interface FetchRoute {
  /** Route name, for metrics and per-route config (`ctx.route`). */
  name: string;
  /** Method to match (`"POST"`); any when absent. */
  method?: string;
  /** Path prefix or pattern to match; any when absent. */
  path?: string | RegExp;
  /** Retry this route's requests even when the method is not idempotent. */
  retryNonIdempotent?: boolean;
}

/** Options of {@link meshFetch}. */
export interface MeshFetchOptions extends HttpClientOptions {
  /** The fetch to call. Default `globalThis.fetch` (read once, at build time). */
  fetch?: typeof fetch;
  /** Per-route settings, first match wins. */
  routes?: readonly FetchRoute[];
}

/** The function {@link meshFetch} returns: `fetch`'s signature, plus the stack's handles. */
export type MeshFetch = ((input: FetchInput, init?: RequestInit) => Promise<Response>) & OutboundHandle;

const route = z.strictObject({
  name: z.string().min(1, { error: 'must be a non-empty string' }),
  method: z.string().optional(),
  path: z.union([z.string(), z.instanceof(RegExp)], { error: 'must be a path prefix or a RegExp' }).optional(),
  retryNonIdempotent: z.boolean().optional(),
});

const schema = z.strictObject({
  ...httpClientShape,
  fetch: z.custom<typeof fetch>((v) => typeof v === 'function', { error: 'must be a fetch function' }).optional(),
  routes: z.array(route).optional(),
});

/** One logical request as it travels down the stack. */
class FetchRequest extends Replayable {
  input: FetchInput;
  init: RequestInit | undefined;
  /** Path and query, when balancing over endpoints. */
  path = '';
  /** The body each attempt sends in place of the caller's (buffered, or a stream sent once). */
  body: RequestInit['body'] | undefined = undefined;
  constructor(input: FetchInput, init: RequestInit | undefined) {
    super();
    this.input = input;
    this.init = init;
  }
  protected useBody(body: NonNullable<RequestInit['body']> | StreamBody): void {
    this.body = body as RequestInit['body'];
  }
}

/**
 * The innermost service: one fetch per attempt with our signal — to the caller's URL, or, as
 * one endpoint's service under the balancer, to the endpoint's base URL plus the caller's path.
 */
class FetchService implements Service<FetchRequest, Response> {
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #header: string | false;
  readonly #base: string | undefined;

  constructor(fetchFn: typeof fetch, env: StackEnv, header: string | false, base: string | undefined) {
    this.#fetch = fetchFn;
    this.#clock = env.clock;
    this.#header = header;
    this.#base = base;
  }

  call(req: FetchRequest, ctx: CallContext): Promise<Response> {
    let init = req.init;
    const signal = ctx.signal;
    const body = req.body;
    const hasDeadline = this.#header !== false && ctx.deadline !== Number.POSITIVE_INFINITY;
    const sentAlready = req.claimSend();
    if (sentAlready !== undefined) return Promise.reject(sentAlready);
    // A signal that never fires (nothing can abort the call) is pointless to pass on.
    if ((signal !== init?.signal && !isNeverAborted(signal)) || body !== undefined || hasDeadline) {
      init = { ...init, signal };
      if (body !== undefined) {
        init.body = body;
        if (req.oneShot) (init as { duplex?: string }).duplex = 'half';
      }
      if (hasDeadline) {
        const headers = new Headers(init.headers ?? (req.input instanceof Request ? req.input.headers : undefined));
        headers.set(this.#header as string, deadlineHeaderValue(ctx.deadline, this.#clock.now()));
        init.headers = headers;
      }
    }
    return req.marked(this.#fetch(this.#base === undefined ? req.input : this.#base + req.path, init));
  }

  describe(): LayerDescription[] {
    return [{ layer: 'fetch', params: { deadlineHeader: this.#header, base: this.#base ?? 'caller' } }];
  }
}

/** Cancels the body of a response that will be retried, so its connection is freed. */
function cancelBody(result: unknown): void {
  const body = (result as Response | undefined)?.body;
  if (body && !body.locked) body.cancel().catch(() => {});
}

/** The URL of a fetch input as a string: a `Request`'s own URL, not its `toString()`. */
function urlOf(input: FetchInput): string {
  return typeof input === 'string' ? input : input instanceof Request ? input.url : input.href;
}

function pathOf(input: string): string {
  if (input.startsWith('/')) return input;
  const url = new URL(input);
  return url.pathname + url.search;
}

/**
 * `fetch` through a sidecarless stack; see the module doc of `sidecarless/fetch`.
 *
 * ```ts
 * const fetch = meshFetch({ name: 'users', timeout: '2s', retry: { attempts: 2 } });
 * const res = await fetch('http://users.internal/v1/u/42');
 * ```
 */
export function meshFetch(options: MeshFetchOptions = {}): MeshFetch {
  const parsed = parseOptions(schema, options, 'meshFetch');
  const fetchFn = options.fetch ?? globalThis.fetch;
  const limit = parsed.replayBuffer;
  const routes = parsed.routes as readonly FetchRoute[] | undefined;
  const discovery = endpointDiscovery(parsed.endpoints, 'meshFetch.endpoints') ?? options.discovery;
  const balanced = discovery !== undefined;
  const classifier = httpClassifier({ clientErrorsAreFailures: parsed.clientErrorsAreFailures });
  // With retries off nothing is ever replayed: stream every body straight through.
  const mayRetry = options.retry !== false;
  const { service, handle } = buildOutbound<FetchRequest, Response>(
    options,
    classifier,
    cancelBody,
    (env, endpoint) => new FetchService(fetchFn, env, parsed.deadlineHeader, endpoint === undefined ? undefined : baseUrlOf(endpoint)),
    discovery,
    mayRetry ? replayBuffer(limit) : undefined,
  );

  // Only a context made with the caller's signal may hold a listener to drop when it settles.
  const start = (req: FetchRequest, ctx: CallContext, callerSignal: boolean): Promise<Response> => {
    const promise = req.releasingBody(service.call(req, ctx));
    return callerSignal ? promise.finally(() => ctx.dispose()) : promise;
  };

  const call = (input: FetchInput, init: RequestInit | undefined): Promise<Response> => {
    const req = new FetchRequest(input, init);
    let method = init?.method;
    let body: unknown = init?.body;
    let signal = init?.signal ?? undefined;
    if (input instanceof Request) {
      method ??= input.method;
      signal ??= input.signal;
      if (body == null && input.body !== null) body = input.body;
      if (body != null || balanced) {
        // Normalized to URL + init: a Request's own body can be read once only.
        req.input = input.url;
        req.init = { method: input.method, headers: input.headers, redirect: input.redirect, ...init };
      }
    }
    method = method === undefined ? 'GET' : method.toUpperCase();
    // Path and query, read once per call and only when needed: a Request is read by its URL.
    let path: string | undefined;
    if (balanced) path = req.path = pathOf(urlOf(input));
    const ctx = new CallContext(signal ?? undefined);
    let retryNonIdempotent = parsed.retryNonIdempotent;
    if (routes !== undefined) {
      for (const r of routes) {
        if (r.method !== undefined && r.method.toUpperCase() !== method) continue;
        if (r.path !== undefined) {
          path ??= pathOf(urlOf(input));
          if (!(typeof r.path === 'string' ? path.startsWith(r.path) : r.path.test(path))) continue;
        }
        ctx.route = r.name;
        if (r.retryNonIdempotent !== undefined) retryNonIdempotent = r.retryNonIdempotent;
        break;
      }
    }
    req.refusal = methodRefusal(method, retryNonIdempotent);
    req.planBody(body, limit, mayRetry);
    return start(req, ctx, signal !== undefined);
  };
  // Like fetch, a call never throws: a bad input (a URL that does not parse) is a rejection.
  const meshed = (input: FetchInput, init?: RequestInit): Promise<Response> => {
    try {
      return call(input, init);
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return Object.assign(meshed, handle);
}
