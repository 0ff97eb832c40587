/**
 * sidecarless — an embedded, in-process service mesh for Node.js.
 *
 * @packageDocumentation
 */
export {
  type BuilderOptions,
  type CallOptions,
  FunctionService,
  type MeshFunction,
  ServiceBuilder,
  type ServiceOptions,
} from './builder/index.js';
export {
  type Classification,
  type Classifier,
  classification,
  defaultClassifier,
  errorCode,
  isNetworkError,
  NETWORK_ERROR_CODES,
  SUCCESS,
} from './core/classify.js';
export { type Clock, systemClock, type TimerHandle } from './core/clock.js';
export {
  ConfigStore,
  type ConfigStoreOptions,
  type Rejection,
  type Snapshot,
  type SwapResult,
  type Validator,
} from './core/config-store.js';
export { CallContext, isNeverAborted } from './core/context.js';
export { DeadlineEntry, DeadlineList, DeadlineQueue, deadlineQueueFor } from './core/deadlines.js';
export { type Duration, formatDuration, parseDuration, tryParseDuration } from './core/duration.js';
export * from './core/errors.js';
export { EventHub, eventChannel, type MeshEventName, type MeshEvents, type RetrySkipReason, type Subscription } from './core/events.js';
export { type CallHooks, callThroughHooks, FusedService, type HookedService, isHooked } from './core/hooks.js';
export { type LiveOptions, live, type OptionsOrLive, type Param, prepareParam, StaticParam, toParam } from './core/params.js';
export { defaultRegistry, type RegisteredStack, StackRegistry } from './core/registry.js';
export {
  closeService,
  describeChain,
  type Layer,
  type LayerDescription,
  type Service,
  type Settler,
  type SimpleLayer,
  type StackEnv,
} from './core/service.js';
export { GRPC_STATUS_NAMES, type GrpcStatusName } from './core/status.js';
export { duration, int, num, parseOptions, problemsOf } from './core/validate.js';
export * from './discovery/index.js';
export * from './layers/adaptive-concurrency/index.js';
export * from './layers/balance/index.js';
export * from './layers/circuit-breaker/index.js';
export * from './layers/concurrency-limit/index.js';
export * from './layers/fallback/index.js';
export * from './layers/fault-injection/index.js';
export * from './layers/hedge/index.js';
export * from './layers/interop/index.js';
export * from './layers/load-shed/index.js';
export * from './layers/metrics/index.js';
export * from './layers/rate-limit/index.js';
export * from './layers/readiness/index.js';
export * from './layers/retry/index.js';
export * from './layers/split/index.js';
export * from './layers/timeout/index.js';
export * from './layers/tracing/index.js';
