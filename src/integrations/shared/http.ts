/**
 * HTTP pieces shared by the outbound (fetch, undici) and inbound (Express, Fastify)
 * integrations: the status classifier, `Retry-After`, the deadline header and idempotency.
 *
 * @module
 */

import { type Classification, type Classifier, classification, defaultClassifier } from '../../core/classify.js';
import { isRetryableHttpStatus, parseRetryAfter } from '../../core/status.js';

/**
 * The header that carries the caller's remaining deadline, in whole milliseconds. Relative, as
 * gRPC's `grpc-timeout` is, so clocks of the two hosts need not agree; the receiver turns it into
 * an absolute deadline on its own clock when the request arrives. Inbound, `grpc-timeout`
 * (`"250m"`, `"2S"`) is read too.
 */
export const DEADLINE_HEADER = 'x-sidecarless-deadline-ms';

/**
 * The value of {@link DEADLINE_HEADER} for a call whose deadline is `deadline` when it is `now`
 * (both clock milliseconds): the whole milliseconds left, never negative.
 */
export function deadlineHeaderValue(deadline: number, now: number): string {
  return String(Math.max(0, Math.floor(deadline - now)));
}

/** Methods RFC 9110 calls idempotent: safe to send twice. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Why a request with `method` (uppercase) must not be retried, or `undefined` when it may be:
 * only idempotent methods are, unless `retryNonIdempotent` says otherwise.
 */
export function methodRefusal(method: string, retryNonIdempotent: boolean): string | undefined {
  if (retryNonIdempotent || IDEMPOTENT_METHODS.has(method)) return undefined;
  return `${method} is not idempotent (set retryNonIdempotent to retry it)`;
}

/** Options of {@link httpClassifier}. */
export interface HttpClassifierOptions {
  /** Count 4xx (other than 408 and 429) as failures. Default false: the server answered. */
  clientErrorsAreFailures?: boolean;
}

/** The parts of a response the classifier reads: a fetch `Response` or undici's `ResponseData`. */
interface StatusCarrier {
  status?: number;
  statusCode?: number;
  headers?: { get?(name: string): string | null } | Record<string, string | string[] | undefined>;
}

/** `Retry-After` parsing, one rule for every protocol layer (it lives in core, the control client reads it too). */
export { parseRetryAfter } from '../../core/status.js';

function headerOf(headers: StatusCarrier['headers'], name: string): string | undefined {
  if (headers === undefined) return undefined;
  if (typeof (headers as { get?: unknown }).get === 'function')
    return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The HTTP classifier: 5xx (but 501 and 505) are retryable failures, 408 and 429 too; 4xx are
 * successes by default (the server did its job); 429 and 503 carry `Retry-After` as
 * `retryAfterMs`, which the retry layer waits at least. Thrown errors are judged by the default
 * classifier (network errors retryable, timeouts retryable, others not). Classifications of
 * plain statuses are cached, so judging a response allocates nothing.
 */
export function httpClassifier(options: HttpClassifierOptions = {}): Classifier<unknown> {
  const clientFailures = options.clientErrorsAreFailures === true;
  const cache = new Map<number, Classification>();
  const byStatus = (status: number): Classification => {
    let verdict = cache.get(status);
    if (verdict === undefined) {
      const failure = status >= 500 || status === 408 || status === 429 || (clientFailures && status >= 400);
      verdict = classification(failure ? 'failure' : 'success', String(status), isRetryableHttpStatus(status));
      cache.set(status, verdict);
    }
    return verdict;
  };
  return {
    classifyResult(result) {
      const carrier = result as StatusCarrier | null | undefined;
      const status = carrier?.status ?? carrier?.statusCode;
      if (typeof status !== 'number') return defaultClassifier.classifyResult(result);
      const verdict = byStatus(status);
      if (status !== 429 && status !== 503) return verdict;
      const retryAfterMs = parseRetryAfter(headerOf(carrier?.headers, 'retry-after'));
      return retryAfterMs === undefined ? verdict : classification('failure', verdict.status, true, retryAfterMs);
    },
    classifyError: (error) => defaultClassifier.classifyError(error),
  };
}

/**
 * Reads an incoming deadline: {@link DEADLINE_HEADER} in milliseconds, or `grpc-timeout`
 * (`<digits><H|M|S|m|u|n>`). Returns the remaining milliseconds, or `undefined`.
 */
export function parseDeadlineHeader(ms: string | string[] | undefined, grpcTimeout?: string | string[]): number | undefined {
  const own = Array.isArray(ms) ? ms[0] : ms;
  if (own !== undefined && /^\d{1,10}$/.test(own)) return Number(own);
  const grpc = Array.isArray(grpcTimeout) ? grpcTimeout[0] : grpcTimeout;
  const match = grpc === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(grpc);
  if (match === null) return undefined;
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[match[2] as 'H'];
  return Number(match[1]) * unit;
}

/**
 * A copy of undici-style headers (a plain object, a flat `[name, value, ...]` array, or pairs)
 * with one more header; the caller's object is never changed.
 */
export function appendHeader<H>(input: H, name: string, value: string): H {
  const headers: unknown = input;
  if (headers === null || headers === undefined) return { [name]: value } as H;
  if (Array.isArray(headers)) return (Array.isArray(headers[0]) ? [...headers, [name, value]] : [...headers, name, value]) as H;
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return [...(headers as Iterable<[string, string]>), [name, value]] as H;
  }
  return { ...(headers as Record<string, string>), [name]: value } as H;
}
