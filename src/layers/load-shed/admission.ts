/**
 * Helpers shared by the admission-control layers (circuit breaker, concurrency limit, adaptive
 * concurrency, rate limit, load shed). Those that look at a call only before it starts and after
 * it settles implement {@link CallHooks} (core/hooks.ts), so the builder runs them around one
 * continuation.
 *
 * @module
 */

import type { Service } from '../../core/service.js';

/** Whether the inner service would admit a call now (absent `ready()` means yes). */
export function innerReady(inner: Service<unknown, unknown>): boolean {
  return inner.ready?.() ?? true;
}
