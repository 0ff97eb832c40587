import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PromRegistryLike } from '../layers/metrics/index.js';
import { dashboardHtml } from './dashboard.js';
import { type AdminSources, configReport, endpointsReport, readyReport, stackReport, statsDocument, toJson } from './state.js';

/** A `(req, res, next?)` handler: plain node:http, Express and Connect style. */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/** How `/metrics` is produced. */
export type MetricsExposition = PromRegistryLike | 'auto' | 'text';

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const json = (res: ServerResponse, status: number, value: unknown): void =>
  send(res, status, 'application/json; charset=utf-8', `${toJson(value)}\n`);

/**
 * The admin routes as one handler. `prefix` is where it is mounted (`''` at the root of its own
 * server, `/_mesh` inside an application); requests outside it, or for unknown paths, go to
 * `next` when there is one and get a 404 otherwise.
 */
export function createHandler(sources: AdminSources, exposition: MetricsExposition, prefix: string): AdminHandler {
  let prom: Promise<PromRegistryLike | undefined> | undefined;
  if (typeof exposition === 'object') {
    sources.metrics.registerWith(exposition);
    prom = Promise.resolve(exposition);
  }
  const metricsText = async (): Promise<{ type: string; body: string }> => {
    if (exposition === 'auto') prom ??= sources.metrics.promRegistry();
    const registry = prom === undefined ? undefined : await prom;
    if (registry === undefined) return { type: sources.metrics.contentType, body: sources.metrics.text() };
    return { type: registry.contentType, body: await registry.metrics() };
  };

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>> = {
    '/': (_req, res) => send(res, 200, 'text/html; charset=utf-8', dashboardHtml(`${prefix}/`)),
    '/metrics': async (_req, res) => {
      const { type, body } = await metricsText();
      send(res, 200, type, body);
    },
    '/live': (_req, res) => json(res, 200, { live: true }),
    '/ready': (_req, res) => {
      const report = readyReport(sources);
      json(res, report.ready ? 200 : 503, report);
    },
    '/config': (_req, res) => json(res, 200, configReport(sources)),
    '/endpoints': (_req, res) => json(res, 200, endpointsReport(stackReport(sources))),
    '/stack': (_req, res) => json(res, 200, stackReport(sources)),
    '/api/stats': (_req, res, url) => {
      const window = Number(url.searchParams.get('window') ?? Number.NaN);
      const windowMs = Number.isFinite(window) && window > 0 && window <= 3_600_000 ? window : sources.windowMs;
      json(res, 200, statsDocument(sources, windowMs));
    },
  };

  return (req, res, next) => {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    let path = url.pathname;
    if (prefix !== '') {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) {
        if (next) next();
        else json(res, 404, { error: 'not found', path });
        return;
      }
      path = path.slice(prefix.length) || '/';
    }
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const route = routes[path];
    if (route === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      if (next) next();
      else json(res, route === undefined ? 404 : 405, { error: route === undefined ? 'not found' : 'method not allowed', path });
      return;
    }
    Promise.resolve()
      .then(() => route(req, res, url))
      .catch((error: unknown) => {
        if (!res.headersSent) json(res, 500, { error: String(error) });
        else res.destroy();
      });
  };
}
