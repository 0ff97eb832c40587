/**
 * # sidecarless/express
 *
 * Express 5 middleware for the inbound side: `app.use(meshMiddleware({ concurrency: 200 }))`
 * puts every request through one stack — readiness gate, load shedding over a concurrency (or
 * adaptive) limit, the caller's deadline — and records golden metrics per route pattern
 * (`req.baseUrl + req.route.path`, e.g. `/users/:id`, never the raw path; `refused` for
 * requests refused before Express routed them, `unmatched` for 404s). Refusals are
 * answered here: 503 with `Retry-After` when shed or not ready, 504 when the deadline passes
 * before the handler answered. The request's {@link CallContext} is `res.locals.sidecarless`:
 * pass `ctx.signal` on to downstream calls so they stop when the request's deadline passes.
 *
 * Admin routes: pass `admin: { prefix: '/_mesh', handler: createAdminHandler() }` (from
 * `sidecarless/admin`) and they are served ahead of the gate, so `/ready` and `/metrics` answer
 * while the app is not ready or overloaded. Express is an optional peer; only its types are
 * imported.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { InvalidOptionError } from '../../core/errors.js';
import { CallContext, Inbound, type InboundOptions, type Refusal, underPrefix } from '../shared/inbound.js';

/** A node-style handler mounted under a prefix (the admin endpoint's `createAdminHandler()`). */
export interface MountedAdmin {
  /** Path prefix, e.g. `/_mesh`. */
  prefix: string;
  handler: (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;
}

/** Options of {@link meshMiddleware}. */
export interface MeshMiddlewareOptions extends InboundOptions {
  /** Admin routes served ahead of the gate. */
  admin?: MountedAdmin;
}

/** The middleware, with its stack's handles. */
export type MeshMiddleware = RequestHandler & {
  readonly inbound: Inbound;
  /** Leaves the metrics registry. */
  close(): Promise<void>;
};

/** Sends a refusal if the response has not started. */
function refuse(res: Response, refusal: Refusal): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  if (refusal.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(refusal.retryAfterSeconds));
  res.status(refusal.status).json({ error: refusal.message });
}

/** Express 5 middleware; see the module doc. */
export function meshMiddleware(options: MeshMiddlewareOptions = {}): MeshMiddleware {
  const { admin, ...inboundOptions } = options;
  if (admin !== undefined && (typeof admin.prefix !== 'string' || !admin.prefix.startsWith('/') || typeof admin.handler !== 'function')) {
    throw new InvalidOptionError('express.admin', 'must be { prefix: "/path", handler: (req, res, next) => void }');
  }
  const inbound = new Inbound(inboundOptions, 'express');
  // The prefix without a trailing slash: `/_mesh` and what is under `/_mesh/` are the admin's.
  const adminBase = admin?.prefix.replace(/\/+$/, '');
  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    const adminUrl = adminBase === undefined ? undefined : underPrefix(req.url, adminBase);
    if (admin !== undefined && adminUrl !== undefined) {
      // Served as if mounted at the prefix, ahead of readiness and shedding.
      const original = req.url;
      req.url = adminUrl;
      admin.handler(req, res, (error) => {
        req.url = original;
        next(error);
      });
      return;
    }
    const startedAt = inbound.now();
    const ctx = new CallContext(undefined, inbound.deadlineOf(req.headers));
    res.locals.sidecarless = ctx;
    const exchange = {
      run: () =>
        new Promise<number>((resolve) => {
          const done = (): void => resolve(res.statusCode);
          res.once('finish', done);
          res.once('close', done);
          next();
        }),
    };
    inbound.handle(exchange, ctx).then(
      (refusal) => {
        if (refusal !== undefined) refuse(res, refusal);
        // Express routes only after admission: a request refused before it has no pattern yet.
        const route = req.route === undefined ? (refusal !== undefined ? 'refused' : undefined) : req.baseUrl + String(req.route.path);
        inbound.record(route, res.statusCode, startedAt);
      },
      (error: unknown) => next(error),
    );
  };
  return Object.assign(middleware, { inbound, close: () => inbound.close() });
}

export { Inbound, type InboundOptions } from '../shared/inbound.js';
