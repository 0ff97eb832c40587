import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { createAdminHandler, createAdminServer } from '../../src/admin/index.js';
import { InvalidOptionError, MetricsRegistry, ServiceBuilder, StackRegistry } from '../../src/index.js';
import { assertPromtoolClean } from '../layers/metrics/promtool.js';
import { type Fixture, startFixture } from './fixture.js';

let fx: Fixture;
before(async () => {
  fx = await startFixture();
  for (let i = 0; i < 30; i++) await Promise.allSettled([fx.users(String(i)), fx.orders(String(i))]);
});
after(() => fx.close());

const get = async (path: string) => {
  const response = await fetch(`${fx.admin.url}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
};

test('binds to loopback by default', () => {
  assert.match(fx.admin.url, /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('/metrics parses as Prometheus text and counts the calls made', async () => {
  const { status, type, body } = await get('/metrics');
  assert.equal(status, 200);
  assert.match(type, /^text\/plain/);
  const families = parsePrometheusTextFormat(body);
  const requests = families.find((f) => f.name === 'sidecarless_requests_total');
  assert.equal(requests?.type, 'COUNTER');
  const total = (service: string, scope: string) =>
    (requests?.metrics ?? [])
      .filter((m) => m.labels?.service === service && m.labels.scope === scope)
      .reduce((a, m) => a + Number(m.value), 0);
  assert.equal(total('users', 'call'), 30);
  assert.equal(total('orders', 'call'), 30);
  assert.ok(total('users', 'attempt') >= 30, 'attempts include retries');
  const endpoints = new Set((requests?.metrics ?? []).filter((m) => m.labels?.scope === 'attempt').map((m) => m.labels?.endpoint));
  assert.deepEqual([...endpoints].sort(), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  assert.equal(families.find((f) => f.name === 'sidecarless_response_latency_seconds')?.type, 'HISTOGRAM');
  assert.equal(families.find((f) => f.name === 'sidecarless_requests_in_flight')?.type, 'GAUGE');
});

test('/metrics passes promtool check metrics', async (t) => {
  assertPromtoolClean(t, (await get('/metrics')).body);
});

test('/live, and /ready follows the readiness latches', async () => {
  assert.deepEqual(JSON.parse((await get('/live')).body), { live: true });
  assert.equal((await get('/ready')).status, 200);
  const latch = fx.readiness.latch('first-config');
  const notReady = await get('/ready');
  assert.equal(notReady.status, 503);
  assert.deepEqual(JSON.parse(notReady.body), { ready: false, pending: { ready: ['first-config'] } });
  latch.release();
  assert.equal((await get('/ready')).status, 200);
});

test('/config shows the version in force and the last rejected document with why', async () => {
  const config = JSON.parse((await get('/config')).body);
  assert.equal(config.mesh.version, '7');
  assert.deepEqual(config.mesh.value, { retries: 2 });
  assert.equal(config.mesh.lastRejected.version, '8');
  assert.deepEqual(config.mesh.lastRejected.problems, [{ field: 'retries', message: 'must be a number >= 0 (got -1)' }]);
});

test('/stack and /endpoints read the layers’ descriptions', async () => {
  const stack = JSON.parse((await get('/stack')).body) as { service: string; layers: { layer: string }[] }[];
  assert.deepEqual(
    stack.map((s) => [s.service, s.layers.map((l) => l.layer)]),
    [
      ['users', ['metrics', 'circuit-breaker', 'retry', 'metrics', 'balance', 'service']],
      ['orders', ['metrics', 'service']],
    ],
  );
  const endpoints = JSON.parse((await get('/endpoints')).body);
  assert.equal(endpoints.length, 1);
  assert.equal(endpoints[0].service, 'users');
  assert.deepEqual(
    endpoints[0].endpoints.map((e: { address: string }) => e.address),
    ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080'],
  );
});

test('/api/stats: golden metrics per service, breakers, config versions', async () => {
  const doc = JSON.parse((await get('/api/stats')).body);
  const users = doc.services.find((s: { service: string; scope: string }) => s.service === 'users' && s.scope === 'call');
  assert.equal(users.requests, 30);
  assert.ok(users.successRate > 0.8 && users.successRate <= 1, `success rate ${users.successRate}`);
  assert.ok(users.rps > 0);
  assert.ok(users.latencyMs.p50 > 0 && users.latencyMs.p50 <= users.latencyMs.p95 && users.latencyMs.p95 <= users.latencyMs.p99);
  assert.deepEqual(
    doc.breakers.map((b: { service: string }) => b.service),
    ['users'],
  );
  assert.equal(doc.config.mesh.version, '7');
  assert.equal(doc.config.mesh.value, undefined, 'the stats document leaves config values out');
  assert.equal(doc.windowMs, 5_000);
});

test('unknown paths and methods are refused; / is the dashboard', async () => {
  assert.equal((await get('/nope')).status, 404);
  const post = await fetch(`${fx.admin.url}/live`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  const page = await get('/');
  assert.match(page.type, /^text\/html/);
  assert.match(page.body, /<svg|chart\(/);
  assert.doesNotMatch(page.body, /<script[^>]+src=|<link[^>]+href=/, 'self-contained: no external scripts or styles');
});

test('the handler mounts under a prefix in an existing node:http app, passing other paths on', async () => {
  const metrics = new MetricsRegistry();
  const stacks = new StackRegistry();
  const fn = new ServiceBuilder({ name: 'mounted', registry: stacks }).metrics({ registry: metrics }).service(async () => 1);
  await fn();
  const handler = createAdminHandler({ prefix: '/_mesh', metrics, stacks, prometheus: 'text' });
  const app = createServer((req, res) =>
    handler(req, res, () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('app');
    }),
  );
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  try {
    const text = await (await fetch(`${base}/_mesh/metrics`)).text();
    assert.match(text, /sidecarless_requests_total\{service="mounted",scope="call"[^}]*\} 1/);
    assert.equal(await (await fetch(`${base}/orders`)).text(), 'app');
    assert.match(await (await fetch(`${base}/_mesh`)).text(), /const BASE = "\/_mesh\/"/);
    const stack = (await (await fetch(`${base}/_mesh/stack/`)).json()) as { service: string }[];
    assert.equal(stack[0]?.service, 'mounted');
  } finally {
    app.closeAllConnections();
    await new Promise((resolve) => app.close(resolve));
    await fn.close();
  }
});

test('bad admin options are refused with the field named', async () => {
  await assert.rejects(
    createAdminServer({ port: 70_000 }),
    (e: unknown) => e instanceof InvalidOptionError && /admin\.port/.test(e.message),
  );
  assert.throws(() => createAdminHandler({ prefix: 'mesh/' }), /admin\.prefix/);
  assert.throws(() => createAdminHandler({ stores: { x: {} as never } }), /admin\.stores/);
});
