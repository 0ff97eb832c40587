/**
 * # sidecarless/control
 *
 * Config streamed from a control endpoint: "change retries to 3 for the users service" takes
 * effect in every running process within a second, without a redeploy, and a broken config
 * never takes a process down or loses a call.
 *
 * - **Schema** ({@link meshConfigSchema}): per named service and route, with Istio, Gateway API
 *   and Linkerd names; {@link validateMeshConfig} reports every problem with its path.
 * - **Store** ({@link createMeshStore}): the config store with the validator, the last good
 *   snapshot persisted to disk, a readiness latch, and {@link configured} live options per layer.
 * - **Sources**: {@link staticSource}, {@link fileSource}, {@link httpSource} (the control
 *   server's stream, with heartbeats, resume, backoff and ACK/NACK), {@link etcdSource}.
 * - **Server** ({@link ControlServer}): the reference control server behind `sidecarless control`.
 *
 * ```ts
 * const store = await createMeshStore({
 *   persistPath: '/var/lib/app/mesh.json',
 *   sources: [httpSource({ url: 'http://control:7070', token: process.env.MESH_TOKEN! })],
 * });
 * const users = configured(store, 'users');
 * const getUser = new ServiceBuilder({ name: 'users' }).timeout(users.timeout).retry(users.retry).service(fetchUser);
 * ```
 *
 * @module
 */

export {
  DEFAULT_MAX_BYTES,
  type DocumentLimits,
  meshValidator,
  parseMeshText,
  scanRaw,
  type Verdict,
  validateMeshConfig,
} from './document.js';
export { type EtcdSourceOptions, etcdSource } from './etcd-source.js';
export { type FileSourceOptions, fileSource } from './file-source.js';
export { type HttpSourceEvent, type HttpSourceOptions, httpSource } from './http-source.js';
export { ACK_PATH, type AckReport, CLIENTS_PATH, LineSplitter, STREAM_PATH, type StreamMessage } from './protocol.js';
export {
  backendRefSchema,
  concurrencyLimitSchema,
  endpointSchema,
  failureAccrualSchema,
  faultSchema,
  loadBalancerSchema,
  type MeshConfig,
  meshConfigJsonSchema,
  meshConfigSchema,
  NAME,
  type RouteConfig,
  rateLimitSchema,
  retriesSchema,
  retryBudgetSchema,
  routeSchema,
  type ServiceConfig,
  serviceSchema,
} from './schema.js';
export {
  type ConfiguredOptions,
  type ConfiguredService,
  concurrencyLimitOf,
  configured,
  endpointsOf,
  failureAccrualOf,
  faultOf,
  layerProblems,
  loadBalancerOf,
  policiesOf,
  rateLimitOf,
  retryOf,
  splitOf,
  timeoutOf,
} from './selectors.js';
export { type ClientState, ControlServer, type ControlServerOptions } from './server.js';
export { type ConfigSink, type ConfigSource, contentVersion, type SourceUpdate, type SourceVerdict, staticSource } from './source.js';
export { createMeshStore, MeshStore, type MeshStoreOptions, writeAtomic } from './store.js';
