import { z } from 'zod';
import { type Classification, classification } from '../../core/classify.js';
import type { Duration } from '../../core/duration.js';
import { InvalidOptionError, SidecarlessError } from '../../core/errors.js';
import {
  GRPC_DEADLINE_EXCEEDED,
  GRPC_STATUS_NAMES,
  type GrpcStatusName,
  isRetryableHttpStatus,
  RETRYABLE_GRPC_CODES,
} from '../../core/status.js';
import { duration, int, num, parseOptions } from '../../core/validate.js';

/** A share of calls in percent, as Istio writes it: `10` or `{ value: 10 }`. */
export type FaultPercentage = number | { value: number };

/** Options of the fault injection layer: Istio's `fault`, in-process. */
export interface FaultInjectionOptions {
  /** Delays a share of calls before they start. */
  delay?: { percentage?: FaultPercentage; fixedDelay: Duration };
  /** Fails a share of calls without calling the service: give one of `error`, `httpStatus`, `grpcStatus`. */
  abort?: {
    percentage?: FaultPercentage;
    /** The error to reject with, or a function making a fresh one per call (a plain function, not a class). */
    error?: unknown;
    /** Rejects with a {@link FaultInjectedError} carrying this HTTP status. */
    httpStatus?: number;
    /** Rejects with a {@link FaultInjectedError} carrying this gRPC status: a code, or a name of {@link GRPC_STATUS_NAMES} (`"UNAVAILABLE"`). */
    grpcStatus?: number | GrpcStatusName;
  };
}

/** Resolved parameters. */
export interface FaultInjectionParams {
  readonly delayPercent: number;
  readonly delayMs: number;
  readonly abortPercent: number;
  /** Makes the error of an aborted call. */
  readonly abortError: () => unknown;
  /** What an abort answers, for `/stack` and events: `"503"`, `"UNAVAILABLE"`, `"error"`. */
  readonly abortStatus: string;
}

/** The error of a call aborted by fault injection with an HTTP or gRPC status. */
export class FaultInjectedError extends SidecarlessError {
  /** The injected HTTP status, when one was configured. */
  readonly httpStatus: number | undefined;
  /** The injected gRPC status code, when one was configured. */
  readonly grpcStatus: number | undefined;
  /** The status as a label: `"503"` or the gRPC name. */
  readonly status: string;
  /**
   * Always a failure (the call was aborted), retryable as the real status would be: an injected
   * 503 or UNAVAILABLE is retried like a real one, an injected DEADLINE_EXCEEDED is a timeout, a
   * 404 is not retried — so retries and breakers can be rehearsed with it.
   */
  override readonly classification: Classification;
  constructor(status: { httpStatus?: number; grpcStatus?: number }) {
    const label = status.httpStatus !== undefined ? String(status.httpStatus) : (GRPC_STATUS_NAMES[status.grpcStatus ?? 2] ?? 'UNKNOWN');
    super(`fault injected: ${label}`, 'ERR_MESH_FAULT', 'fault-injection');
    this.httpStatus = status.httpStatus;
    this.grpcStatus = status.grpcStatus;
    this.status = label;
    if (status.httpStatus !== undefined) {
      this.classification = classification('failure', label, isRetryableHttpStatus(status.httpStatus));
    } else {
      const code = status.grpcStatus ?? 2;
      this.classification =
        code === GRPC_DEADLINE_EXCEEDED
          ? classification('failure', 'timeout', true)
          : classification('failure', label.toLowerCase(), RETRYABLE_GRPC_CODES.has(code));
    }
  }
}

const percentage = z
  .union([num(0, 100), z.strictObject({ value: num(0, 100) })], { error: 'must be a percentage from 0 to 100, or { value }' })
  .transform((p) => (typeof p === 'number' ? p : p.value))
  .default(100);

const schema = z.strictObject({
  delay: z.strictObject({ percentage, fixedDelay: duration(0, 2_147_483_647) }).optional(),
  abort: z
    .strictObject({
      percentage,
      error: z.unknown().optional(),
      httpStatus: int(100, 599).optional(),
      grpcStatus: z
        .union([int(0, 16), z.enum(GRPC_STATUS_NAMES)], {
          error: 'must be a gRPC status code from 0 to 16 or a name such as "UNAVAILABLE"',
        })
        .optional(),
    })
    .optional(),
});

/** Checks fault injection options. */
export function resolveFaultInjectionOptions(options: FaultInjectionOptions | undefined, field = 'faultInjection'): FaultInjectionParams {
  const parsed = parseOptions(schema, options ?? {}, field);
  const abort = parsed.abort;
  let abortError: () => unknown = () => undefined;
  let abortStatus = 'none';
  if (abort !== undefined) {
    const given = [abort.error !== undefined, abort.httpStatus !== undefined, abort.grpcStatus !== undefined].filter(Boolean).length;
    if (given !== 1) throw new InvalidOptionError(`${field}.abort`, 'give exactly one of error, httpStatus or grpcStatus');
    if (abort.httpStatus !== undefined) {
      const httpStatus = abort.httpStatus;
      abortError = () => new FaultInjectedError({ httpStatus });
      abortStatus = String(httpStatus);
    } else if (abort.grpcStatus !== undefined) {
      const code = typeof abort.grpcStatus === 'number' ? abort.grpcStatus : GRPC_STATUS_NAMES.indexOf(abort.grpcStatus);
      abortError = () => new FaultInjectedError({ grpcStatus: code });
      abortStatus = GRPC_STATUS_NAMES[code] as string;
    } else {
      const error = abort.error;
      abortError = typeof error === 'function' ? (error as () => unknown) : () => error;
      abortStatus = 'error';
    }
  }
  return {
    delayPercent: parsed.delay?.percentage ?? 0,
    delayMs: parsed.delay?.fixedDelay ?? 0,
    abortPercent: abort?.percentage ?? 0,
    abortError,
    abortStatus,
  };
}
