/**
 * # sidecarless/fetch
 *
 * Outbound HTTP through a sidecarless stack, three ways:
 *
 * - {@link meshFetch} — a function with `fetch`'s exact signature. The call context's signal is
 *   passed as `init.signal` (linked to the caller's own, which still cancels the call); status
 *   codes are classified by {@link httpClassifier} (5xx retryable, 429/503 `Retry-After`
 *   honoured, 4xx a success unless told otherwise); only idempotent methods are retried unless
 *   `retryNonIdempotent` (or a route) says so; request bodies are replayed from a 64 KiB buffer
 *   and a larger body is sent once and never retried, with the reason counted in
 *   `replayRefused` and published as a `replay-refused` event, while a stream body of a request
 *   that will not be retried is not buffered but streamed through, once; a stream is buffered
 *   within the call, so the timeout and the caller's signal stop (and cancel) a body that never
 *   ends, and it is read once per call: under a retry or hedge of the caller's own `builder`, an
 *   attempt that times out or loses only stops waiting for the read, which the next attempt
 *   takes up; the body of a response
 *   that will be retried is cancelled; the remaining deadline travels in the `x-sidecarless-deadline-ms`
 *   header (whole milliseconds, relative like `grpc-timeout`; the Express and Fastify
 *   integrations read it, and `grpc-timeout`); with `endpoints` (or a `discovery`) each attempt
 *   goes to one of the service's endpoints through the balance layer (P2C over peak-EWMA,
 *   failure accrual), so a retry may land on another endpoint.
 * - {@link meshRequest} — the same stack over undici's `request`, which costs about half of
 *   what `fetch` costs per call.
 * - {@link meshInterceptor} — an undici interceptor (`Dispatcher.compose`), so a process can
 *   opt in for every `fetch` with `setGlobalDispatcher(new Agent().compose(meshInterceptor()))`.
 *   Nothing global is ever patched implicitly.
 *
 * `undici` is an optional peer dependency, loaded only by `meshRequest` and the interceptor's
 * users (the interceptor itself needs no import).
 *
 * @module
 */

export {
  DEADLINE_HEADER,
  type HttpClassifierOptions,
  httpClassifier,
  IDEMPOTENT_METHODS,
  parseDeadlineHeader,
  parseRetryAfter,
} from '../shared/http.js';
export type { OutboundHandle, OutboundOptions } from '../shared/outbound.js';
export { DEFAULT_REPLAY_LIMIT } from './body.js';
export { type MeshInterceptorOptions, meshInterceptor } from './interceptor.js';
export { type FetchInput, type FetchRoute, type MeshFetch, type MeshFetchOptions, meshFetch } from './mesh-fetch.js';
export type { HttpClientOptions, HttpOutboundOptions } from './options.js';
export { type MeshRequest, type MeshRequestOptions, meshRequest } from './request.js';
