// etcd as a config source, against a real etcd started here on loopback ports with a temporary
// data dir (Debian's etcd-server). Skips only when the etcd binary is absent.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startControl } from '../../src/cli/control.js';
import { createMeshStore, etcdSource, type MeshStore, timeoutOf } from '../../src/control/index.js';
import { closeOpened, startClients, TOKEN, track, until } from './helpers.js';

afterEach(closeOpened);

const haveEtcd = spawnSync('etcd', ['--version']).status === 0;
const skip = haveEtcd ? false : 'etcd binary not found (apt-get install etcd-server); skipping the etcd source tests';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

interface Etcd {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function startEtcd(): Promise<Etcd> {
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-etcd-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let child: ChildProcess | undefined;
  const etcd: Etcd = {
    url,
    async start() {
      child = spawn(
        'etcd',
        [
          '--name',
          'test',
          '--data-dir',
          join(dir, 'data'),
          '--listen-client-urls',
          url,
          '--advertise-client-urls',
          url,
          '--listen-peer-urls',
          peer,
          '--initial-advertise-peer-urls',
          peer,
          '--initial-cluster',
          `test=${peer}`,
          '--log-level',
          'error',
        ],
        { stdio: 'ignore' },
      );
      const probe = new Etcd3({ hosts: url, dialTimeout: 500 });
      try {
        let ready = false;
        const end = Date.now() + 20_000;
        while (!ready && Date.now() < end) {
          ready = await probe.get('probe').then(
            () => true,
            () => false,
          );
          if (!ready) await new Promise((r) => setTimeout(r, 100));
        }
        if (!ready) throw new Error('etcd did not start within 20 s');
      } finally {
        probe.close();
      }
    },
    async stop() {
      const c = child;
      child = undefined;
      if (c === undefined || c.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      });
    },
    async close() {
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await etcd.start();
  return etcd;
}

const prefix = '/sidecarless/mesh/';
const timeout = (store: MeshStore, service: string) => timeoutOf(store.current.value, service)?.timeout;

test('etcd source: put, change, delete, compaction and etcd restart', { skip, timeout: 120_000 }, async () => {
  const etcd = track(await startEtcd());
  const admin = new Etcd3({ hosts: etcd.url });
  track({ close: async () => admin.close() });
  await admin.put(`${prefix}users`).value('timeout: 1s\n');
  const store = track(await createMeshStore({ sources: [etcdSource({ hosts: etcd.url, prefix })] }));

  // put: the revision is the version.
  await until(() => timeout(store, 'users') === '1s', 'initial read', 10_000);
  const firstRevision = Number(store.version);
  assert.ok(firstRevision > 0);

  // change, and a second service as JSON.
  await admin.put(`${prefix}users`).value('{"timeout":"2s"}');
  await admin.put(`${prefix}orders`).value('timeout: 3s\nretries: { attempts: 2 }\n');
  await until(() => timeout(store, 'users') === '2s' && timeout(store, 'orders') === '3s', 'changes', 10_000);
  assert.ok(Number(store.version) > firstRevision);

  // an invalid value is rejected; the last good document stays.
  const good = store.version;
  await admin.put(`${prefix}orders`).value('timeout: never\n');
  await until(() => store.lastRejected !== undefined, 'rejection', 10_000);
  assert.equal(store.lastRejected?.problems[0]?.field, 'services.orders.timeout');
  assert.equal(store.version, good);

  // delete.
  await admin.delete().key(`${prefix}orders`);
  await until(() => store.current.value.services.orders === undefined && Number(store.version) > Number(good), 'delete', 10_000);

  // compaction: many revisions compacted away; the source keeps up and a new reader starts clean.
  for (let i = 0; i < 20; i++) await admin.put(`${prefix}users`).value(`timeout: ${100 + i}ms\n`);
  const latest = await admin.getAll().prefix(prefix).exec();
  await admin.kv.compact({ revision: latest.header.revision, physical: true });
  await until(() => timeout(store, 'users') === '119ms', 'after compaction', 10_000);

  // etcd restart: the process keeps its snapshot while etcd is down, and catches up after,
  // including changes whose history was compacted while its watch was away.
  await etcd.stop();
  assert.equal(timeout(store, 'users'), '119ms');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(timeout(store, 'users'), '119ms');
  await etcd.start();
  const admin2 = new Etcd3({ hosts: etcd.url });
  track({ close: async () => admin2.close() });
  for (let i = 0; i < 5; i++) await admin2.put(`${prefix}users`).value(`timeout: ${200 + i}ms\n`);
  const now = await admin2.getAll().prefix(prefix).exec();
  await admin2.kv.compact({ revision: now.header.revision, physical: true });
  await admin2.put(`${prefix}payments`).value('timeout: 9s\n');
  await until(() => timeout(store, 'users') === '204ms' && timeout(store, 'payments') === '9s', 'caught up after restart', 30_000);
});

test('control server fed by etcd (sidecarless control --etcd) streams each revision to clients', { skip, timeout: 60_000 }, async () => {
  const etcd = track(await startEtcd());
  const admin = new Etcd3({ hosts: etcd.url });
  track({ close: async () => admin.close() });
  await admin.put(`${prefix}users`).value('timeout: 1s\n');
  const server = track(await startControl({ etcd: etcd.url, prefix, port: 0, host: '127.0.0.1', heartbeat: 500, token: TOKEN }));
  const [client] = await startClients(server.url, 1);
  await until(() => timeout(client!.store, 'users') === '1s', 'first revision at the client', 10_000);
  await admin.put(`${prefix}users`).value('timeout: 4s\n');
  await until(() => timeout(client!.store, 'users') === '4s', 'next revision at the client', 10_000);
  assert.equal(client!.store.version, server.version);
  // An invalid value never reaches the clients.
  await admin.put(`${prefix}users`).value('timeout: later\n');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(timeout(client!.store, 'users'), '4s');
  assert.equal(client!.store.lastRejected, undefined);
});
