import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { meshPlugin } from '../../../src/integrations/fastify/index.js';
import { MetricsRegistry } from '../../../src/layers/metrics/index.js';
import { Readiness } from '../../../src/layers/readiness/index.js';

/**
 * A Fastify app with the mesh plugin and one `/slow` route whose first request is held until
 * `release()`: with a limit of one, that request holds the only permit.
 */
async function appHoldingTheOnlyPermit(options: Parameters<typeof meshPlugin>[1]) {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const admitted = new Promise<void>((r) => (started = r));
  const app = Fastify();
  await app.register(meshPlugin, options);
  app.get('/slow', async () => {
    started();
    await held;
    return 'done';
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const first = fetch(`${url}/slow`);
  await admitted; // the first request holds the only permit
  return { app, url, first, release };
}

/**
 * A Fastify app with the mesh plugin gated by a readiness latch not yet released, admin routes
 * under `prefix` answered by a handler echoing the path, metrics in a registry of its own.
 */
async function gatedApp(prefix: string, name?: string) {
  const metrics = new MetricsRegistry();
  const readiness = new Readiness();
  const latch = readiness.latch('warmup');
  const app = Fastify();
  await app.register(meshPlugin, {
    metrics,
    readiness,
    ...(name === undefined ? {} : { name }),
    admin: { prefix, handler: (req, res) => res.end(`admin ${req.url}`) },
  });
  return { app, metrics, latch };
}

test('fastify: a shed request gets 503 with Retry-After', async () => {
  const { app, url, first, release } = await appHoldingTheOnlyPermit({ concurrency: 1, metrics: false });
  const shed = await fetch(`${url}/slow`);
  assert.equal(shed.status, 503);
  assert.equal(shed.headers.get('retry-after'), '1');
  release();
  assert.equal(await (await first).text(), 'done');
  await app.close();
});

test('fastify: metrics per route pattern, readiness 503, admin routes exempt', async () => {
  const { app, metrics, latch } = await gatedApp('/_mesh', 'orders');
  app.get('/orders/:id', async (request, reply) => reply.code((request.params as { id: string }).id === 'x' ? 503 : 200).send('ok'));
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const refused = await fetch(`${url}/orders/1`);
  assert.equal(refused.status, 503);
  assert.deepEqual(await refused.json(), { error: 'not ready' });
  assert.equal(await (await fetch(`${url}/_mesh/metrics`)).text(), 'admin /metrics');
  latch.release();
  for (const id of ['1', '2', 'x']) await (await fetch(`${url}/orders/${id}`)).text();
  const routes = metrics.snapshot()[0]?.routes ?? [];
  const orders = routes.find((r) => r.route === '/orders/:id');
  assert.equal(orders?.requests, 4, 'three served and one refused while not ready');
  assert.ok(Math.abs((orders?.successRate ?? 0) - 0.5) < 1e-9);
  await app.close();
  assert.equal(metrics.snapshot().length, 0);
});

test('fastify: admin prefix: only the prefix itself and paths under it are exempt, not paths that merely start with it', async () => {
  const { app, metrics, latch } = await gatedApp('/admin');
  app.get('/administrators', async () => 'people');
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const refused = await fetch(`${url}/administrators`);
  assert.equal(refused.status, 503, '/administrators goes through the gate');
  assert.deepEqual(await refused.json(), { error: 'not ready' });
  assert.equal(await (await fetch(`${url}/admin`)).text(), 'admin /');
  assert.equal(await (await fetch(`${url}/admin/ready`)).text(), 'admin /ready');
  assert.equal(await (await fetch(`${url}/admin?format=json`)).text(), 'admin /?format=json');
  assert.equal(await (await fetch(`${url}/admin/metrics?format=json`)).text(), 'admin /metrics?format=json');
  latch.release();
  const served = await fetch(`${url}/administrators`);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), 'people');
  const routes = metrics.snapshot()[0]?.routes ?? [];
  assert.deepEqual(
    routes.map((r) => [r.route, r.requests]),
    [['/administrators', 2]],
    'one refused and one served; admin requests are not counted',
  );
  await app.close();
});

test('fastify: the incoming grpc-timeout style deadline gives 504', async () => {
  const app = Fastify();
  await app.register(meshPlugin, { metrics: false });
  let sawAbort: Promise<boolean> | undefined;
  app.get('/hang', async (request) => {
    const signal = request.mesh?.signal;
    sawAbort = new Promise((resolve) => signal?.addEventListener('abort', () => resolve(true)));
    await new Promise((resolve) => setTimeout(resolve, 300));
    return 'late';
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const res = await fetch(`${url}/hang`, { headers: { 'grpc-timeout': '60m' } });
  assert.equal(res.status, 504);
  assert.equal(await sawAbort, true);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await app.close();
});

test('fastify: with an adaptive limit, requests beyond it are shed too', async () => {
  const { app, url, first, release } = await appHoldingTheOnlyPermit({
    adaptive: { initialLimit: 1, minLimit: 1, maxLimit: 1 },
    metrics: false,
  });
  assert.equal((await fetch(`${url}/slow`)).status, 503);
  release();
  assert.equal((await first).status, 200);
  assert.equal(app.mesh.ready, true);
  await app.close();
});
