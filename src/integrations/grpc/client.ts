import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import type { Clock } from '../../core/clock.js';
import { CallContext, isNeverAborted } from '../../core/context.js';
import { InvalidOptionError, TimeoutError } from '../../core/errors.js';
import type { LayerDescription, Service, StackEnv } from '../../core/service.js';
import { parseOptions } from '../../core/validate.js';
import type { Endpoint } from '../../discovery/types.js';
import { endpointDiscovery, targetOf } from '../shared/endpoints.js';
import { buildOutbound, type OutboundHandle, type OutboundOptions, outboundShape } from '../shared/outbound.js';
import { grpcClassifier } from './classifier.js';

/** Per-call options of a meshed gRPC method. */
export interface GrpcCallOptions {
  /** Metadata sent with every attempt. */
  metadata?: grpc.Metadata;
  /** Cancels the call (`call.cancel()` on the attempt in flight). */
  signal?: AbortSignal;
  /** Remaining time the caller already has, ms (e.g. from an incoming deadline). */
  timeoutMs?: number;
}

/** Options of {@link meshGrpcClient}. */
export interface MeshGrpcClientOptions extends OutboundOptions {
  /**
   * `host:port` of each endpoint (static shorthand for `discovery`); one channel per endpoint,
   * the balance layer (P2C over peak-EWMA) between them.
   */
  endpoints?: readonly string[];
  /** Channel credentials. Default insecure (loopback, tests, a mesh that does mTLS elsewhere). */
  credentials?: grpc.ChannelCredentials;
  /** Extra channel options. */
  channelOptions?: grpc.ChannelOptions;
}

/** A generated client constructor (`new Greeter(address, credentials, options)`), with its service definition. */
export type GrpcClientConstructor<C extends grpc.Client = grpc.Client> = (new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => C) & { service: grpc.ServiceDefinition };

/** A client whose unary and server-streaming methods go through the stack. */
export interface MeshGrpcClient extends OutboundHandle {
  /** Calls a unary method by name (`"sayHello"` or its original `"SayHello"`). */
  unary<Res = unknown, Req = unknown>(method: string, request: Req, options?: GrpcCallOptions): Promise<Res>;
  /** Calls a server-streaming method; retried only until its first message arrives. */
  serverStream<Res = unknown, Req = unknown>(method: string, request: Req, options?: GrpcCallOptions): AsyncIterable<Res>;
}

interface GrpcRequest {
  method: string;
  streaming: boolean;
  request: unknown;
  metadata: grpc.Metadata;
}

/**
 * What a server-streaming attempt resolves with: the call and its first message, paused. From
 * then on it keeps the call's status error: grpc-js emits it whether or not anyone reads (an
 * `'error'` without a listener would be an uncaught exception), and a stream that errs before
 * it is iterated merely ends, so {@link continueStream} rethrows it.
 */
class StreamStart {
  readonly call: grpc.ClientReadableStream<unknown>;
  readonly first: unknown;
  readonly ended: boolean;
  error: Error | undefined = undefined;

  constructor(call: grpc.ClientReadableStream<unknown>, first: unknown, ended: boolean) {
    this.call = call;
    this.first = first;
    this.ended = ended;
    call.on('error', (error: Error) => {
      this.error ??= error;
    });
  }
}

type Callback = (error: grpc.ServiceError | null, value?: unknown) => void;
type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => grpc.ClientUnaryCall;
type StreamMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/** One endpoint's service: its own channel (a generated client), closed when the endpoint goes. */
class GrpcService implements Service<GrpcRequest, unknown> {
  readonly #client: grpc.Client;
  readonly #target: string;
  readonly #clock: Clock;
  readonly #owned: boolean;

  constructor(client: grpc.Client, target: string, env: StackEnv, owned: boolean) {
    this.#client = client;
    this.#target = target;
    this.#clock = env.clock;
    this.#owned = owned;
  }

  call(req: GrpcRequest, ctx: CallContext): Promise<unknown> {
    const startedAt = this.#clock.now();
    const options: grpc.CallOptions = {};
    // The remaining deadline becomes the call's own, so the server sees it as grpc-timeout.
    if (ctx.deadline !== Number.POSITIVE_INFINITY) options.deadline = new Date(Date.now() + Math.max(0, ctx.deadline - startedAt));
    const signal = ctx.signal;
    // A signal that never fires (any of the rotating ones handed out) needs no listener.
    const listens = !isNeverAborted(signal);
    return new Promise<unknown>((resolve, reject) => {
      const client = this.#client as unknown as Record<string, UnaryMethod & StreamMethod>;
      let call: grpc.ClientUnaryCall | grpc.ClientReadableStream<unknown>;
      const onAbort = (): void => call.cancel();
      const settle = (): void => {
        if (listens) signal.removeEventListener('abort', onAbort);
      };
      if (req.streaming) {
        const stream = (client[req.method] as StreamMethod).call(client, req.request, req.metadata, options);
        call = stream;
        const onData = (message: unknown): void => done(undefined, new StreamStart(stream, message, false));
        const onEnd = (): void => done(undefined, new StreamStart(stream, undefined, true));
        const onError = (error: Error): void => done(error);
        const done = (error: Error | undefined, start?: StreamStart): void => {
          stream.pause();
          stream.off('data', onData).off('end', onEnd).off('error', onError);
          settle();
          if (error !== undefined) reject(asTimeout(error, ctx, startedAt));
          else resolve(start);
        };
        stream.on('data', onData).on('end', onEnd).on('error', onError);
      } else {
        call = (client[req.method] as UnaryMethod).call(client, req.request, req.metadata, options, (error, value) => {
          settle();
          if (error) reject(asTimeout(error, ctx, startedAt));
          else resolve(value);
        });
      }
      if (listens) {
        if (signal.aborted) call.cancel();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  describe(): LayerDescription[] {
    return [{ layer: 'grpc', params: { target: this.#target } }];
  }

  close(): void {
    if (this.#owned) this.#client.close();
  }
}

/**
 * DEADLINE_EXCEEDED of a deadline we set is our timeout: the caller gets the same
 * {@link TimeoutError} whichever of the two timers (ours, grpc-js's) fired first.
 */
function asTimeout(error: Error, ctx: CallContext, startedAt: number): Error {
  if ((error as grpc.ServiceError).code !== grpc.status.DEADLINE_EXCEEDED || ctx.deadline === Number.POSITIVE_INFINITY) return error;
  return new TimeoutError(Math.round(ctx.deadline - startedAt), { cause: error, layer: 'grpc' });
}

/** The error of a call cancelled through the caller's signal, shaped as grpc-js's own. */
function cancelledStatus(): grpc.ServiceError {
  const details = 'Cancelled on client';
  return Object.assign(new Error(`${grpc.status.CANCELLED} CANCELLED: ${details}`), {
    code: grpc.status.CANCELLED,
    details,
    metadata: new grpc.Metadata(),
  });
}

/** Cancels a result that will be retried: only a stream can be one (a unary message holds nothing). */
function discardStream(result: unknown): void {
  (result as StreamStart | undefined)?.call?.cancel?.();
}

/**
 * The messages of a started stream. The caller's `signal` cancels the call until it ends: the
 * attempt's own listener is gone once the first message settled the stack, and a layer may
 * have handed the attempt a context of its own (a hedge's fork) that no longer follows the
 * caller's. A cancelled stream yields nothing more, though messages may be buffered.
 */
async function* continueStream<Res>(start: StreamStart, signal: AbortSignal | undefined): AsyncGenerator<Res> {
  if (start.ended) return;
  const call = start.call;
  const onAbort = (): void => call.cancel();
  if (signal !== undefined) {
    if (signal.aborted) call.cancel();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  try {
    if (!signal?.aborted) {
      yield start.first as Res;
      for await (const message of call) {
        if (signal?.aborted) break;
        yield message as Res;
      }
    }
    // A status that came while nothing read the stream ended it quietly: it is the outcome.
    if (start.error !== undefined) throw start.error;
    if (signal?.aborted) throw cancelledStatus();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // A consumer that stops early ends the call on the server too; after the end it is a no-op.
    call.cancel();
  }
}

const schema = z.strictObject({
  ...outboundShape,
  endpoints: z.array(z.string(), { error: 'must be a list of "host:port"' }).optional(),
  credentials: z.instanceof(grpc.ChannelCredentials, { error: 'must be grpc ChannelCredentials' }).optional(),
  channelOptions: z.record(z.string(), z.unknown()).optional(),
});

/**
 * A balanced, meshed client of a generated gRPC service: one channel per endpoint, the stack's
 * timeout and retries around each call, P2C between the endpoints for each attempt. grpc-js's
 * own retries are switched off on these channels (`grpc.enable_retries: 0`) when ours are on,
 * so a call is never retried twice over.
 */
export function meshGrpcClient<C extends grpc.Client>(Client: GrpcClientConstructor<C>, options: MeshGrpcClientOptions): MeshGrpcClient {
  const parsed = parseOptions(schema, options, 'meshGrpcClient');
  if (typeof Client !== 'function' || typeof Client.service !== 'object') {
    throw new InvalidOptionError('meshGrpcClient.Client', 'must be a generated client constructor (with a static `service`)');
  }
  const channelOptions: grpc.ChannelOptions = { ...parsed.channelOptions };
  if (options.retry !== false) channelOptions['grpc.enable_retries'] = 0;
  const credentials = options.credentials ?? grpc.credentials.createInsecure();
  const discovery = endpointDiscovery(parsed.endpoints, 'meshGrpcClient.endpoints') ?? options.discovery;
  if (discovery === undefined)
    throw new InvalidOptionError('meshGrpcClient.endpoints', 'must list at least one "host:port" (or give a discovery)');
  const { service, env, handle } = buildOutbound<GrpcRequest, unknown>(
    options,
    grpcClassifier,
    discardStream,
    (env, endpoint) => {
      const target = targetOf(endpoint as Endpoint);
      return new GrpcService(new Client(target, credentials, channelOptions), target, env, true);
    },
    discovery,
  );
  return meshedMethods(Client.service, service, env, handle);
}

/**
 * Wraps an existing generated client (one channel) with the stack: its unary and
 * server-streaming methods go through timeout and retries. Its channel's options cannot be
 * changed any more: create it with {@link NO_GRPC_RETRIES} so grpc-js does not retry as well.
 * `close()` closes the client too unless `closeClient: false`.
 */
export function meshGrpc(client: grpc.Client, options: OutboundOptions & { closeClient?: boolean } = {}): MeshGrpcClient {
  const Client = client?.constructor as GrpcClientConstructor | undefined;
  if (typeof client?.getChannel !== 'function' || typeof Client?.service !== 'object') {
    throw new InvalidOptionError('meshGrpc.client', 'must be an instance of a generated gRPC client');
  }
  const { closeClient = true, ...rest } = options;
  const { service, env, handle } = buildOutbound<GrpcRequest, unknown>(
    rest,
    grpcClassifier,
    discardStream,
    (stackEnv) => new GrpcService(client, client.getChannel().getTarget(), stackEnv, closeClient),
  );
  return meshedMethods(Client.service, service, env, handle);
}

/** Channel options that switch grpc-js's own retries off, for clients wrapped by {@link meshGrpc}. */
export const NO_GRPC_RETRIES: grpc.ChannelOptions = Object.freeze({ 'grpc.enable_retries': 0 });

/** The promise-returning calls over a built stack, checked against the service definition. */
function meshedMethods(
  definition: grpc.ServiceDefinition,
  service: Service<GrpcRequest, unknown>,
  env: StackEnv,
  handle: OutboundHandle,
): MeshGrpcClient {
  // Method names as the generated client has them (camelCase) and as the proto spells them.
  const methods = new Map<string, { name: string; streaming: boolean }>();
  for (const [name, method] of Object.entries(definition)) {
    if (method.requestStream) continue;
    const entry = { name, streaming: method.responseStream };
    methods.set(name, entry);
    if (method.originalName !== undefined) methods.set(method.originalName, entry);
  }

  const start = (method: string, streaming: boolean, request: unknown, callOptions: GrpcCallOptions | undefined): Promise<unknown> => {
    const entry = methods.get(method);
    if (entry === undefined || entry.streaming !== streaming) {
      return Promise.reject(
        new InvalidOptionError('method', `"${method}" is not a ${streaming ? 'server-streaming' : 'unary'} method of this service`),
      );
    }
    const timeoutMs = callOptions?.timeoutMs;
    // A negative time left is a deadline already passed (the call times out); NaN is no time at all.
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs))) {
      return Promise.reject(new InvalidOptionError('timeoutMs', `must be a number of milliseconds (got ${String(timeoutMs)})`));
    }
    const signal = callOptions?.signal;
    const ctx = new CallContext(signal, timeoutMs === undefined ? undefined : env.clock.now() + timeoutMs);
    const req: GrpcRequest = { method: entry.name, streaming, request, metadata: callOptions?.metadata ?? new grpc.Metadata() };
    const promise = service.call(req, ctx);
    return signal === undefined ? promise : promise.finally(() => ctx.dispose());
  };

  return Object.assign(handle, {
    unary: <Res>(method: string, request: unknown, callOptions?: GrpcCallOptions) =>
      start(method, false, request, callOptions) as Promise<Res>,
    serverStream: <Res>(method: string, request: unknown, callOptions?: GrpcCallOptions): AsyncIterable<Res> => ({
      async *[Symbol.asyncIterator]() {
        const first = (await start(method, true, request, callOptions)) as StreamStart;
        yield* continueStream<Res>(first, callOptions?.signal);
      },
    }),
  }) as MeshGrpcClient;
}
