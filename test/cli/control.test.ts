import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startControl } from '../../src/cli/control.js';
import { ControlServer, createMeshStore, fileSource, httpSource } from '../../src/control/index.js';
import { until } from '../control/helpers.js';

test('control server validates its file before publishing: an invalid edit is logged and not published', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-control-'));
  const path = join(dir, 'mesh.yaml');
  await writeFile(path, 'services:\n  users: { timeout: 1s }\n');
  const log: string[] = [];
  const server = new ControlServer({
    token: 'secret-token',
    port: 0,
    source: fileSource(path, { pollIntervalMs: 20 }),
    log: (l) => log.push(l),
  });
  const url = await server.listen();
  await until(() => server.version !== '', 'first publish');
  const good = server.version;
  await writeFile(path, 'services:\n  users: { timeout: 1s, retries: { attempts: -1 } }\n');
  await until(() => log.some((l) => l.includes('rejected')), 'rejection logged');
  assert.equal(server.version, good, 'the last good document stays published');
  assert.ok(log.some((l) => l.includes('services.users.retries.attempts')));
  const res = await fetch(`${url}/v1/config`, { headers: { authorization: 'Bearer secret-token' } });
  assert.deepEqual(((await res.json()) as { config: unknown }).config, { services: { users: { timeout: '1s' } } });
  await server.close();
  await rm(dir, { recursive: true });
});

test('startControl refuses to run without a token or a source', async () => {
  const saved = process.env.SIDECARLESS_TOKEN;
  delete process.env.SIDECARLESS_TOKEN;
  try {
    await assert.rejects(startControl({ config: 'examples/mesh.yaml', prefix: '/', port: 0, host: '127.0.0.1', heartbeat: 1000 }), /token/);
    await assert.rejects(startControl({ token: 'secret-token', prefix: '/', port: 0, host: '127.0.0.1', heartbeat: 1000 }), /exactly one/);
  } finally {
    if (saved !== undefined) process.env.SIDECARLESS_TOKEN = saved;
  }
});

test('startControl serves over mTLS from --tls-cert, --tls-key and --client-ca, without a token', async () => {
  const saved = process.env.SIDECARLESS_TOKEN;
  delete process.env.SIDECARLESS_TOKEN;
  const fixtures = 'test/control/fixtures/tls';
  const base = { config: 'examples/mesh.yaml', prefix: '/', port: 0, host: '127.0.0.1', heartbeat: 1000 };
  try {
    await assert.rejects(
      startControl({ ...base, token: 'secret-token', tlsCert: `${fixtures}/server.pem` }),
      /both --tls-cert and --tls-key/,
    );
    await assert.rejects(startControl({ ...base, clientCa: `${fixtures}/ca.pem` }), /needs --tls-cert/);
    const server = await startControl({
      ...base,
      tlsCert: `${fixtures}/server.pem`,
      tlsKey: `${fixtures}/server.key`,
      clientCa: `${fixtures}/ca.pem`,
    });
    try {
      assert.match(server.url, /^https:/);
      const store = await createMeshStore({
        sources: [
          httpSource({
            url: server.url,
            tls: {
              ca: await readFile(`${fixtures}/ca.pem`),
              cert: await readFile(`${fixtures}/client.pem`),
              key: await readFile(`${fixtures}/client.key`),
            },
          }),
        ],
      });
      await until(() => store.version === server.version && server.version !== '', 'the file config over mTLS');
      await store.close();
    } finally {
      await server.close();
    }
  } finally {
    if (saved !== undefined) process.env.SIDECARLESS_TOKEN = saved;
  }
});
