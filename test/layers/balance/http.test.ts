import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/index.js';
import type { CallContext } from '../../../src/core/context.js';
import { type Endpoint, StaticDiscovery } from '../../../src/discovery/index.js';
import type { BalanceStrategy } from '../../../src/layers/balance/index.js';
import { load, poolFactory, type Reply, replyClassifier, seeded, startServer, type TestServer } from './helpers.js';

let servers: TestServer[] = [];
before(async () => {
  servers = [await startServer('fast-1', 10), await startServer('fast-2', 10), await startServer('slow', 100)];
});
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const endpointsOf = (list: readonly TestServer[]) => list.map((s) => ({ address: '127.0.0.1', port: s.port, metadata: { name: s.name } }));

async function shares(strategy: BalanceStrategy, total: number): Promise<{ shares: number[]; opened: number; closed: number }> {
  const pools = poolFactory();
  const get = new ServiceBuilder({ name: 'users', registry: false, random: seeded(7), classifier: replyClassifier }).balance(
    new StaticDiscovery(endpointsOf(servers)),
    pools.factory,
    { strategy },
  );
  // Warm up first: until the first answer from each endpoint, every estimate is the 30 ms seed.
  await load(60, 4, () => get('/'));
  for (const s of servers) s.hits = 0;
  const results = await load(total, 4, () => get('/'));
  assert.equal(results.filter((r) => r.status === 'rejected').length, 0);
  await get.close();
  return { shares: servers.map((s) => s.hits / total), opened: pools.opened.length, closed: pools.closed.length };
}

test('P2C over peak EWMA sends a 10x slower endpoint under 10% of calls', async () => {
  const { shares: share, opened, closed } = await shares('p2c-peak-ewma', 600);
  const slow = share[2] as number;
  if (process.env.DEBUG_SHARES) console.log(share);
  assert.ok(slow < 0.1, `slow endpoint got ${slow * 100}% of calls`);
  assert.ok(slow > 0, 'the slow endpoint is still tried');
  assert.equal(opened, 3);
  assert.equal(closed, 3, 'every endpoint pool is closed with the balancer');
});

test('round robin sends about a third to each, the slow one included', async () => {
  const { shares: share } = await shares('round-robin', 300);
  for (const s of share) assert.ok(Math.abs(s - 1 / 3) < 0.01, `share ${s}`);
});

test('adding and removing endpoints during load loses no call, and removed pools close after draining', async () => {
  const extra = [await startServer('extra-1', 2), await startServer('extra-2', 2)];
  try {
    const pools = poolFactory();
    const discovery = new StaticDiscovery(endpointsOf(servers.slice(0, 2)));
    const bodies = new Set<string>();
    const get = new ServiceBuilder({ registry: false, random: seeded(3), classifier: replyClassifier }).balance(discovery, pools.factory);
    const [a, b] = servers.slice(0, 2).map((s) => `127.0.0.1:${s.port}`);
    const results = await load(400, 16, async (i) => {
      // Churn while calls are in flight: grow, shrink, replace the whole set.
      if (i === 50) discovery.add(...endpointsOf(extra));
      if (i === 120) discovery.remove(a as string);
      if (i === 200) discovery.set(endpointsOf(extra));
      if (i === 300) discovery.add(...endpointsOf(servers.slice(0, 1)));
      const reply: Reply = await get('/');
      bodies.add(reply.body);
      assert.equal(reply.status, 200);
      return reply;
    });
    assert.equal(results.length, 400);
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason),
      [],
    );
    assert.ok(bodies.has('extra-1') && bodies.has('extra-2') && bodies.has('fast-1'));
    // a and b were removed (then a re-added as a new endpoint); their old pools closed once drained.
    assert.deepEqual(pools.closed.sort(), [a, b].sort());
    await get.close();
    assert.equal(pools.closed.length, pools.opened.length);
    assert.equal(discovery.listenerCount, 0);
  } finally {
    await Promise.all(extra.map((s) => s.close()));
  }
});

test('an endpoint that starts failing is ejected, and probed back once healthy (short real backoff)', async () => {
  const pools = poolFactory();
  const sick = servers[0] as TestServer;
  const ejected: string[] = [];
  const restored: string[] = [];
  const get = new ServiceBuilder({ registry: false, random: seeded(11), classifier: replyClassifier }).balance(
    new StaticDiscovery(endpointsOf(servers.slice(0, 2))),
    pools.factory,
    { strategy: 'round-robin', failureAccrual: { consecutiveFailures: 3, backoff: { min: '400ms', max: '1s', jitter: 0 } } },
  );
  get.events.on('endpoint-ejected', (e) => ejected.push(e.endpoint));
  get.events.on('endpoint-restored', (e) => restored.push(e.endpoint));
  const sickId = `127.0.0.1:${sick.port}`;
  try {
    sick.status = 503;
    for (let i = 0; i < 6; i++) await get('/');
    assert.deepEqual(ejected, [sickId]);
    const before = sick.hits;
    for (let i = 0; i < 10; i++) assert.equal((await get('/')).status, 200);
    assert.equal(sick.hits, before, 'no call reaches an ejected endpoint');
    sick.status = 200;
    await new Promise((resolve) => setTimeout(resolve, 450));
    await get('/'); // the single probe
    assert.equal(sick.hits, before + 1);
    assert.deepEqual(restored, [sickId]);
    const dump = (get.stack as unknown as { endpoints(): { id: string; state: string }[] }).endpoints();
    assert.equal(dump.find((e) => e.id === sickId)?.state, 'active');
  } finally {
    sick.status = 200;
    await get.close();
  }
});

test('endpoint functions get the caller arguments and ctx.endpoint names the pick', async () => {
  const seen: string[] = [];
  const get = new ServiceBuilder({ registry: false }).balance(
    new StaticDiscovery([{ address: '10.0.0.9', port: 80 }]),
    (endpoint: Endpoint) => async (a: number, b: number, ctx: CallContext) => {
      seen.push(`${ctx.endpoint} ${a + b}`);
      return endpoint.address;
    },
  );
  assert.equal(await get(1, 2), '10.0.0.9');
  assert.deepEqual(seen, ['10.0.0.9:80 3']);
  await get.close();
});
