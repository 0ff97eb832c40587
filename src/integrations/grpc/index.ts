/**
 * # sidecarless/grpc
 *
 * gRPC clients (`@grpc/grpc-js`, an optional peer loaded only by this module) through a
 * sidecarless stack. {@link meshGrpcClient} takes a generated client constructor and the
 * service's endpoints (or a discovery), opens one channel per endpoint, and offers
 * promise-returning `unary(method, request, options)` and `serverStream(method, request,
 * options)` calls; {@link meshGrpc} does the same over one generated client you already have:
 *
 * - each attempt goes to the less loaded of two random endpoints (P2C over peak-EWMA RTT);
 * - outcomes are classified by status ({@link grpcClassifier}): UNAVAILABLE and
 *   RESOURCE_EXHAUSTED retryable (with `grpc-retry-pushback-ms` honoured), DEADLINE_EXCEEDED a
 *   timeout; a status is labelled (metrics, `retryOn`) by its name in lowercase
 *   ({@link GRPC_STATUS_LABELS}: `"unavailable"`), while {@link GRPC_STATUS_NAMES} lists the names
 *   as the protocol spells them (`"UNAVAILABLE"`, the same list the package root exports, which
 *   fault injection's `grpcStatus` takes);
 * - the remaining deadline of the call context is the gRPC call's deadline, so the server sees
 *   it as `grpc-timeout`; cancelling through the signal calls `call.cancel()`;
 * - the caller's metadata goes with every attempt;
 * - server-streaming calls are retried only until the first message arrives;
 * - grpc-js's own retries are disabled on the channels (`grpc.enable_retries: 0`) while ours are
 *   on, so nothing is retried twice; with `retry: false` grpc-js's service-config retries apply.
 *
 * @module
 */

export { GRPC_STATUS_NAMES, type GrpcStatusName } from '../../core/status.js';
export { GRPC_STATUS_LABELS, grpcClassifier } from './classifier.js';
export {
  type GrpcCallOptions,
  type GrpcClientConstructor,
  type MeshGrpcClient,
  type MeshGrpcClientOptions,
  meshGrpc,
  meshGrpcClient,
  NO_GRPC_RETRIES,
} from './client.js';
