import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { configured, createMeshStore, fileSource, retryOf, staticSource, timeoutOf } from '../../src/control/index.js';
import { circuitBreaker } from '../../src/layers/circuit-breaker/index.js';
import { concurrencyLimit } from '../../src/layers/concurrency-limit/index.js';
import { faultInjection } from '../../src/layers/fault-injection/index.js';
import { rateLimit } from '../../src/layers/rate-limit/index.js';
import { Readiness } from '../../src/layers/readiness/index.js';
import { until } from './helpers.js';

const tmp = () => mkdtemp(join(tmpdir(), 'sidecarless-store-'));

test('defaults, then persisted snapshot, then the source; persisted atomically', async () => {
  const dir = await tmp();
  const persistPath = join(dir, 'mesh.json');
  const readiness = new Readiness();
  const first = await createMeshStore({ persistPath, readiness, initial: { services: { users: { timeout: '9s' } } } });
  assert.equal(first.version, '0');
  assert.equal(readiness.isReady, false);
  assert.deepEqual(readiness.pending, ['mesh-config']);
  first.attach(staticSource({ services: { users: { timeout: '250ms' } } }, 'v1'));
  assert.equal(readiness.isReady, true);
  assert.equal(first.version, 'v1');
  await first.close();
  assert.deepEqual(JSON.parse(await readFile(persistPath, 'utf8')).config, { services: { users: { timeout: '250ms' } } });
  assert.deepEqual((await readdir(dir)).sort(), ['mesh.json'], 'no temp files left');

  // A new process: the persisted snapshot is in force before any source speaks.
  const readiness2 = new Readiness();
  const second = await createMeshStore({ persistPath, readiness: readiness2 });
  assert.equal(second.version, 'v1');
  assert.deepEqual(timeoutOf(second.current.value, 'users'), { timeout: '250ms' });
  assert.equal(readiness2.isReady, true);
  await second.close();

  // latchOn: 'source' waits for a source even with a persisted snapshot.
  const readiness3 = new Readiness();
  const third = await createMeshStore({ persistPath, readiness: readiness3, latchOn: 'source' });
  assert.equal(third.version, 'v1');
  assert.equal(readiness3.isReady, false);
  third.attach(staticSource({ services: { users: { timeout: '250ms' } } }, 'v1'));
  assert.equal(readiness3.isReady, true, 'the same version from the source still releases');
  await third.close();
  await rm(dir, { recursive: true });
});

test('an invalid or unreadable persisted file is ignored with a warning', async () => {
  const dir = await tmp();
  const persistPath = join(dir, 'mesh.json');
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  await writeFile(persistPath, JSON.stringify({ version: 'x', config: { services: { a: { timeout: 'soon' } } } }));
  const store = await createMeshStore({ persistPath });
  assert.equal(store.version, '0');
  await writeFile(persistPath, '{ torn');
  const store2 = await createMeshStore({ persistPath });
  assert.equal(store2.version, '0');
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.equal(warnings.length, 2);
  await store.close();
  await store2.close();
  await rm(dir, { recursive: true });
});

test('route overrides and fallbacks in the selectors', () => {
  const config = {
    services: {
      users: {
        timeout: '1s',
        perTryTimeout: '100ms',
        retries: { attempts: 2, retryOn: '5xx, reset' },
        routes: { 'POST /users': { timeout: '5s', retries: { attempts: 0 } } },
      },
    },
  };
  assert.deepEqual(timeoutOf(config, 'users', 'POST /users'), { timeout: '5s' });
  assert.deepEqual(timeoutOf(config, 'users', 'GET /other'), { timeout: '1s' });
  assert.equal(timeoutOf(config, 'nobody'), undefined);
  assert.equal(timeoutOf(config, 'constructor'), undefined);
  assert.deepEqual(retryOf(config, 'users', undefined, { honorRetryAfter: false }), {
    honorRetryAfter: false,
    attempts: 2,
    retryOn: ['5xx', 'reset'],
    perTryTimeout: '100ms',
  });
  assert.equal(retryOf(config, 'users', 'POST /users')?.attempts, 0);
});

test('file source: YAML changes applied, invalid edits rejected and the last good kept, rename-replace seen', async () => {
  const dir = await tmp();
  const path = join(dir, 'mesh.yaml');
  await writeFile(path, 'services:\n  users:\n    timeout: 1s\n');
  const store = await createMeshStore({ sources: [fileSource(path, { pollIntervalMs: 50 })] });
  await until(() => timeoutOf(store.current.value, 'users')?.timeout === '1s', 'first read');
  await writeFile(path, 'services:\n  users:\n    timeout: 2s\n');
  await until(() => timeoutOf(store.current.value, 'users')?.timeout === '2s', 'change');
  const good = store.version;
  await writeFile(path, 'services:\n  users:\n    timeout: never\n');
  // The watcher may read the file truncated (an empty document, refused at the root) before the
  // write completes: wait for the rejection of the whole edit.
  await until(() => store.lastRejected?.problems[0]?.field === 'services.users.timeout', 'rejection');
  assert.equal(store.version, good);
  // Editors and kubectl replace the file by rename.
  await writeFile(join(dir, 'next.yaml'), '{"services":{"users":{"timeout":"3s"}}}');
  await rename(join(dir, 'next.yaml'), path);
  await until(() => timeoutOf(store.current.value, 'users')?.timeout === '3s', 'rename');
  await store.close();
  await rm(dir, { recursive: true });
});

test('file source without fs.watch falls back to polling; a missing file is a rejection', async () => {
  const dir = await tmp();
  const path = join(dir, 'mesh.json');
  const store = await createMeshStore({ sources: [fileSource(path, { pollIntervalMs: 20, watch: false })] });
  await until(() => store.lastRejected !== undefined, 'missing file rejection');
  assert.match(store.lastRejected?.problems[0]?.message ?? '', /ENOENT/);
  await writeFile(path, '{"services":{"a":{"timeout":"1s"}}}');
  await until(() => timeoutOf(store.current.value, 'a') !== undefined, 'poll');
  await store.close();
  await rm(dir, { recursive: true });
});

test('every policy of the example config maps onto the real layers, live', async () => {
  const store = await createMeshStore({ sources: [staticSource(await readFile('examples/mesh.yaml', 'utf8'), 'example')] });
  assert.equal(store.version, 'example');
  for (const name of ['users', 'checkout']) {
    const mesh = configured(store, name, {
      fallback: { concurrencyLimit: { max: 10 }, rateLimit: { rate: 1000 } },
    });
    const call = new ServiceBuilder({ name, registry: false })
      .layer(faultInjection(mesh.fault))
      .timeout(mesh.timeout)
      .retry(mesh.retry)
      .layer(circuitBreaker(mesh.circuitBreaker))
      .layer(concurrencyLimit(mesh.concurrencyLimit))
      .layer(rateLimit(mesh.rateLimit))
      .service(async (n: number) => n);
    assert.equal(await call(1).catch(() => 1), 1);
    await call.close();
  }
  await store.close();
});
