import { type Classification, type Classifier, classification, defaultClassifier, SUCCESS } from '../../core/classify.js';
import { GRPC_DEADLINE_EXCEEDED, GRPC_STATUS_NAMES, RETRYABLE_GRPC_CODES } from '../../core/status.js';

/**
 * Status labels by code, as {@link grpcClassifier} gives them in `classification.status` (and so
 * in metrics and `retryOn` words): the protocol's names in lowercase (`"unavailable"`), except
 * DEADLINE_EXCEEDED, which is `"timeout"` as our own timeouts are. (`GRPC_STATUS_NAMES` has the
 * names as the protocol spells them; compare a status label with this list, not that one.)
 */
export const GRPC_STATUS_LABELS: readonly string[] = Object.freeze(
  GRPC_STATUS_NAMES.map((name, code) => (code === GRPC_DEADLINE_EXCEEDED ? 'timeout' : name.toLowerCase())),
);

interface GrpcErrorLike {
  code?: unknown;
  metadata?: { get(key: string): unknown[] };
}

/**
 * Classifies gRPC outcomes: a returned message is a success; UNAVAILABLE and RESOURCE_EXHAUSTED
 * are retryable failures (`grpc-retry-pushback-ms` in the trailers becomes `retryAfterMs`);
 * DEADLINE_EXCEEDED is a timeout (status `timeout`, as our own timeouts); other codes are
 * failures that are not retried unless `retryOn` names them (`"aborted"`, `"internal"`).
 * Errors without a gRPC code are judged by the default classifier.
 */
export const grpcClassifier: Classifier<unknown> = (() => {
  const byCode = GRPC_STATUS_LABELS.map((label, code) =>
    classification('failure', label, code === GRPC_DEADLINE_EXCEEDED || RETRYABLE_GRPC_CODES.has(code)),
  );
  return {
    classifyResult: () => SUCCESS,
    classifyError(error: unknown): Classification {
      const code = (error as GrpcErrorLike | null)?.code;
      if (typeof code !== 'number' || code <= 0 || code >= byCode.length) return defaultClassifier.classifyError(error);
      const verdict = byCode[code] as Classification;
      if (code !== 8 && code !== 14) return verdict;
      const pushback = (error as GrpcErrorLike).metadata?.get('grpc-retry-pushback-ms')?.[0];
      const ms = typeof pushback === 'string' && /^\d+$/.test(pushback) ? Number(pushback) : undefined;
      return ms === undefined ? verdict : classification('failure', verdict.status, true, ms);
    },
  };
})();
