import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { int, parseOptions } from '../../core/validate.js';
import { baseUrlOf, endpointDiscovery } from '../shared/endpoints.js';
import { appendHeader, DEADLINE_HEADER, httpClassifier, IDEMPOTENT_METHODS } from '../shared/http.js';
import { buildOutbound, type OutboundHandle, type OutboundOptions, outboundShape, refuseReplay } from '../shared/outbound.js';
import { DEFAULT_REPLAY_LIMIT, planBody, planStreamBody } from './body.js';

type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & Partial<Pick<Dispatcher.RequestOptions, 'method'>>;
type UndiciRequest = (url: string | URL, options?: RequestOptions) => Promise<Dispatcher.ResponseData>;

/** Options of {@link meshRequest}. */
export interface MeshRequestOptions extends OutboundOptions {
  /** undici's `request` (or a compatible one). Default: `request` of the installed `undici`. */
  request?: UndiciRequest;
  /** Retry POST, PATCH, ... too. Default false. */
  retryNonIdempotent?: boolean;
  /** Bytes of request body kept for replay. Default 64 KiB. */
  replayBuffer?: number;
  /** Header carrying the remaining deadline in ms; `false` for none. */
  deadlineHeader?: string | false;
  /** Base URLs to balance over (see `meshFetch`). */
  endpoints?: readonly string[];
  /** Count 4xx (other than 408/429) as failures. Default false. */
  clientErrorsAreFailures?: boolean;
}

/** undici's `request` through the stack, plus the stack's handles. */
export type MeshRequest = ((url: string | URL, options?: RequestOptions) => Promise<Dispatcher.ResponseData>) & OutboundHandle;

const schema = z.strictObject({
  ...outboundShape,
  request: z.custom<UndiciRequest>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
  retryNonIdempotent: z.boolean({ error: 'must be true or false' }).default(false),
  replayBuffer: int(0, 16 * 1024 * 1024).default(DEFAULT_REPLAY_LIMIT),
  deadlineHeader: z
    .union([z.literal(false), z.string().regex(/^[a-z0-9-]+$/i)], { error: 'must be a header name or false' })
    .default(DEADLINE_HEADER),
  endpoints: z.array(z.string(), { error: 'must be a list of base URLs' }).optional(),
  clientErrorsAreFailures: z.boolean({ error: 'must be true or false' }).default(false),
});

class UndiciCall {
  url: string | URL;
  options: RequestOptions | undefined;
  path = '';
  refusal: string | undefined = undefined;
  /** The body is a stream sent as it is read: it can go out on one attempt only. */
  oneShot = false;
  /** A one-shot body has gone out: no later attempt (a hedge, which keeps attempt 1) may send it. */
  sent = false;
  constructor(url: string | URL, options: RequestOptions | undefined) {
    this.url = url;
    this.options = options;
  }
}

class RequestService implements Service<UndiciCall, Dispatcher.ResponseData> {
  readonly #request: UndiciRequest;
  readonly #clock: Clock;
  readonly #header: string | false;
  readonly #base: string | undefined;

  constructor(request: UndiciRequest, env: StackEnv, header: string | false, base: string | undefined) {
    this.#request = request;
    this.#clock = env.clock;
    this.#header = header;
    this.#base = base;
  }

  async call(req: UndiciCall, ctx: CallContext): Promise<Dispatcher.ResponseData> {
    let options = req.options;
    const signal = ctx.signal;
    const hasDeadline = this.#header !== false && ctx.deadline !== Number.POSITIVE_INFINITY;
    if (req.oneShot) {
      // Never retried, but a hedge above sends it again on a fork: a stream goes out once.
      if (req.sent) throw new Error(`sidecarless: ${req.refusal ?? 'one-shot body'}: not sent again`);
      req.sent = true;
    }
    // A signal that never fires (nothing can abort the call) is pointless to pass on.
    if ((signal !== options?.signal && !isNeverAborted(signal)) || hasDeadline) {
      options = { ...options, signal };
      if (hasDeadline) {
        options.headers = appendHeader(
          options.headers,
          this.#header as string,
          String(Math.max(0, Math.floor(ctx.deadline - this.#clock.now()))),
        );
      }
    }
    try {
      const response = await this.#request(this.#base === undefined ? req.url : this.#base + req.path, options);
      if (req.refusal !== undefined) refuseReplay(response, req.refusal);
      return response;
    } catch (error) {
      if (req.refusal !== undefined) refuseReplay(error, req.refusal);
      throw error;
    }
  }

  describe(): LayerDescription[] {
    return [{ layer: 'undici-request', params: { deadlineHeader: this.#header, base: this.#base ?? 'caller' } }];
  }
}

/** Reads and drops the body of a response that will be retried, freeing its connection. */
function dumpBody(result: unknown): void {
  (result as Dispatcher.ResponseData | undefined)?.body?.dump().catch(() => {});
}

/**
 * undici's `request` through a sidecarless stack: the same classification, retries, replay
 * rules, deadline header and balancing as `meshFetch`, at undici's lower cost per call.
 */
export function meshRequest(options: MeshRequestOptions = {}): MeshRequest {
  const parsed = parseOptions(schema, options, 'meshRequest');
  // Loaded here, not at import: undici is an optional peer of `sidecarless/fetch`.
  const requestFn = options.request ?? (createRequire(import.meta.url)('undici') as { request: UndiciRequest }).request;
  const limit = parsed.replayBuffer;
  const discovery = endpointDiscovery(parsed.endpoints, 'meshRequest.endpoints') ?? options.discovery;
  const balanced = discovery !== undefined;
  // With retries off nothing is ever replayed: stream every body straight through.
  const mayRetry = options.retry !== false;
  const { service, handle } = buildOutbound<UndiciCall, Dispatcher.ResponseData>(
    options,
    httpClassifier({ clientErrorsAreFailures: parsed.clientErrorsAreFailures }),
    dumpBody,
    (env, endpoint) => new RequestService(requestFn, env, parsed.deadlineHeader, endpoint === undefined ? undefined : baseUrlOf(endpoint)),
    discovery,
  );
  const meshed = (url: string | URL, requestOptions?: RequestOptions): Promise<Dispatcher.ResponseData> => {
    const req = new UndiciCall(url, requestOptions);
    if (balanced) {
      const text = String(url);
      if (text.startsWith('/')) req.path = text;
      else if (URL.canParse(text)) req.path = (({ pathname, search }) => pathname + search)(new URL(text));
      // Like undici's request, a call never throws: a URL that does not parse is a rejection.
      else return Promise.reject(new TypeError(`Invalid URL: ${text}`));
    }
    const method = requestOptions?.method?.toUpperCase() ?? 'GET';
    if (!parsed.retryNonIdempotent && !IDEMPOTENT_METHODS.has(method))
      req.refusal = `${method} is not idempotent (set retryNonIdempotent to retry it)`;
    const signal = (requestOptions?.signal ?? undefined) as AbortSignal | undefined;
    const ctx = new CallContext(signal);
    const plan = planBody(requestOptions?.body, limit);
    if (plan === undefined) {
      if (req.refusal !== undefined || !mayRetry) {
        // Never replayed: the stream goes out as it is read, once, under the call's signal.
        req.oneShot = true;
      } else {
        return planStreamBody(requestOptions?.body as AsyncIterable<Uint8Array>, limit).then((streamPlan) => {
          req.options = { ...requestOptions, body: streamPlan.body as RequestOptions['body'] };
          req.refusal ??= streamPlan.refusal;
          req.oneShot = streamPlan.oneShot;
          return service.call(req, ctx).finally(() => ctx.dispose());
        });
      }
    } else req.refusal ??= plan.refusal;
    const promise = service.call(req, ctx);
    return signal === undefined ? promise : promise.finally(() => ctx.dispose());
  };
  return Object.assign(meshed, handle);
}
