import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { parseOptions } from '../../core/validate.js';
import { baseUrlOf, endpointDiscovery } from '../shared/endpoints.js';
import { appendHeader, deadlineHeaderValue, httpClassifier, methodRefusal } from '../shared/http.js';
import { buildOutbound, type OutboundHandle } from '../shared/outbound.js';
import { Replayable, replayBuffer, type StreamBody } from './body.js';
import { type HttpClientOptions, httpClientShape } from './options.js';

type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & Partial<Pick<Dispatcher.RequestOptions, 'method'>>;
type UndiciRequest = (url: string | URL, options?: RequestOptions) => Promise<Dispatcher.ResponseData>;

/** Options of {@link meshRequest}. */
export interface MeshRequestOptions extends HttpClientOptions {
  /** undici's `request` (or a compatible one). Default: `request` of the installed `undici`. */
  request?: UndiciRequest;
}

/** undici's `request` through the stack, plus the stack's handles. */
export type MeshRequest = ((url: string | URL, options?: RequestOptions) => Promise<Dispatcher.ResponseData>) & OutboundHandle;

const schema = z.strictObject({
  ...httpClientShape,
  request: z.custom<UndiciRequest>((v) => typeof v === 'function', { error: 'must be a function' }).optional(),
});

class UndiciCall extends Replayable {
  url: string | URL;
  options: RequestOptions | undefined;
  path = '';
  constructor(url: string | URL, options: RequestOptions | undefined) {
    super();
    this.url = url;
    this.options = options;
  }
  protected useBody(body: NonNullable<RequestInit['body']> | StreamBody): void {
    this.options = { ...this.options, body: body as RequestOptions['body'] };
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
    const sentAlready = req.claimSend();
    if (sentAlready !== undefined) throw sentAlready;
    // A signal that never fires (nothing can abort the call) is pointless to pass on.
    if ((signal !== options?.signal && !isNeverAborted(signal)) || hasDeadline) {
      options = { ...options, signal };
      if (hasDeadline)
        options.headers = appendHeader(options.headers, this.#header as string, deadlineHeaderValue(ctx.deadline, this.#clock.now()));
    }
    return req.marked(this.#request(this.#base === undefined ? req.url : this.#base + req.path, options));
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
    mayRetry ? replayBuffer(limit) : undefined,
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
    req.refusal = methodRefusal(method, parsed.retryNonIdempotent);
    const signal = (requestOptions?.signal ?? undefined) as AbortSignal | undefined;
    const ctx = new CallContext(signal);
    req.planBody(requestOptions?.body, limit, mayRetry);
    const promise = req.releasingBody(service.call(req, ctx));
    return signal === undefined ? promise : promise.finally(() => ctx.dispose());
  };
  return Object.assign(meshed, handle);
}
