/**
 * Classification: every outcome is judged once, the same way, by every layer that cares —
 * retry, breakers, balancer load and metrics (linkerd2-proxy's response classifiers; Tower's
 * `Policy` and `classify`). A classifier is protocol-aware: the fetch integration reads HTTP
 * status and `Retry-After`, the gRPC one reads status codes; the default judges thrown errors.
 *
 * @module
 */

import { SidecarlessError, TimeoutError } from './errors.js';

/** How an outcome counts. */
export interface Classification {
  /** `success`, or `failure` (counts against breakers, success rate and endpoint health). */
  readonly kind: 'success' | 'failure';
  /** Whether a retry could help (a reset connection, a 503); only meaningful for failures. */
  readonly retryable: boolean;
  /** A short label for metrics: an HTTP status, a gRPC code name, an error code. */
  readonly status: string;
  /** A server's hint of when to come back, in milliseconds (`Retry-After`). */
  readonly retryAfterMs?: number | undefined;
}

/** Judges results and thrown errors of a service. */
export interface Classifier<Res = unknown> {
  /** Judges a value the service returned (an HTTP 503 response is a value, but a failure). */
  classifyResult(result: Res): Classification;
  /** Judges something the service threw or rejected with. */
  classifyError(error: unknown): Classification;
  /**
   * `false` when every returned value is a success (thrown errors alone can fail), so layers
   * can skip judging results on the success path. Absent means results are judged.
   */
  readonly judgesResults?: boolean;
}

/** The classification shared by every plain success, so the success path allocates nothing. */
export const SUCCESS: Classification = Object.freeze({ kind: 'success', retryable: false, status: 'ok' });
const RETRYABLE_ERROR: Classification = Object.freeze({ kind: 'failure', retryable: true, status: 'error' });
const FAILURE_ERROR: Classification = Object.freeze({ kind: 'failure', retryable: false, status: 'error' });
const TIMEOUT: Classification = Object.freeze({ kind: 'failure', retryable: true, status: 'timeout' });

/**
 * Error codes of failures where the request cannot have been processed, or the connection broke:
 * Node's socket errors and undici's. Retrying them is what Istio's `connect-failure`, `reset`
 * and `refused-stream` allow.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The error's code, looking through `cause` (fetch wraps socket errors in a `TypeError`). */
export function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && !code.startsWith('ERR_MESH_')) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True for failures of the network rather than of the service (see {@link NETWORK_ERROR_CODES}). */
export function isNetworkError(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && NETWORK_ERROR_CODES.has(code);
}

/**
 * The default classifier: every returned value is a success; a thrown network error or a
 * timed-out attempt is a retryable failure; any other thrown error is a failure that is not
 * retried unless the retry policy says so (`retryOn: ['error']`).
 */
export const defaultClassifier: Classifier<unknown> = {
  judgesResults: false,
  classifyResult: () => SUCCESS,
  classifyError(error) {
    if (error instanceof TimeoutError) return TIMEOUT;
    if (error instanceof SidecarlessError) return error.classification ?? FAILURE_ERROR;
    return isNetworkError(error) ? RETRYABLE_ERROR : FAILURE_ERROR;
  },
};

/** Builds a classification (for custom classifiers). Frozen: classifications are shared. */
export function classification(kind: 'success' | 'failure', status: string, retryable = false, retryAfterMs?: number): Classification {
  return Object.freeze({ kind, retryable: kind === 'failure' && retryable, status, retryAfterMs });
}
