// Requests the admin routes must answer rather than crash on or misreport: a request target the
// URL parser refuses, a throw inside dispatch, bad query values, wrong methods, and a layer
// description that throws while it is written out. Each against a real loopback server; the bad
// request line goes over a raw socket, as fetch would refuse to send it.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { test } from 'node:test';
import { type AdminHandler, createAdminHandler, createAdminServer } from '../../src/admin/index.js';
import { type LayerDescription, MetricsRegistry, StackRegistry } from '../../src/index.js';

/** Sends one raw request line and returns the status line of the answer ('' if none came). */
const rawStatus = (port: number, target: string, method = 'GET') =>
  new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let data = '';
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('data', (chunk) => (data += chunk));
    socket.on('close', () => resolve(data.split('\r\n')[0] ?? ''));
    socket.on('error', () => resolve(data.split('\r\n')[0] ?? ''));
  });

/** A plain node:http server around `wrap(handler)`, closed by the returned `close`. */
async function mounted(handler: AdminHandler, wrap = (h: AdminHandler) => (req: IncomingMessage, res: ServerResponse) => h(req, res)) {
  const app = createServer(wrap(handler));
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const port = (app.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
    },
  };
}

test('a request target the URL parser refuses gets 400 from the admin server, which keeps serving', async () => {
  const admin = await createAdminServer({ port: 0, stacks: new StackRegistry(), metrics: new MetricsRegistry() });
  try {
    assert.equal(await rawStatus(admin.port, '//['), 'HTTP/1.1 400 Bad Request');
    assert.equal(await rawStatus(admin.port, 'http://[/live'), 'HTTP/1.1 400 Bad Request');
    assert.equal(await rawStatus(admin.port, '//[', 'HEAD'), 'HTTP/1.1 400 Bad Request');
    const live = await fetch(`${admin.url}/live`, { signal: AbortSignal.timeout(5_000) });
    assert.deepEqual(await live.json(), { live: true });
  } finally {
    await admin.close();
  }
});

test('the mounted handler answers 400 for such a target alone, and passes it on when it has a next', async () => {
  const stacks = new StackRegistry();
  const alone = await mounted(createAdminHandler({ prefix: '/_mesh', stacks, metrics: new MetricsRegistry() }));
  const withNext = await mounted(
    createAdminHandler({ stacks, metrics: new MetricsRegistry() }),
    (h) => (req, res) => h(req, res, () => res.writeHead(418).end()),
  );
  try {
    assert.equal(await rawStatus(alone.port, '//['), 'HTTP/1.1 400 Bad Request');
    assert.equal((await fetch(`${alone.url}/_mesh/live`, { signal: AbortSignal.timeout(5_000) })).status, 200);
    // Not a path of ours: the application decides, as for any other path that is not an admin route.
    assert.equal(await rawStatus(withNext.port, '//['), "HTTP/1.1 418 I'm a Teapot");
  } finally {
    await alone.close();
    await withNext.close();
  }
});

test('a throw inside dispatch answers 500 without its details, and the server keeps serving', async () => {
  const handler = createAdminHandler({ stacks: new StackRegistry(), metrics: new MetricsRegistry() });
  // An application wrapper whose request object throws when the handler reads its target.
  const app = await mounted(handler, (h) => (req, res) => {
    if (req.url !== '/boom') return h(req, res);
    const hostile = Object.create(req, { url: { get: () => assert.fail('secret detail') } }) as IncomingMessage;
    h(hostile, res);
  });
  try {
    const boom = await fetch(`${app.url}/boom`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(boom.status, 500);
    assert.doesNotMatch(await boom.text(), /secret/);
    assert.equal((await fetch(`${app.url}/live`, { signal: AbortSignal.timeout(5_000) })).status, 200);
  } finally {
    await app.close();
  }
});

test('a route that fails answers 500 without the error it failed with', async () => {
  const failing = {
    contentType: 'text/plain',
    registerMetric: () => {},
    getSingleMetric: () => undefined,
    removeSingleMetric: () => {},
    metrics: async () => {
      throw new Error('secret detail');
    },
  };
  const admin = await createAdminServer({ port: 0, stacks: new StackRegistry(), metrics: new MetricsRegistry(), prometheus: failing });
  try {
    const response = await fetch(`${admin.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(response.status, 500);
    assert.doesNotMatch(await response.text(), /secret/);
  } finally {
    await admin.close();
  }
});

test('/api/stats refuses a window it cannot use, naming window and the range allowed', async () => {
  const admin = await createAdminServer({ port: 0, stacks: new StackRegistry(), metrics: new MetricsRegistry() });
  try {
    for (const bad of ['abc', '-5', '0', '999', '3600001', '', 'Infinity', '1e400']) {
      const response = await fetch(`${admin.url}/api/stats?window=${bad}`, { signal: AbortSignal.timeout(5_000) });
      const body = (await response.json()) as { error: string };
      assert.equal(response.status, 400, `window=${bad}`);
      assert.match(body.error, /^window must be .*1000 to 3600000/, `window=${bad}: ${body.error}`);
    }
    for (const good of ['1000', '60000', '3600000']) {
      const response = await fetch(`${admin.url}/api/stats?window=${good}`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(response.status, 200, `window=${good}`);
      assert.equal(((await response.json()) as { windowMs: number }).windowMs, Number(good));
    }
    const plain = await fetch(`${admin.url}/api/stats`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(((await plain.json()) as { windowMs: number }).windowMs, 10_000, 'no window: the configured one');
  } finally {
    await admin.close();
  }
});

test('405 answers say which methods are allowed', async () => {
  const admin = await createAdminServer({ port: 0, stacks: new StackRegistry(), metrics: new MetricsRegistry() });
  try {
    for (const [method, path] of [
      ['POST', '/live'],
      ['OPTIONS', '/'],
      ['DELETE', '/stack'],
    ]) {
      const response = await fetch(`${admin.url}${path}`, { method, signal: AbortSignal.timeout(5_000) });
      await response.body?.cancel();
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get('allow'), 'GET, HEAD', `${method} ${path}`);
    }
  } finally {
    await admin.close();
  }
});

test('a layer description that throws while written out marks that layer, not the whole page', async () => {
  const stacks = new StackRegistry();
  const good: LayerDescription = { layer: 'balance', params: { kind: 'p2c' }, state: { endpoints: [{ address: '10.0.0.1:80' }] } };
  const getter = {
    layer: 'hostile',
    params: {
      get boom(): never {
        throw new Error('getter');
      },
    },
  };
  const toJsonThrows = { layer: 'circuit-breaker', params: {}, state: { toJSON: () => assert.fail('to json') } };
  stacks.add({ name: 'mixed', describe: () => [good, getter, toJsonThrows] });
  // A thrown value that cannot even be turned into a string.
  stacks.add({
    name: 'unprintable',
    describe: () => {
      throw Object.create(null);
    },
  });
  stacks.add({ name: 'not-a-list', describe: () => 'nope' as never });
  stacks.add({ name: 'fine', describe: () => [good] });
  const admin = await createAdminServer({ port: 0, stacks, metrics: new MetricsRegistry() });
  const get = async (path: string, method = 'GET') => {
    const response = await fetch(`${admin.url}${path}`, { method, signal: AbortSignal.timeout(5_000) });
    return { status: response.status, body: await response.text() };
  };
  try {
    const stack = await get('/stack');
    assert.equal(stack.status, 200);
    const doc = JSON.parse(stack.body) as { service: string; layers: { layer: string; error?: string }[] }[];
    const mixed = doc.find((s) => s.service === 'mixed')?.layers ?? [];
    assert.deepEqual(
      mixed.map((l) => l.layer),
      ['balance', 'hostile', 'circuit-breaker'],
    );
    assert.equal(mixed[0]?.error, undefined);
    assert.match(mixed[1]?.error ?? '', /getter/);
    assert.match(mixed[2]?.error ?? '', /to json/);
    assert.equal(doc.find((s) => s.service === 'unprintable')?.layers[0]?.layer, 'error');
    assert.equal(doc.find((s) => s.service === 'not-a-list')?.layers[0]?.layer, 'error');
    assert.equal(doc.find((s) => s.service === 'fine')?.layers[0]?.layer, 'balance');
    assert.equal((await get('/stack', 'HEAD')).status, 200);
    const endpoints = await get('/endpoints');
    assert.equal(endpoints.status, 200);
    assert.deepEqual(
      (JSON.parse(endpoints.body) as { service: string }[]).map((e) => e.service),
      ['mixed', 'fine'],
    );
    assert.equal((await get('/api/stats')).status, 200);
  } finally {
    await admin.close();
  }
});
