import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { ControlServer, configured, createMeshStore, httpSource } from '../../src/control/index.js';
import { closeOpened, getJson, startClients, TOKEN, track, until } from './helpers.js';

afterEach(closeOpened);

const doc = (timeout: string, attempts = 1) => ({ services: { users: { timeout, retries: { attempts } } } });
const quiet = () => {};

test('a change is applied by 100 clients within 1 s, and each ACKs it', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 500, log: quiet }));
  const url = await server.listen();
  server.publish(doc('1s'), 'v1');
  const clients = await startClients(url, 100);
  await until(() => clients.every((c) => c.store.version === 'v1'), 'all clients on v1', 10_000);

  const applied: number[] = [];
  const start = performance.now();
  const unsubscribe = clients.map((c) => c.store.subscribe(() => applied.push(performance.now() - start)));
  assert.equal(server.publish(doc('2s'), 'v2').applied, true);
  await until(() => applied.length === 100, 'all clients on v2', 5000);
  const slowest = Math.max(...applied);
  assert.ok(slowest < 1000, `slowest client applied v2 after ${slowest.toFixed(0)} ms`);
  for (const c of clients) assert.equal(c.store.current.value.services.users?.timeout, '2s');

  await until(() => server.clients().filter((c) => c.appliedVersion === 'v2').length === 100, 'ACKs of v2');
  const listed = await getJson(url, '/clients');
  assert.equal(listed.status, 200);
  assert.equal(listed.body.version, 'v2');
  assert.equal(listed.body.clients.length, 100);
  for (const u of unsubscribe) u();
  await Promise.all(clients.map((c) => c.store.close()));
  await server.close();
});

test('an invalid document is NACKed with its problems; the previous version stays and no call fails', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 500, log: quiet }));
  const url = await server.listen();
  server.publish(doc('1s', 2), 'good');
  const [client] = await startClients(url, 1);
  const store = client!.store;
  await until(() => store.version === 'good', 'first version');
  const users = configured(store, 'users');
  const call = new ServiceBuilder({ name: 'users', registry: false })
    .timeout(users.timeout)
    .retry(users.retry)
    .service(async (n: number) => n * 2);
  track(call);

  let calls = 0;
  let failures = 0;
  let flowing = true;
  const flow = (async () => {
    while (flowing && failures < 100) {
      await call(calls).then(
        () => calls++,
        () => failures++,
      );
      await new Promise((r) => setImmediate(r));
    }
  })();
  // The server's own validation would refuse it; publish it unchecked, as a newer server might.
  server.publish({ services: { users: { timeout: 'soon', retries: { attempts: 1000 } } } }, 'bad', { unchecked: true });
  await until(() => server.clients()[0]?.rejectedVersion === 'bad', 'NACK at the server');
  const state = server.clients()[0]!;
  assert.deepEqual(state.problems?.map((p) => p.field).sort(), ['services.users.retries.attempts', 'services.users.timeout']);
  assert.equal(state.appliedVersion, 'good');
  assert.equal(store.version, 'good');
  assert.equal(store.lastRejected?.version, 'bad');
  assert.ok(client!.events.some((e) => e.type === 'verdict' && !e.verdict.applied));

  // A good document after the bad one is applied.
  server.publish(doc('3s'), 'better');
  await until(() => store.version === 'better', 'recovery');
  const before = calls;
  await until(() => calls > before + 50, 'calls after the change');
  flowing = false;
  await flow;
  assert.equal(failures, 0);
  await call.close();
  await store.close();
  await server.close();
});

test('server closed and restarted on the same port: clients keep their snapshot and resume', async () => {
  const first = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 100, log: quiet }));
  const url = await first.listen();
  const port = Number(new URL(url).port);
  first.publish(doc('1s'), 'v1');
  const clients = await startClients(url, 5);
  await until(() => clients.every((c) => c.store.version === 'v1'), 'v1');
  await first.close();
  await until(() => clients.every((c) => c.events.some((e) => e.type === 'disconnected')), 'disconnects noticed');
  assert.ok(
    clients.every((c) => c.store.version === 'v1'),
    'the last snapshot stays in force',
  );

  const second = track(new ControlServer({ token: TOKEN, port, heartbeatMs: 100, log: quiet }));
  await second.listen();
  second.publish(doc('1s'), 'v1');
  const connects = (c: (typeof clients)[number]) => c.events.filter((e) => e.type === 'connected').length;
  await until(() => clients.every((c) => connects(c) >= 2), 'reconnected', 10_000);
  // Resumed at v1: the server knows each client's version without a resend.
  await until(() => second.clients().length === 5 && second.clients().every((c) => c.appliedVersion === 'v1'), 'resumed at v1');
  second.publish(doc('5s'), 'v2');
  await until(() => clients.every((c) => c.store.version === 'v2'), 'v2 after restart');
  await Promise.all(clients.map((c) => c.store.close()));
  await second.close();
});

test('a silent stream is dropped after missed heartbeats and reconnected', async () => {
  let connections = 0;
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((_req, res) => {
    connections++;
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.write(`${JSON.stringify({ type: 'hello', heartbeatMs: 30, version: '' })}\n`);
    // ...and then nothing, ever.
  });
  silent.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const events: string[] = [];
  const store = await createMeshStore({
    sources: [
      httpSource({
        url,
        token: TOKEN,
        clientId: 'quiet',
        reconnect: { base: 10, max: 20 },
        onEvent: (e) => events.push(e.type === 'disconnected' ? e.reason : e.type),
      }),
    ],
  });
  await until(() => connections >= 3, 'reconnects after silence', 3000);
  assert.ok(events.includes('missed heartbeats'), events.join(','));
  await store.close();
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

test('clients need the bearer token', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, log: quiet }));
  const url = await server.listen();
  assert.equal((await getJson(url, '/clients', 'wrong-token-123')).status, 401);
  const [client] = await startClients(url, 1, { token: 'wrong-token-123' });
  await until(() => client!.events.some((e) => e.type === 'disconnected' && e.reason === 'HTTP 401'), '401');
  assert.equal(server.clients().length, 0);
  await client!.store.close();
  await server.close();
  assert.throws(() => new ControlServer({ token: '' }), /token/);
});
