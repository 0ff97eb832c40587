/**
 * # sidecarless/admin
 *
 * The mesh's admin endpoint, as linkerd2-proxy's admin port: bound to loopback by default, it
 * answers
 *
 * - `/metrics` — Prometheus text of every metrics layer (through prom-client when it is
 *   installed or a registry is given, else our own exposition);
 * - `/live`, `/ready` — liveness, and readiness from the given {@link Readiness} gates (503 with
 *   the latches still held);
 * - `/config` — each given {@link ConfigStore}'s snapshot in force, its version, and the last
 *   rejected document with every problem;
 * - `/endpoints` — every layer that describes endpoints (balancers), as it describes them;
 * - `/stack` — every registered stack's layers with their live parameters and state;
 * - `/api/stats` — the golden metrics and the rest as one JSON document (what the dashboard and
 *   `sidecarless stat` read);
 * - `/` — a live dashboard.
 *
 * {@link createAdminServer} runs them on their own `node:http` server;
 * {@link createAdminHandler} gives a `(req, res, next?)` handler to mount them in an existing
 * node:http, Express or Fastify application under a prefix.
 *
 * Prior art: linkerd2-proxy's admin server; Envoy's admin interface; `linkerd viz dashboard`.
 *
 * @module
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ConfigStore } from '../core/config-store.js';
import { defaultRegistry, StackRegistry } from '../core/registry.js';
import { int, parseOptions } from '../core/validate.js';
import { defaultMetricsRegistry, MetricsRegistry, type PromRegistryLike } from '../layers/metrics/index.js';
import { Readiness } from '../layers/readiness/index.js';
import { type AdminHandler, createHandler, type MetricsExposition, WINDOW_RANGE } from './handler.js';
import type { AdminSources } from './state.js';

export { dashboardHtml } from './dashboard.js';
export type { AdminHandler, MetricsExposition } from './handler.js';
/** The `/api/stats` windows that can be asked for, in ms. */
export { WINDOW_RANGE } from './handler.js';
export { type StatsDocument, toJson } from './state.js';

/** What the admin routes report on. */
export interface AdminOptions {
  /** Metrics layers to report. Default: the default metrics registry. */
  metrics?: MetricsRegistry;
  /** Stacks for `/stack`, `/endpoints` and breakers. Default: the default stack registry. */
  stacks?: StackRegistry;
  /** Config stores for `/config`, by name (a single store is named `config`). */
  stores?: Record<string, ConfigStore<any>> | ConfigStore<any>;
  /** Readiness gates for `/ready`, by name (a single gate is named `ready`). */
  readiness?: Record<string, Readiness> | Readiness;
  /**
   * How `/metrics` is rendered: a prom-client `Registry` of yours (ours are added to it),
   * `'auto'` (default: prom-client if installed, loaded on the first scrape) or `'text'`.
   */
  prometheus?: MetricsExposition;
  /** Window of RPS, success rate and percentiles in `/api/stats`. Default `10000` ms. */
  windowMs?: number;
}

/** Options of {@link createAdminHandler}. */
export interface AdminHandlerOptions extends AdminOptions {
  /** Path the routes are mounted at, e.g. `/_mesh`. Default `''` (the root). */
  prefix?: string;
}

/** Options of {@link createAdminServer}. */
export interface AdminServerOptions extends AdminOptions {
  /** Port; `0` picks a free one. Default 9990. */
  port?: number;
  /** Address to bind. Default `127.0.0.1`: the admin port is not for the outside world. */
  host?: string;
}

/** A running admin server. */
export interface AdminServer {
  readonly server: Server;
  /** Base URL, e.g. `http://127.0.0.1:9990`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

const common = {
  metrics: z.instanceof(MetricsRegistry, { error: 'must be a MetricsRegistry' }).optional(),
  stacks: z.instanceof(StackRegistry, { error: 'must be a StackRegistry' }).optional(),
  stores: z
    .union([z.instanceof(ConfigStore), z.record(z.string(), z.instanceof(ConfigStore))], {
      error: 'must be a ConfigStore or an object of ConfigStores by name',
    })
    .optional(),
  readiness: z
    .union([z.instanceof(Readiness), z.record(z.string(), z.instanceof(Readiness))], {
      error: 'must be a Readiness or an object of Readiness gates by name',
    })
    .optional(),
  prometheus: z
    .union(
      [
        z.enum(['auto', 'text']),
        z.custom<PromRegistryLike>(
          (v) => typeof (v as PromRegistryLike)?.registerMetric === 'function' && typeof (v as PromRegistryLike).metrics === 'function',
        ),
      ],
      { error: 'must be "auto", "text" or a prom-client Registry' },
    )
    .default('auto'),
  windowMs: int(WINDOW_RANGE.min, WINDOW_RANGE.max).default(10_000),
};
const handlerSchema = z.strictObject({
  ...common,
  prefix: z
    .string()
    .regex(/^(\/[A-Za-z0-9._~-]+)*$/, { error: 'must be "" or a path such as "/_mesh" (no trailing slash)' })
    .default(''),
});
const serverSchema = z.strictObject({
  ...common,
  port: int(0, 65_535).default(9990),
  host: z.string().min(1, { error: 'must be a host name or address' }).default('127.0.0.1'),
});

function sourcesOf(o: z.output<typeof handlerSchema> | z.output<typeof serverSchema>): AdminSources {
  const stores = o.stores instanceof ConfigStore ? { config: o.stores } : (o.stores ?? {});
  const readiness = o.readiness instanceof Readiness ? { ready: o.readiness } : (o.readiness ?? {});
  return {
    stacks: o.stacks ?? defaultRegistry,
    metrics: o.metrics ?? defaultMetricsRegistry,
    stores: new Map(Object.entries(stores)),
    readiness: new Map(Object.entries(readiness)),
    windowMs: o.windowMs,
  };
}

/**
 * The admin routes as a `(req, res, next?)` handler, to mount in an existing application:
 * `app.use(createAdminHandler({ prefix: '/_mesh' }))` in Express, or in node:http
 * `(req, res) => handler(req, res, () => yourRoutes(req, res))`. In Fastify, call it with
 * `request.raw, reply.raw` after `reply.hijack()`.
 */
export function createAdminHandler(options: AdminHandlerOptions = {}): AdminHandler {
  const o = parseOptions(handlerSchema, options, 'admin');
  return createHandler(sourcesOf(o), o.prometheus, o.prefix);
}

/** Starts the admin server (see the module doc); resolves once it listens. */
export async function createAdminServer(options: AdminServerOptions = {}): Promise<AdminServer> {
  const o = parseOptions(serverSchema, options, 'admin');
  const handler = createHandler(sourcesOf(o), o.prometheus, '');
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    server,
    port,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
