import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import type { CallContext } from '../../../src/core/context.js';
import { meshMiddleware } from '../../../src/integrations/express/index.js';
import { MetricsRegistry } from '../../../src/layers/metrics/index.js';
import { Readiness } from '../../../src/layers/readiness/index.js';

async function listen(app: express.Express): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function routeCounts(metrics: MetricsRegistry): Record<string, number> {
  const stats = metrics.snapshot()[0];
  return Object.fromEntries((stats?.routes ?? []).map((r) => [r.route, r.requests]));
}

test('a request over the concurrency limit is shed with 503 and Retry-After', async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const admitted = new Promise<void>((r) => (started = r));
  const app = express();
  const mesh = meshMiddleware({ concurrency: 1, retryAfterSeconds: 2, metrics: false });
  app.use(mesh);
  app.get('/slow', async (_req, res) => {
    started();
    await held;
    res.send('done');
  });
  const server = await listen(app);
  const first = fetch(`${server.url}/slow`);
  await admitted; // the first request holds the only permit
  const shed = await fetch(`${server.url}/slow`);
  assert.equal(shed.status, 503);
  assert.equal(shed.headers.get('retry-after'), '2');
  assert.deepEqual(await shed.json(), { error: 'overloaded' });
  release();
  assert.equal((await first).status, 200);
  await mesh.close();
  await server.close();
});

test('golden metrics are keyed by the route pattern, not the raw path', async () => {
  const metrics = new MetricsRegistry();
  const app = express();
  const mesh = meshMiddleware({ metrics, name: 'users-api' });
  app.use(mesh);
  const router = express.Router();
  router.get('/:id', (req, res) => {
    res.status(req.params.id === '500' ? 500 : 200).send('ok');
  });
  app.use('/users', router);
  const server = await listen(app);
  for (const id of ['1', '2', '500']) await (await fetch(`${server.url}/users/${id}`)).text();
  await (await fetch(`${server.url}/nowhere`)).text();
  assert.deepEqual(routeCounts(metrics), { '/users/:id': 3, unmatched: 1 });
  const route = metrics.snapshot()[0]?.routes.find((r) => r.route === '/users/:id');
  assert.ok(Math.abs((route?.successRate ?? 0) - 2 / 3) < 1e-9);
  await mesh.close();
  assert.equal(metrics.snapshot().length, 0);
  await server.close();
});

test('readiness: 503 while not ready, admin routes still served', async () => {
  const readiness = new Readiness();
  const latch = readiness.latch('config');
  const app = express();
  const mesh = meshMiddleware({
    readiness,
    metrics: false,
    admin: { prefix: '/_mesh', handler: (req, res) => res.end(`admin ${req.url}`) },
  });
  app.use(mesh);
  app.get('/', (_req, res) => res.send('hello'));
  const server = await listen(app);
  const refused = await fetch(server.url);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '1');
  assert.deepEqual(await refused.json(), { error: 'not ready' });
  assert.equal(await (await fetch(`${server.url}/_mesh/ready`)).text(), 'admin /ready');
  latch.release();
  assert.equal(await (await fetch(server.url)).text(), 'hello');
  await mesh.close();
  await server.close();
});

test('admin prefix: only the prefix itself and paths under it are exempt, not paths that merely start with it', async () => {
  const readiness = new Readiness();
  const latch = readiness.latch('config');
  const metrics = new MetricsRegistry();
  const app = express();
  const mesh = meshMiddleware({
    readiness,
    metrics,
    admin: { prefix: '/admin', handler: (req, res) => res.end(`admin ${req.url}`) },
  });
  app.use(mesh);
  app.get('/administrators', (_req, res) => res.send('people'));
  const server = await listen(app);
  const refused = await fetch(`${server.url}/administrators`);
  assert.equal(refused.status, 503, '/administrators goes through the gate');
  assert.deepEqual(await refused.json(), { error: 'not ready' });
  assert.equal(await (await fetch(`${server.url}/admin`)).text(), 'admin /');
  assert.equal(await (await fetch(`${server.url}/admin/ready`)).text(), 'admin /ready');
  assert.equal(await (await fetch(`${server.url}/admin?format=json`)).text(), 'admin /?format=json');
  latch.release();
  const served = await fetch(`${server.url}/administrators`);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), 'people');
  assert.deepEqual(routeCounts(metrics), { refused: 1, '/administrators': 1 }, 'admin requests are not counted');
  await mesh.close();
  await server.close();
});

test('the incoming deadline header bounds the request: 504, and the handler sees its signal abort', async () => {
  const app = express();
  const mesh = meshMiddleware({ metrics: false });
  app.use(mesh);
  let aborted: Promise<boolean> | undefined;
  app.get('/slow', (_req, res) => {
    const ctx = res.locals.sidecarless as CallContext;
    aborted = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(true)));
  });
  const server = await listen(app);
  const res = await fetch(`${server.url}/slow`, { headers: { 'x-sidecarless-deadline-ms': '80' } });
  assert.equal(res.status, 504);
  assert.equal(await aborted, true);
  await mesh.close();
  await server.close();
});
