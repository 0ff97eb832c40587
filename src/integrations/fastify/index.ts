/**
 * # sidecarless/fastify
 *
 * A Fastify 5 plugin (wrapped with `fastify-plugin`, so it applies to the whole instance) for
 * the inbound side: `await app.register(meshPlugin, { concurrency: 200 })`. Every request goes
 * through one stack from an `onRequest` hook — readiness gate, load shedding over a
 * concurrency (or adaptive) limit, the caller's deadline — and golden metrics are recorded per
 * route pattern (`request.routeOptions.url`, e.g. `/users/:id`). Refusals: 503 with
 * `Retry-After` when shed or not ready, 504 when the deadline passes before the handler
 * answered. The request's {@link CallContext} is `request.mesh`.
 *
 * Admin routes: `admin: { prefix: '/_mesh', handler: createAdminHandler() }` serves them under
 * the prefix, exempt from the gate. `fastify` and `fastify-plugin` are optional peers, loaded
 * only by this module.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { InvalidOptionError } from '../../core/errors.js';
import { CallContext, Inbound, type InboundOptions, underPrefix } from '../shared/inbound.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's sidecarless call context: its deadline and signal. */
    mesh: CallContext | null;
  }
  interface FastifyInstance {
    /** The inbound stack of the sidecarless plugin. */
    mesh: Inbound;
  }
}

/** Options of {@link meshPlugin}. */
export interface MeshPluginOptions extends InboundOptions {
  /** Admin routes (`createAdminHandler()` of `sidecarless/admin`) served under `prefix`, exempt from the gate. */
  admin?: { prefix: string; handler: (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void };
}

const plugin: FastifyPluginCallback<MeshPluginOptions> = (fastify: FastifyInstance, options, pluginDone) => {
  const { admin, ...inboundOptions } = options;
  if (admin !== undefined && (typeof admin.prefix !== 'string' || !admin.prefix.startsWith('/') || typeof admin.handler !== 'function')) {
    pluginDone(new InvalidOptionError('fastify.admin', 'must be { prefix: "/path", handler: (req, res, next) => void }'));
    return;
  }
  let inbound: Inbound;
  try {
    inbound = new Inbound(inboundOptions, 'fastify');
  } catch (error) {
    pluginDone(error as Error);
    return;
  }
  fastify.decorate('mesh', inbound);
  fastify.decorateRequest('mesh', null);
  // The prefix without a trailing slash: `/_mesh` and what is under `/_mesh/` are the admin's.
  const adminBase = admin?.prefix.replace(/\/+$/, '');
  if (admin !== undefined && adminBase !== undefined) {
    const serve = (request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      request.raw.url = underPrefix(request.raw.url ?? '/', adminBase) ?? '/';
      admin.handler(request.raw, reply.raw, () => {
        if (!reply.raw.headersSent) reply.raw.writeHead(404).end();
      });
    };
    fastify.all(adminBase === '' ? '/' : adminBase, serve);
    fastify.all(`${adminBase}/*`, serve);
  }
  fastify.addHook('onRequest', (request, reply, done) => {
    if (adminBase !== undefined && underPrefix(request.url, adminBase) !== undefined) return done();
    const startedAt = inbound.now();
    const ctx = new CallContext(undefined, inbound.deadlineOf(request.headers));
    request.mesh = ctx;
    let started = false;
    const exchange = {
      run: () =>
        new Promise<number>((resolve) => {
          started = true;
          const finished = (): void => resolve(reply.raw.statusCode);
          reply.raw.once('finish', finished);
          reply.raw.once('close', finished);
          done();
        }),
    };
    inbound.handle(exchange, ctx).then(
      (refusal) => {
        if (refusal !== undefined && !reply.sent) {
          if (refusal.retryAfterSeconds !== undefined) reply.header('retry-after', String(refusal.retryAfterSeconds));
          reply.code(refusal.status).send({ error: refusal.message });
        }
        inbound.record(request.routeOptions.url, reply.statusCode, startedAt);
      },
      (error: unknown) => {
        if (!started) done(error as Error);
        else if (!reply.sent) reply.send(error);
      },
    );
  });
  fastify.addHook('onClose', async () => {
    await inbound.close();
  });
  pluginDone();
};

/** The Fastify plugin; see the module doc. */
export const meshPlugin = fp(plugin, { fastify: '5.x', name: 'sidecarless' });
export default meshPlugin;
export { Inbound, type InboundOptions } from '../shared/inbound.js';
