// The store ACKs only what the layers will take: a document the schema accepts but a layer would
// refuse (its defaults, how it reads a value) is NACKed, naming the document's field.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { ControlServer, configured, createMeshStore, type MeshConfig, validateMeshConfig } from '../../src/control/index.js';
import { serviceSchema } from '../../src/control/schema.js';
import { LAYER_SECTIONS, type LayerSection, layerProblems } from '../../src/control/selectors.js';
import { type Endpoint, StaticDiscovery } from '../../src/discovery/index.js';
import { closeOpened, startClients, TOKEN, track, until } from './helpers.js';

afterEach(closeOpened);

const good = { services: { users: { timeout: '1s', retries: { attempts: 1 } } } };

/** Delivers `doc` to a store holding {@link good}; asserts it is NACKed and v1 stays. */
async function refused(doc: unknown): Promise<{ field: string; message: string }[]> {
  const store = track(await createMeshStore({ initial: good as MeshConfig }));
  assert.equal(store.deliver({ version: 'v1', raw: good }).applied, true);
  const verdict = store.deliver({ version: 'bad', raw: doc });
  assert.equal(verdict.applied, false, `expected a NACK of ${JSON.stringify(doc)}`);
  assert.equal(store.version, 'v1');
  assert.equal(store.current.value.services.users?.timeout, '1s');
  assert.equal(store.lastRejected?.version, 'bad');
  return verdict.applied ? [] : verdict.problems.map((p) => ({ field: p.field, message: p.message }));
}

const users = (svc: Record<string, unknown>) => ({ services: { users: svc } });

test('an empty word in retryOn is refused as the retry layer would (by the schema)', async () => {
  const problems = await refused(users({ retries: { attempts: 2, retryOn: '5xx,,reset' } }));
  assert.deepEqual(
    problems.map((p) => p.field),
    ['services.users.retries.retryOn'],
  );
  assert.match(problems[0]?.message ?? '', /^must be a list of conditions/);
});

test('a backoff max below the default base is refused, naming the base in the document', async () => {
  const problems = await refused(users({ retries: { attempts: 2, backoff: { max: '10ms' } } }));
  assert.deepEqual(problems, [
    { field: 'services.users.retries.backoff.max', message: 'must be at least retries.backoff.base (25ms) (got 10ms)' },
  ]);
});

test("a maxPenalty below the breaker's default minimum is refused", async () => {
  const problems = await refused(users({ failureAccrual: { maxFailures: 5, maxPenalty: '500ms' } }));
  assert.deepEqual(problems, [
    { field: 'services.users.failureAccrual.maxPenalty', message: 'must be at least failureAccrual.minPenalty (1000ms) (got 500ms)' },
  ]);
});

test('a split with no weight above 0, or a backend named twice, is refused', async () => {
  assert.deepEqual(await refused(users({ backendRefs: [{ name: 'primary', weight: 0 }] })), [
    { field: 'services.users.backendRefs', message: 'must give at least one backend a weight above 0' },
  ]);
  const twice = await refused(
    users({
      backendRefs: [
        { name: 'primary', weight: 1 },
        { name: 'primary', weight: 2 },
      ],
    }),
  );
  assert.deepEqual(
    twice.map((p) => p.field),
    ['services.users.backendRefs.1.name'],
  );
});

test('endpoints discovery would refuse (a port above 65535, weight 0) are refused', async () => {
  const problems = await refused(users({ endpoints: [{ address: '10.0.0.1:99999' }, { address: '10.0.0.2:80', weight: 0 }] }));
  assert.deepEqual(problems.map((p) => p.field).sort(), ['services.users.endpoints.0.address', 'services.users.endpoints.1.weight']);
});

test("a route's own section is blamed on the route; one it inherits, once on the service", async () => {
  const problems = await refused(
    users({
      retries: { attempts: 1, backoff: { max: '1ms' } },
      routes: { 'GET /a': { perTryTimeout: '1s' }, 'GET /b': { retries: { attempts: 1, backoff: { max: '2ms' } } } },
    }),
  );
  assert.deepEqual(problems.map((p) => p.field).sort(), [
    'services.users.retries.backoff.max',
    'services.users.routes.GET /b.retries.backoff.max',
  ]);
});

test("a layer check that throws something else is a problem, blamed on the route when the section is the route's own", () => {
  const broken: LayerSection = {
    ...(LAYER_SECTIONS.find((s) => s.layer === 'timeout') as LayerSection),
    check: () => {
      throw new TypeError('boom');
    },
  };
  const doc = validateMeshConfig(users({ routes: { 'GET /a': { timeout: '1s' }, 'GET /b': { perTryTimeout: '1s' } } }));
  assert.ok(doc.ok);
  assert.deepEqual(layerProblems(doc.value, [broken]), [
    { field: 'services.users.routes.GET /a', message: 'could not be checked by the timeout layer: TypeError: boom' },
  ]);
  // Inherited by both routes: once, at the service.
  const inherited = validateMeshConfig(users({ timeout: '1s', routes: { 'GET /a': {}, 'GET /b': { perTryTimeout: '1s' } } }));
  assert.ok(inherited.ok);
  assert.deepEqual(layerProblems(inherited.value, [broken]), [
    { field: 'services.users', message: 'could not be checked by the timeout layer: TypeError: boom' },
  ]);
});

test('every section of a service is checked by the layer it feeds', () => {
  // A new section without a layer check would be ACKed unchecked: list it here or in LAYER_SECTIONS.
  const notLayers = new Set(['routes']);
  const covered = new Set(LAYER_SECTIONS.flatMap((s) => Object.values(s.fields).map((to) => to.split('.')[0])));
  for (const key of Object.keys(serviceSchema.shape)) {
    assert.ok(covered.has(key) || notLayers.has(key), `section "${key}" is fed to no layer check`);
  }
  // Every selector's output for a full document is what its layer takes.
  const doc = validateMeshConfig({
    services: {
      users: {
        timeout: '2s',
        perTryTimeout: '500ms',
        retries: { attempts: 3, retryOn: 'retryable, reset', backoff: { base: '10ms', max: '100ms' } },
        retryBudget: { retryRatio: 0.2, minRetriesPerSecond: 10, ttl: '10s' },
        fault: { delay: { percentage: 1, fixedDelay: '5ms' }, abort: { percentage: 1, httpStatus: 503 } },
        failureAccrual: { maxFailures: 3, minPenalty: '100ms', maxPenalty: '1s', jitterRatio: 0.1 },
        concurrencyLimit: { maxConcurrent: 5, maxPending: 1 },
        rateLimit: { maxTokens: 5, tokensPerFill: 5, fillInterval: '1s' },
        loadBalancer: { simple: 'RANDOM' },
        endpoints: [{ address: '[::1]:8080', weight: 2 }],
        backendRefs: [{ name: 'primary', weight: 1 }],
        routes: { 'GET /x': { timeout: '1s' } },
      },
    },
  });
  assert.ok(doc.ok, JSON.stringify(!doc.ok && doc.problems));
  for (const section of LAYER_SECTIONS) {
    const options = section.select(doc.value, 'users');
    assert.notEqual(options, undefined, section.layer);
    assert.doesNotThrow(() => section.check(options, section.layer), section.layer);
  }
});

test('loadBalancer and backendRefs reach the balance and split layers', async () => {
  const doc = (simple: string, canary: number) =>
    users({
      loadBalancer: { simple },
      backendRefs: [
        { name: 'primary', weight: 100 - canary },
        { name: 'canary', weight: canary },
      ],
    });
  const store = track(await createMeshStore({ initial: doc('ROUND_ROBIN', 0) as MeshConfig }));
  const mesh = configured(store, 'users');
  assert.deepEqual(mesh.balance.select(store.current.value), { strategy: 'round-robin' });
  const canary = new ServiceBuilder({ name: 'canary', registry: false }).build({ call: async () => 'canary' });
  const call = track(new ServiceBuilder({ name: 'users', registry: false }).split({ canary }, mesh.split).service(async () => 'primary'));
  assert.equal(await call(), 'primary');
  assert.equal(store.deliver({ version: 'v2', raw: doc('LEAST_REQUEST', 100) }).applied, true);
  assert.equal(await call(), 'canary');
  assert.deepEqual(mesh.balance.select(store.current.value), { strategy: 'p2c-least-request' });
});

test("a document's loadBalancer switches the strategy live and keeps the builder's other balance options", async () => {
  const store = track(await createMeshStore({ initial: users({ timeout: '1s' }) as MeshConfig }));
  const mesh = configured(store, 'users', {
    fallback: { balance: { strategy: 'round-robin', failureAccrual: false, panicThreshold: 0.2, peakEwma: { defaultRtt: '5ms' } } },
  });
  const discovery = new StaticDiscovery([{ address: '10.0.0.1', port: 80 }]);
  const call = track(
    new ServiceBuilder({ name: 'users', registry: false }).balance(discovery, (e: Endpoint) => async () => e.id, mesh.balance),
  );
  const params = () => call.describe().find((d) => d.layer === 'balance')?.params;
  const kept = { peakEwma: { defaultRtt: '5ms', decay: '10s' }, failureAccrual: false, panicThreshold: 0.2 };
  assert.deepEqual(params(), { strategy: 'round-robin', ...kept });
  assert.equal(store.deliver({ version: 'v2', raw: users({ timeout: '1s', loadBalancer: { simple: 'LEAST_REQUEST' } }) }).applied, true);
  assert.equal(await call(), '10.0.0.1:80');
  assert.deepEqual(params(), { strategy: 'p2c-least-request', ...kept });
  // Leaving the section out again is the fallback, whole.
  assert.equal(store.deliver({ version: 'v3', raw: users({ timeout: '1s' }) }).applied, true);
  assert.deepEqual(params(), { strategy: 'round-robin', ...kept });
});

test("a document's failureAccrual sets the breaker's consecutive failures and backoff live and keeps the builder's failure-rate window", async () => {
  const store = track(await createMeshStore({ initial: users({ timeout: '1s' }) as MeshConfig }));
  const failureRate = { threshold: 0.5, minimumVolume: 10, window: { calls: 20 } };
  const backoff = { min: '10s', max: '5m', multiplier: 3, jitter: 0 } as const;
  const mesh = configured(store, 'users', { fallback: { circuitBreaker: { consecutiveFailures: 3, failureRate, backoff } } });
  const call = track(new ServiceBuilder({ name: 'users', registry: false }).circuitBreaker(mesh.circuitBreaker).service(async () => 'ok'));
  const params = () => call.describe().find((d) => d.layer === 'circuit-breaker')?.params as Record<string, unknown>;
  assert.equal(params().consecutiveFailures, 3);
  const rateBefore = params().failureRate;
  assert.notEqual(rateBefore, false);
  assert.equal(store.deliver({ version: 'v2', raw: users({ timeout: '1s', failureAccrual: { maxFailures: 9 } }) }).applied, true);
  assert.equal(await call(), 'ok');
  assert.equal(params().consecutiveFailures, 9);
  assert.deepEqual(params().failureRate, rateBefore, "the builder's failure-rate window stays");
  const backoffBefore = params().backoff;
  assert.deepEqual(backoffBefore, { min: '10s', max: '300s', jitter: 0 });
  // The document's penalties replace the builder's bounds together (never a min from one and a max
  // from the other, which the breaker could refuse after the ACK): the document's min comes with
  // the default max, not the builder's.
  const rejected: unknown[] = [];
  call.events.on('param-rejected', (e) => rejected.push(e));
  const v3 = users({ timeout: '1s', failureAccrual: { maxFailures: 9, minPenalty: '30s' } });
  assert.equal(store.deliver({ version: 'v3', raw: v3 }).applied, true);
  assert.equal(await call(), 'ok');
  assert.deepEqual(params().backoff, { min: '30s', max: '60s', jitter: 0 }, "the builder's jitter stays");
  assert.equal(params().consecutiveFailures, 9);
  assert.deepEqual(rejected, []);
  // A document that sets only the jitter keeps the builder's bounds.
  const v4 = users({ timeout: '1s', failureAccrual: { maxFailures: 9, jitterRatio: 0.2 } });
  assert.equal(store.deliver({ version: 'v4', raw: v4 }).applied, true);
  assert.equal(await call(), 'ok');
  assert.deepEqual(params().backoff, { min: '10s', max: '300s', jitter: 0.2 });
  assert.equal(store.deliver({ version: 'v5', raw: v3 }).applied, true);
  // A builder's max below the document's min: merged field by field the breaker refused it after
  // the ACK (and kept 3 consecutive failures).
  const tight = configured(store, 'users', {
    fallback: { circuitBreaker: { consecutiveFailures: 3, backoff: { min: '1s', max: '10s' } } },
  });
  const tightCall = track(
    new ServiceBuilder({ name: 'users', registry: false }).circuitBreaker(tight.circuitBreaker).service(async () => 'ok'),
  );
  const tightRejected: unknown[] = [];
  tightCall.events.on('param-rejected', (e) => tightRejected.push(e));
  assert.equal(await tightCall(), 'ok');
  const tightParams = tightCall.describe().find((d) => d.layer === 'circuit-breaker')?.params as Record<string, unknown>;
  assert.equal(tightParams.consecutiveFailures, 9);
  assert.deepEqual(tightRejected, []);
});

test('a push a layer would refuse is NACKed end to end through the control stream', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 500, log: () => {} }));
  const url = await server.listen();
  server.publish(good, 'good');
  const [client] = await startClients(url, 1);
  const store = client!.store;
  await until(() => store.version === 'good', 'first version');
  const bad = users({ timeout: '1s', retries: { attempts: 1, backoff: { max: '10ms' } } });
  // The server checks what it publishes as its clients do.
  const own = server.publish(bad, 'refused-at-server');
  assert.equal(own.applied, false);
  // As a server of an older version would, without the layers' checks.
  server.publish(bad, 'bad', { unchecked: true });
  await until(() => server.clients()[0]?.rejectedVersion === 'bad', 'NACK at the server');
  const state = server.clients()[0]!;
  assert.equal(state.appliedVersion, 'good');
  assert.deepEqual(
    state.problems?.map((p) => p.field),
    ['services.users.retries.backoff.max'],
  );
  assert.equal(store.version, 'good');
  assert.equal(store.lastRejected?.version, 'bad');
});
