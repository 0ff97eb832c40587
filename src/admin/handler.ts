import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PromRegistryLike } from '../layers/metrics/index.js';
import { dashboardHtml } from './dashboard.js';
import { type AdminSources, configReport, endpointsReport, readyReport, stackReport, statsDocument, toJson } from './state.js';

/** A `(req, res, next?)` handler: plain node:http, Express and Connect style. */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/** How `/metrics` is produced. */
export type MetricsExposition = PromRegistryLike | 'auto' | 'text';

function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...headers,
    'content-type': contentType,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const json = (res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void =>
  send(res, status, 'application/json; charset=utf-8', `${toJson(value)}\n`, headers);

/** Every route answers these; a 405 says so in `Allow` (RFC 9110 requires it). */
const ALLOWED_METHODS = 'GET, HEAD';

/** The `/api/stats` windows that can be asked for, in ms: as the `windowMs` option and `sidecarless stat --window`. */
export const WINDOW_RANGE = { min: 1_000, max: 3_600_000 } as const;

/** The `window` query value in ms, `fallback` when there is none, `undefined` when it is not a window. */
function windowOf(url: URL, fallback: number): number | undefined {
  const given = url.searchParams.get('window');
  if (given === null) return fallback;
  // Plain decimal digits only: Number() would also take "", " 1e4 " or "0x10".
  const ms = /^\d+(\.\d+)?$/.test(given) ? Number(given) : Number.NaN;
  return ms >= WINDOW_RANGE.min && ms <= WINDOW_RANGE.max ? ms : undefined;
}

/**
 * A failure answers a bare 500: the handler may be mounted in an application that faces the
 * world, and an error's message can hold paths, hosts or config. Once the answer has begun there
 * is no status to give, so the connection is cut and the client sees the answer is incomplete.
 */
function fail(res: ServerResponse): void {
  try {
    if (!res.headersSent) {
      json(res, 500, { error: 'internal error' });
      return;
    }
  } catch {
    // Not even a 500 could be written (the response object is broken): cut the connection.
  }
  res.destroy();
}

const BASE = 'http://admin.invalid';

/**
 * The admin routes as one handler. `prefix` is where it is mounted (`''` at the root of its own
 * server, `/_mesh` inside an application); requests outside it, for unknown paths or methods,
 * or with a target that does not parse, go to `next` when there is one and otherwise get a 404,
 * 405 or 400.
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
      const windowMs = windowOf(url, sources.windowMs);
      if (windowMs === undefined) {
        // Refused rather than replaced by the default: a caller asking for an hour must not be shown ten seconds.
        const got = JSON.stringify((url.searchParams.get('window') ?? '').slice(0, 40));
        json(res, 400, { error: `window must be milliseconds from ${WINDOW_RANGE.min} to ${WINDOW_RANGE.max} (got ${got})` });
        return;
      }
      json(res, 200, statsDocument(sources, windowMs));
    },
  };

  /** Answers `req`, or returns `true` when it is not for us and `next` should have it. */
  const dispatch = (req: IncomingMessage, res: ServerResponse, hasNext: boolean): boolean => {
    const target = req.url ?? '/';
    // A target the URL parser refuses ("GET //[") would throw out of the request listener and
    // take the process down. It is no admin path: an application behind us decides what it is.
    if (!URL.canParse(target, BASE)) {
      if (hasNext) return true;
      json(res, 400, { error: 'request target must be a path such as /metrics' });
      return false;
    }
    const url = new URL(target, BASE);
    let path = url.pathname;
    if (prefix !== '') {
      if (path !== prefix && !path.startsWith(`${prefix}/`)) {
        if (hasNext) return true;
        json(res, 404, { error: 'not found', path });
        return false;
      }
      path = path.slice(prefix.length) || '/';
    }
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const route = routes[path];
    if (route === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
      if (hasNext) return true;
      if (route === undefined) json(res, 404, { error: 'not found', path });
      else json(res, 405, { error: 'method not allowed', path, allow: ALLOWED_METHODS }, { allow: ALLOWED_METHODS });
      return false;
    }
    Promise.resolve()
      .then(() => route(req, res, url))
      .catch(() => fail(res));
    return false;
  };

  return (req, res, next) => {
    let passOn: boolean;
    try {
      passOn = dispatch(req, res, next !== undefined);
    } catch {
      // Whatever throws while a request is dispatched (a request object of an application's
      // making, a bug of ours) must not escape into node:http, where it kills the process.
      fail(res);
      return;
    }
    // The application's own code runs outside the try: its errors stay its own.
    if (passOn) next?.();
  };
}
