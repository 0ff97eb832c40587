import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { register, startControl } from '../../src/cli/control.js';
import { ControlServer, createMeshStore, fileSource, httpSource } from '../../src/control/index.js';
import { until } from '../control/helpers.js';
import { cli, cliEnv } from './cli.js';

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
    await assert.rejects(startControl({ config: 'examples/mesh.yaml', port: 0, host: '127.0.0.1', heartbeat: 1000 }), /token/);
    await assert.rejects(startControl({ token: 'secret-token', port: 0, host: '127.0.0.1', heartbeat: 1000 }), /exactly one/);
  } finally {
    if (saved !== undefined) process.env.SIDECARLESS_TOKEN = saved;
  }
});

test('startControl serves over mTLS from --tls-cert, --tls-key and --client-ca, without a token', async () => {
  const saved = process.env.SIDECARLESS_TOKEN;
  delete process.env.SIDECARLESS_TOKEN;
  const fixtures = 'test/control/fixtures/tls';
  const base = { config: 'examples/mesh.yaml', port: 0, host: '127.0.0.1', heartbeat: 1000 };
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

/** Parses `args` with only `control` registered; resolves with commander's error message, if any. */
async function flagError(args: string[]): Promise<string | undefined> {
  const program = new Command('sidecarless').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  register(program);
  // Every case is refused while the flags are parsed, before startControl could run.
  try {
    await program.parseAsync(['control', '--token', 'secret-token', ...args], { from: 'user' });
  } catch (error) {
    assert.ok(error instanceof CommanderError, String(error));
    assert.equal(error.code, 'commander.invalidArgument', error.message);
    return error.message;
  }
  return undefined;
}

test('control flags: --port must be 0 to 65535 and --heartbeat at least 1, as whole numbers', async () => {
  for (const port of ['abc', '70000', '-1', '1.5', '']) {
    assert.match((await flagError(['--port', port])) ?? 'accepted', /--port.*must be an integer from 0 to 65535/, `--port ${port}`);
  }
  for (const heartbeat of ['0', 'abc', '-5', '1e3', '3600001']) {
    assert.match(
      (await flagError(['--heartbeat', heartbeat])) ?? 'accepted',
      /--heartbeat.*must be an integer from 1 to 3600000/,
      `--heartbeat ${heartbeat}`,
    );
  }
});

test('startControl passes a bad heartbeat or port on to the server, which refuses it naming the field', async () => {
  const base = { config: 'examples/mesh.yaml', host: '127.0.0.1', token: 'secret-token' };
  const refused = async (flags: { port: number; heartbeat: number }, message: RegExp): Promise<void> => {
    let server: ControlServer;
    try {
      server = await startControl({ ...base, ...flags });
    } catch (error) {
      assert.match(String(error), message);
      return;
    }
    await server.close(); // so that a failure here does not leave the test process running
    assert.fail(`started with ${JSON.stringify(flags)}`);
  };
  await refused({ port: 0, heartbeat: 0 }, /heartbeatMs: must be a number from 1 to 3600000/);
  await refused({ port: 70_000, heartbeat: 1000 }, /port: must be an integer from 0 to 65535/);
});

/** Asserts `startControl(flags)` refuses with `message`; a server it started anyway is closed. */
async function refusedToStart(flags: Parameters<typeof startControl>[0], message: RegExp): Promise<void> {
  let server: ControlServer;
  try {
    server = await startControl(flags);
  } catch (error) {
    assert.match(String(error), message, JSON.stringify(flags));
    return;
  }
  await server.close();
  assert.fail(`started with ${JSON.stringify(flags)}`);
}

test('control: --prefix with --config is refused naming both (the prefix is for etcd keys; a file has none)', async () => {
  const base = { config: 'examples/mesh.yaml', host: '127.0.0.1', port: 0, heartbeat: 1000, token: 'secret-token' };
  await refusedToStart({ ...base, prefix: '/team-a/mesh/' }, /--prefix.*--config/);
  // The same through the command: refused before it listens.
  const result = spawnSync(process.execPath, cli('control', '--config', 'examples/mesh.yaml', '--prefix', '/x/', '--port', '0'), {
    encoding: 'utf8',
    env: cliEnv({ SIDECARLESS_TOKEN: 'secret-token' }),
    timeout: 20_000,
  });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /--prefix.*--config/);
  assert.equal(result.stdout, '');
});

test('control: an empty --etcd endpoint ("", a trailing or doubled comma) is refused naming --etcd', async () => {
  const base = { host: '127.0.0.1', port: 0, heartbeat: 1000, token: 'secret-token' };
  for (const etcd of ['', ' ', '127.0.0.1:2379,', ',127.0.0.1:2379', '127.0.0.1:2379,,127.0.0.1:2380']) {
    await refusedToStart({ ...base, etcd }, /--etcd.*empty/);
  }
  const result = spawnSync(process.execPath, cli('control', '--etcd', '127.0.0.1:2379,', '--port', '0'), {
    encoding: 'utf8',
    env: cliEnv({ SIDECARLESS_TOKEN: 'secret-token' }),
    timeout: 20_000,
  });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /--etcd.*empty/);
  assert.equal(result.stdout, '');
});
