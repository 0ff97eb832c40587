// Every timer of the stream client, the control server and the file source is on the injected
// clock, and close() leaves none behind.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlServer, createMeshStore, fileSource, httpSource } from '../../src/control/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import { TOKEN, until } from './helpers.js';

test('stream client, server and file source run their timers on the clock and leave none after close', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-clock-'));
  const path = join(dir, 'mesh.yaml');
  await writeFile(path, 'services:\n  users: { timeout: 1s }\n');
  const serverClock = new VirtualClock();
  const clientClock = new VirtualClock();
  const server = new ControlServer({
    token: TOKEN,
    port: 0,
    heartbeatMs: 1000,
    clock: serverClock,
    log: () => {},
    source: fileSource(path, { clock: serverClock }),
  });
  const url = await server.listen();
  await until(() => server.version !== '', 'published');
  assert.equal(serverClock.pendingTimers, 2, 'heartbeat and file poll');

  const events: string[] = [];
  const store = await createMeshStore({
    sources: [httpSource({ url, token: TOKEN, clientId: 'virtual', clock: clientClock, onEvent: (e) => events.push(e.type) })],
  });
  await until(() => store.version === server.version, 'client applied');
  // The ACK's deadline is on the clock too, until the server answers it.
  await until(() => clientClock.pendingTimers === 1, 'only the heartbeat watchdog left once the ACK is answered');

  // Heartbeats in virtual time keep the stream alive; no reconnect happens.
  for (let i = 0; i < 5; i++) {
    await serverClock.advance(1000);
    await new Promise((r) => setTimeout(r, 50));
    await clientClock.advance(1000);
  }
  assert.equal(events.filter((e) => e === 'connected').length, 1);
  assert.ok(!events.includes('disconnected'));

  await store.close();
  await server.close();
  assert.equal(clientClock.pendingTimers, 0);
  assert.equal(serverClock.pendingTimers, 0);
  await rm(dir, { recursive: true });
});
