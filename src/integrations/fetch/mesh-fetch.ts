import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { int, parseOptions } from '../../core/validate.js';
import { baseUrlOf, endpointDiscovery } from '../shared/endpoints.js';
import { DEADLINE_HEADER, httpClassifier, IDEMPOTENT_METHODS } from '../shared/http.js';
import { buildOutbound, type OutboundHandle, type OutboundOptions, outboundShape, refuseReplay } from '../shared/outbound.js';
import { type BodyPlan, DEFAULT_REPLAY_LIMIT, planBody, planStreamBody } from './body.js';

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
export interface MeshFetchOptions extends OutboundOptions {
  /** The fetch to call. Default `globalThis.fetch` (read once, at build time). */
  fetch?: typeof fetch;
  /** Retry POST, PATCH, ... too. Default false: only idempotent methods are retried. */
  retryNonIdempotent?: boolean;
  /** Per-route settings, first match wins. */
  routes?: readonly FetchRoute[];
  /** Bytes of request body kept for replay. Default 65,536 (64 KiB). */
  replayBuffer?: number;
  /** Header carrying the remaining deadline in ms; `false` to send none. Default `x-sidecarless-deadline-ms`. */
  deadlineHeader?: string | false;
  /**
   * Base URLs (`http://10.0.0.7:8080`) of the service's endpoints, static shorthand for
   * `discovery`: each attempt goes to one of them through the balance layer (P2C over
   * peak-EWMA); the caller's URL keeps only its path and query (`fetch('http://users/v1/u/42')`
   * or `fetch('/v1/u/42')`).
   */
  endpoints?: readonly string[];
  /** Count 4xx (other than 408/429) as failures. Default false. */
  clientErrorsAreFailures?: boolean;
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
  ...outboundShape,
  fetch: z.custom<typeof fetch>((v) => typeof v === 'function', { error: 'must be a fetch function' }).optional(),
  retryNonIdempotent: z.boolean({ error: 'must be true or false' }).default(false),
  routes: z.array(route).optional(),
  replayBuffer: int(0, 16 * 1024 * 1024).default(DEFAULT_REPLAY_LIMIT),
  deadlineHeader: z
    .union([z.literal(false), z.string().regex(/^[a-z0-9-]+$/i, { error: 'must be a header name' })], {
      error: 'must be a header name or false',
    })
    .default(DEADLINE_HEADER),
  endpoints: z.array(z.string(), { error: 'must be a list of base URLs' }).optional(),
  clientErrorsAreFailures: z.boolean({ error: 'must be true or false' }).default(false),
});

/** One logical request as it travels down the stack. */
class FetchRequest {
  input: FetchInput;
  init: RequestInit | undefined;
  /** Path and query, when balancing over endpoints. */
  path = '';
  plan: BodyPlan | undefined = undefined;
  refusal: string | undefined = undefined;
  /** A one-shot body has gone out: no later attempt (a hedge, which keeps attempt 1) may send it. */
  sent = false;
  constructor(input: FetchInput, init: RequestInit | undefined) {
    this.input = input;
    this.init = init;
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
    const plan = req.plan;
    const hasDeadline = this.#header !== false && ctx.deadline !== Number.POSITIVE_INFINITY;
    if (plan?.oneShot) {
      // Never retried, but a hedge above sends it again on a fork: a stream goes out once.
      if (req.sent) return Promise.reject(new Error(`sidecarless: ${req.refusal ?? 'one-shot body'}: not sent again`));
      req.sent = true;
    }
    // A signal that never fires (nothing can abort the call) is pointless to pass on.
    if ((signal !== init?.signal && !isNeverAborted(signal)) || plan?.body !== undefined || hasDeadline) {
      init = { ...init, signal };
      if (plan?.body !== undefined) {
        init.body = plan.body;
        if (plan.oneShot) (init as { duplex?: string }).duplex = 'half';
      }
      if (hasDeadline) {
        const headers = new Headers(init.headers ?? (req.input instanceof Request ? req.input.headers : undefined));
        headers.set(this.#header as string, String(Math.max(0, Math.floor(ctx.deadline - this.#clock.now()))));
        init.headers = headers;
      }
    }
    const promise = this.#fetch(this.#base === undefined ? req.input : this.#base + req.path, init);
    return req.refusal === undefined ? promise : markRefused(promise, req.refusal);
  }

  describe(): LayerDescription[] {
    return [{ layer: 'fetch', params: { deadlineHeader: this.#header, base: this.#base ?? 'caller' } }];
  }
}

function markRefused(promise: Promise<Response>, reason: string): Promise<Response> {
  return promise.then(
    (response) => {
      refuseReplay(response, reason);
      return response;
    },
    (error: unknown) => {
      refuseReplay(error, reason);
      throw error;
    },
  );
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
  );

  // Only a context made with the caller's signal may hold a listener to drop when it settles.
  const start = (req: FetchRequest, ctx: CallContext, callerSignal: boolean): Promise<Response> => {
    const promise = service.call(req, ctx);
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
    if (!retryNonIdempotent && !IDEMPOTENT_METHODS.has(method)) {
      req.refusal = `${method} is not idempotent (set retryNonIdempotent to retry it)`;
    }
    const plan = planBody(body, limit);
    if (plan !== undefined) {
      if (plan.refusal !== undefined) req.refusal ??= plan.refusal;
      return start(req, ctx, signal !== undefined);
    }
    if (req.refusal !== undefined || !mayRetry) {
      // Never replayed: the stream goes out as it is read, once, under the call's signal.
      req.plan = { body: body as ReadableStream<Uint8Array>, refusal: undefined, oneShot: true };
      return start(req, ctx, signal !== undefined);
    }
    return planStreamBody(body as ReadableStream<Uint8Array>, limit).then((streamPlan) => {
      req.plan = streamPlan;
      if (streamPlan.refusal !== undefined) req.refusal ??= streamPlan.refusal;
      return start(req, ctx, signal !== undefined);
    });
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
