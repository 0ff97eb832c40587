/**
 * The typed error family. Every refusal names the layer that refused and why, with the original
 * failure as `cause` (Tower's errors, with cockatiel's typed classes). Messages are short and
 * lowercase, as Tower's are; the fields carry the details.
 *
 * @module
 */

import type { Classification } from './classify.js';

/** Base class of every error sidecarless raises itself. */
export class SidecarlessError extends Error {
  /** Stable machine-readable code, e.g. `ETIMEDOUT_MESH`. */
  readonly code: string;
  /** The layer that raised it: `timeout`, `retry`, `circuit-breaker`, ... */
  readonly layer: string;
  /**
   * How classifiers judge this error when they know nothing more specific; absent means a
   * failure that is not retried (a timeout is judged a retryable one).
   */
  readonly classification?: Classification;

  constructor(message: string, code: string, layer: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.layer = layer;
  }
}

/** The call's deadline passed before it settled. */
export class TimeoutError extends SidecarlessError {
  /** The timeout that fired, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, options?: { cause?: unknown; layer?: string }) {
    super(`request timed out after ${timeoutMs}ms`, 'ERR_MESH_TIMEOUT', options?.layer ?? 'timeout', options);
    this.timeoutMs = timeoutMs;
  }
}

/** The call was cancelled through the caller's signal. */
export class CancelledError extends SidecarlessError {
  constructor(options?: { cause?: unknown; layer?: string }) {
    super('request cancelled', 'ERR_MESH_CANCELLED', options?.layer ?? 'context', options);
  }
}

/** A retry or hedge was refused because the retry budget is spent. */
export class BudgetExhaustedError extends SidecarlessError {
  constructor(options?: { cause?: unknown; layer?: string }) {
    super('retry budget exhausted', 'ERR_MESH_BUDGET', options?.layer ?? 'retry', options);
  }
}

/** A readiness gate refused (or gave up waiting for) the call. */
export class NotReadyError extends SidecarlessError {
  /** Names of the latches still held. */
  readonly pending: readonly string[];
  constructor(pending: readonly string[], options?: { cause?: unknown; layer?: string }) {
    super(
      `service not ready: waiting for ${pending.join(', ') || 'latches'}`,
      'ERR_MESH_NOT_READY',
      options?.layer ?? 'readiness',
      options,
    );
    this.pending = pending;
  }
}

/** The circuit is open; {@link CircuitOpenError.retryAt} says when it will probe again. */
export class CircuitOpenError extends SidecarlessError {
  /** Clock time (ms) at which the breaker will admit a probe. */
  readonly retryAt: number;
  /** Milliseconds from the refusal until the probe. */
  readonly retryAfterMs: number;
  constructor(retryAt: number, retryAfterMs: number, options?: { cause?: unknown; layer?: string }) {
    super(
      Number.isFinite(retryAfterMs) ? `circuit open, next probe in ${Math.ceil(retryAfterMs)}ms` : 'circuit open, isolated until reset',
      'ERR_MESH_CIRCUIT_OPEN',
      options?.layer ?? 'circuit-breaker',
      options,
    );
    this.retryAt = retryAt;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The service is at capacity and shed the call at once. */
export class OverloadedError extends SidecarlessError {
  /** A hint for the caller, in milliseconds, when one is known. */
  readonly retryAfterMs: number | undefined;
  constructor(reason: string, options?: { cause?: unknown; layer?: string; retryAfterMs?: number }) {
    super(`service overloaded: ${reason}`, 'ERR_MESH_OVERLOADED', options?.layer ?? 'load-shed', options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** A rate limit refused the call. */
export class RateLimitedError extends SidecarlessError {
  /** Milliseconds until a token is available. */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number, options?: { cause?: unknown; layer?: string }) {
    super(`rate limited, retry after ${Math.ceil(retryAfterMs)}ms`, 'ERR_MESH_RATE_LIMITED', options?.layer ?? 'rate-limit', options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Why a balancer had nothing to send a call to. */
export type NoEndpointsReason = 'none-discovered' | 'factory-failed' | 'all-ejected' | 'discovery-failing' | 'closed';

/** A balancer had no endpoint to pick; {@link NoEndpointsError.reason} says why. */
export class NoEndpointsError extends SidecarlessError {
  readonly reason: NoEndpointsReason;
  constructor(reason: NoEndpointsReason, detail?: string, options?: { cause?: unknown; layer?: string }) {
    super(
      `no endpoints: ${reason.replaceAll('-', ' ')}${detail ? ` (${detail})` : ''}`,
      'ERR_MESH_NO_ENDPOINTS',
      options?.layer ?? 'balance',
      options,
    );
    this.reason = reason;
  }
}

/** The service was closed and refuses new calls. */
export class ServiceClosedError extends SidecarlessError {
  constructor(options?: { layer?: string }) {
    super('service closed', 'ERR_MESH_CLOSED', options?.layer ?? 'service');
  }
}

/** One problem with an option or a config document. */
export interface OptionProblem {
  /** Dotted path of the field, e.g. `retry.backoff.base`. */
  readonly field: string;
  /** What is allowed, e.g. `must be an integer from 1 to 100 (got 0)`. */
  readonly message: string;
}

/** Invalid builder options or config: thrown at build time, naming each field and what is allowed. */
export class InvalidOptionError extends SidecarlessError {
  readonly problems: readonly OptionProblem[];
  constructor(fieldOrProblems: string | readonly OptionProblem[], message?: string) {
    const problems = typeof fieldOrProblems === 'string' ? [{ field: fieldOrProblems, message: message ?? 'is invalid' }] : fieldOrProblems;
    super(problems.map((p) => `${p.field}: ${p.message}`).join('; '), 'ERR_MESH_INVALID_OPTION', 'options');
    this.problems = problems;
  }
}

/**
 * Whether a mesh layer refused the call before it was sent (shed, rate-limited, an open circuit,
 * not ready, closed): such an outcome says nothing about the backend, so a circuit breaker
 * above those layers does not count it as the backend failing.
 */
export function isRefusal(error: unknown): boolean {
  return (
    error instanceof OverloadedError ||
    error instanceof RateLimitedError ||
    error instanceof CircuitOpenError ||
    error instanceof NotReadyError ||
    error instanceof ServiceClosedError
  );
}
