// The control server as a real child process (`sidecarless control`), killed and restarted
// while real clients keep serving and resume; a client restarted during the outage starts from
// its persisted snapshot.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { configured, createMeshStore, httpSource } from '../../src/control/index.js';
import { cli, cliEnv } from '../cli/cli.js';
import { closeOpened, startClients, TOKEN, track, until } from './helpers.js';

afterEach(closeOpened);

interface Running {
  child: ChildProcess;
  url: string;
  close(): Promise<void>;
}

/** Starts `sidecarless control` and resolves once it prints where it listens. */
async function startServer(config: string, port: number): Promise<Running> {
  const child = spawn(process.execPath, cli('control', '--config', config, '--port', String(port), '--heartbeat', '100'), {
    env: cliEnv({ SIDECARLESS_TOKEN: TOKEN }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`control server did not start: ${stderr}`)), 20_000);
    child.stdout?.on('data', (d) => {
      out += d;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`control server exited with ${code}: ${stderr}`));
    });
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    child,
    url,
    close: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

const yaml = (timeout: string) => `services:\n  users:\n    timeout: ${timeout}\n    retries: { attempts: 1 }\n`;

test('control server process killed and restarted: clients serve with their snapshot, resume, and a restarted client starts from disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-process-'));
  const config = join(dir, 'mesh.yaml');
  await writeFile(config, yaml('1s'));
  const first = track(await startServer(config, 0));
  const port = Number(new URL(first.url).port);
  const clients = await startClients(first.url, 3, { persistPath: (i) => join(dir, `client-${i}.json`) });
  await until(() => clients.every((c) => c.store.current.value.services.users?.timeout === '1s'), 'first snapshot', 10_000);
  const version = clients[0]!.store.version;
  await Promise.all(clients.map((c) => c.store.flush()));

  const users = configured(clients[0]!.store, 'users');
  const call = track(
    new ServiceBuilder({ name: 'users', registry: false })
      .timeout(users.timeout)
      .retry(users.retry)
      .service(async (n: number) => n + 1),
  );

  await first.close();
  await until(() => clients.every((c) => c.events.some((e) => e.type === 'disconnected')), 'outage noticed');
  // Still serving, with the last snapshot.
  for (let i = 0; i < 20; i++) assert.equal(await call(i), i + 1);
  assert.ok(clients.every((c) => c.store.version === version));

  // Client 2 restarts while the server is down: it starts from its persisted snapshot.
  await clients[2]!.store.close();
  const restarted = track(
    await createMeshStore({
      persistPath: join(dir, 'client-2.json'),
      sources: [httpSource({ url: first.url, token: TOKEN, clientId: 'client-2', reconnect: { base: 20, max: 200 } })],
    }),
  );
  assert.equal(restarted.version, version);
  assert.equal(restarted.current.value.services.users?.timeout, '1s');

  // The server comes back on the same port, with a changed file: everyone resumes and applies it.
  await writeFile(config, yaml('7s'));
  const second = track(await startServer(config, port));
  assert.equal(second.url, first.url);
  const live = [clients[0]!.store, clients[1]!.store, restarted];
  await until(() => live.every((s) => s.current.value.services.users?.timeout === '7s'), 'resumed after restart', 10_000);
  assert.equal(await call(41), 42);
  await closeOpened();
  await rm(dir, { recursive: true });
});
