/**
 * What the protocols say about their statuses, in one place: which HTTP statuses and gRPC codes
 * a retry can fix. The HTTP and gRPC classifiers judge real responses by these rules, and fault
 * injection judges the statuses it injects by the same ones — an injected 503 is retried like a
 * real 503.
 *
 * @module
 */

/** gRPC status names, by code, as the protocol spells them (Istio's `grpcStatus` takes these). */
export const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/** A gRPC status name. */
export type GrpcStatusName = (typeof GRPC_STATUS_NAMES)[number];

/** `DEADLINE_EXCEEDED`: judged as a timeout, like our own. */
export const GRPC_DEADLINE_EXCEEDED = 4;

/** gRPC codes a retry can help with: the server did not process the call, or asked to come back. */
export const RETRYABLE_GRPC_CODES: ReadonlySet<number> = new Set([8 /* RESOURCE_EXHAUSTED */, 14 /* UNAVAILABLE */]);

/** Whether an HTTP status is a failure a retry could fix: 5xx but 501 and 505, 408 and 429. */
export function isRetryableHttpStatus(status: number): boolean {
  return (status >= 500 && status !== 501 && status !== 505) || status === 408 || status === 429;
}

/**
 * Parses `Retry-After`: delta-seconds or an HTTP date. Returns milliseconds, or `undefined` for
 * a missing or unreadable value (a bad header is ignored, never an error). A date must hold a
 * letter: `Date.parse` reads "1.5" or " 5" as dates in 2001, which would make a wait of 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowWall = Date.now()): number | undefined {
  const text = value?.trim() ?? '';
  // Any number of seconds: a caller keeps the wait within its own bounds.
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = /[A-Za-z]/.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowWall);
}
