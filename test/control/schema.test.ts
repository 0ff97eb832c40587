import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { endpointsOf, meshConfigJsonSchema, meshValidator, validateMeshConfig } from '../../src/control/index.js';

const fields = (raw: unknown) => {
  const r = validateMeshConfig(raw);
  assert.equal(r.ok, false, 'expected a rejection');
  return r.ok ? [] : r.problems.map((p) => p.field);
};

test('the example config is valid and frozen', async () => {
  const r = validateMeshConfig(await readFile('examples/mesh.yaml'));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.equal(r.value.services.users?.retries?.attempts, 3);
  assert.equal(r.value.services.users?.timeout, '2s');
  assert.ok(Object.isFrozen(r.value.services.users?.retries));
});

test('every problem is reported with its path', () => {
  const problems = validateMeshConfig(`
services:
  users:
    timeout: 250
    perTryTimeout: 0ms
    retries: { attempts: -1, retryOn: ["5xx", "no way"], backoff: { base: 1s, max: 10ms } }
    retryBudget: { retryRatio: 2000, ttl: 1ms }
    fault: { abort: { percentage: 101, httpStatus: 99 } }
    loadBalancer: { simple: FASTEST }
    endpoints: [{ address: "nowhere" }]
    routes:
      "GET /x": { timeout: 1s, surprise: 1 }
  "bad name": {}
`);
  assert.equal(problems.ok, false);
  const got = problems.ok ? [] : problems.problems.map((p) => p.field).sort();
  assert.deepEqual(got, [
    'services.bad name',
    'services.users.endpoints.0.address',
    'services.users.fault.abort.httpStatus',
    'services.users.fault.abort.percentage',
    'services.users.loadBalancer.simple',
    'services.users.perTryTimeout',
    'services.users.retries.attempts',
    'services.users.retries.backoff.max',
    'services.users.retries.retryOn.1',
    'services.users.retryBudget.retryRatio',
    'services.users.retryBudget.ttl',
    'services.users.routes.GET /x',
    'services.users.timeout',
  ]);
  for (const p of problems.ok ? [] : problems.problems) assert.ok(p.message.length > 5, p.field);
});

test('unknown fields are rejected at every level', () => {
  assert.deepEqual(fields({ services: {}, extra: 1 }), ['(root)']);
  assert.deepEqual(fields({ services: { a: { retries: { attempts: 1, tries: 2 } } } }), ['services.a.retries']);
});

test('prototype-polluting keys are rejected before zod, with the other problems', () => {
  const text = '{"services":{"__proto__":{"timeout":"1s"},"a":{"constructor":{},"timeout":5}}}';
  const r = validateMeshConfig(text);
  assert.equal(r.ok, false);
  const got = r.ok ? [] : r.problems.map((p) => p.field).sort();
  assert.deepEqual(got, ['services.__proto__', 'services.a.constructor', 'services.a.timeout']);
  assert.equal(fields('services:\n  a:\n    prototype: {}\n')[0], 'services.a.prototype');
  assert.equal(({} as Record<string, unknown>).timeout, undefined);
});

test('oversized, deep, cyclic and non-plain documents are rejected', () => {
  const small = meshValidator({ maxBytes: 100 });
  const big = { services: { a: { timeout: `${'1'.repeat(200)}ms` } } };
  const r1 = small(big);
  assert.ok(!r1.ok && /more than the limit of 100 bytes/.test(r1.problems[0]?.message ?? ''));
  const r2 = small(JSON.stringify(big));
  assert.ok(!r2.ok && r2.problems[0]?.field === '(document)');
  let deep: unknown = {};
  for (let i = 0; i < 100; i++) deep = { a: deep };
  assert.match(JSON.stringify(validateMeshConfig({ services: deep })), /nested deeper than 32/);
  const cyclic: Record<string, unknown> = { services: {} };
  (cyclic.services as Record<string, unknown>).self = cyclic;
  assert.match(JSON.stringify(validateMeshConfig(cyclic)), /cycle/);
  assert.match(JSON.stringify(validateMeshConfig({ services: { a: { timeout: new Date() } } })), /plain JSON/);
  assert.match(JSON.stringify(validateMeshConfig('a: *x')), /not valid YAML/);
  assert.match(JSON.stringify(validateMeshConfig('{"services":')), /not valid JSON/);
  assert.match(JSON.stringify(validateMeshConfig(new Uint8Array([0xff, 0xfe]))), /UTF-8/);
});

test('a non-finite number (YAML .inf, .nan) is one problem among the others, not the only one reported', () => {
  const r = validateMeshConfig('services:\n  users:\n    timeout: soon\n    retries: { attempts: .inf }\n    extra: 1\n');
  assert.equal(r.ok, false);
  const problems = r.ok ? [] : r.problems;
  assert.deepEqual(problems.map((p) => `${p.field}: ${p.message}`).sort(), [
    'services.users.retries.attempts: must be a finite number (got Infinity)',
    'services.users.timeout: must be a duration string such as "250ms" or "10s", from 0ms to 2147483647ms (got "soon")',
    'services.users: unknown field "extra"',
  ]);
  // Parsed data too, and NaN; the non-finite field is reported once, in its own words.
  assert.deepEqual(fields({ services: { a: { timeout: Number.NaN, retries: { attempts: -1 } } }, more: true }).sort(), [
    '(root)',
    'services.a.retries.attempts',
    'services.a.timeout',
  ]);
  // Alone, it is still a rejection.
  assert.deepEqual(fields({ services: { a: { retries: { attempts: Number.POSITIVE_INFINITY } } } }), ['services.a.retries.attempts']);
});

test('the published JSON Schema is the zod definition', async () => {
  const published = JSON.parse(await readFile('schema/mesh-config.schema.json', 'utf8'));
  const { $id: _id, title: _title, ...rest } = published;
  assert.deepEqual(rest, JSON.parse(JSON.stringify(meshConfigJsonSchema())));
  assert.equal(published.additionalProperties, false);
});

/** The published JSON Schema's node for a service's `path` (property names, `[]` for an array's items). */
function publishedNode(...path: string[]): Record<string, any> {
  let node: Record<string, any> = meshConfigJsonSchema() as Record<string, any>;
  node = node.properties.services.additionalProperties;
  for (const key of path) node = key === '[]' ? node.items : node.properties[key];
  return node;
}

/** Whether a string schema of the published JSON Schema takes `value` (its patterns and lengths). */
function publishedTakes(node: Record<string, any>, value: string): boolean {
  const patterns = [node.pattern, ...(node.allOf ?? []).map((n: { pattern?: string }) => n.pattern)].filter((p) => p !== undefined);
  if (node.maxLength !== undefined && value.length > node.maxLength) return false;
  return patterns.every((p: string) => new RegExp(p, 'u').test(value));
}

const endpointAt = (address: string) => ({ services: { a: { endpoints: [{ address }] } } });

test('an endpoint address is host:port, an IPv6 host only in brackets, a port from 0 to 65535', () => {
  const published = publishedNode('endpoints', '[]', 'address');
  for (const address of ['a:b:80', 'host]:81', '[x:82', '::1:83', '[::1:84', 'h:65536', 'h:99999', 'h:', ':80', 'h:80 ']) {
    assert.deepEqual(fields(endpointAt(address)), ['services.a.endpoints.0.address'], address);
    assert.equal(publishedTakes(published, address), false, `the JSON Schema takes ${address}`);
  }
  const r = validateMeshConfig(endpointAt('a:b:80'));
  assert.match(r.ok ? '' : (r.problems[0]?.message ?? ''), /^must be "host:port"/);
  const taken: [string, string, number][] = [
    ['10.0.0.1:80', '10.0.0.1', 80],
    ['[::1]:8080', '::1', 8080],
    ['[fe80::1:2]:0', 'fe80::1:2', 0],
    ['users.svc_1-a:65535', 'users.svc_1-a', 65535],
  ];
  for (const [address, host, port] of taken) {
    const ok = validateMeshConfig(endpointAt(address));
    assert.ok(ok.ok, `${address}: ${JSON.stringify(!ok.ok && ok.problems)}`);
    assert.deepEqual(endpointsOf(ok.value, 'a'), [{ address: host, port }]);
    assert.equal(publishedTakes(published, address), true, address);
  }
});

test('an endpoint given twice in a service (the same host and port) is refused', () => {
  const twice = (...addresses: string[]) => ({ services: { a: { endpoints: addresses.map((address) => ({ address })) } } });
  assert.deepEqual(fields(twice('10.0.0.1:80', '10.0.0.2:80', '10.0.0.1:80')), ['services.a.endpoints.2.address']);
  assert.deepEqual(fields(twice('Users.local:8080', 'users.LOCAL:08080')), ['services.a.endpoints.1.address']);
  const r = validateMeshConfig(twice('[::1]:80', '[::1]:80'));
  assert.deepEqual(r.ok ? [] : r.problems, [
    { field: 'services.a.endpoints.1.address', message: 'repeats the host and port of endpoints.0 (got "[::1]:80")' },
  ]);
  assert.ok(validateMeshConfig(twice('10.0.0.1:80', '10.0.0.1:81', '[::1]:80')).ok);
});

test('what the layers would refuse and the schema can say is in the published JSON Schema', () => {
  // An endpoint weight of 0: discovery takes weights above 0.
  assert.deepEqual(fields({ services: { a: { endpoints: [{ address: 'h:80', weight: 0 }] } } }), ['services.a.endpoints.0.weight']);
  const weight = publishedNode('endpoints', '[]', 'weight');
  assert.ok(weight.minimum === 1 || weight.exclusiveMinimum === 0, JSON.stringify(weight));
  // A retryOn string with an empty word.
  const published = publishedNode('retries', 'retryOn').anyOf.find((n: { type: string }) => n.type === 'string');
  for (const retryOn of ['5xx,,reset', 'reset,', ',reset', ' ', '', '5xx reset', 'a'.repeat(513)]) {
    const got = fields({ services: { a: { retries: { attempts: 1, retryOn } } } });
    assert.deepEqual(got, ['services.a.retries.retryOn'], JSON.stringify(retryOn));
    assert.equal(publishedTakes(published, retryOn), false, `the JSON Schema takes ${JSON.stringify(retryOn)}`);
  }
  for (const retryOn of ['5xx', ' 5XX , reset,gateway-error ', 'retriable-4xx,connect-failure']) {
    assert.ok(validateMeshConfig({ services: { a: { retries: { attempts: 1, retryOn } } } }).ok, retryOn);
    assert.equal(publishedTakes(published, retryOn), true, retryOn);
  }
  const word = publishedNode('retries', 'retryOn').anyOf.find((n: { type: string }) => n.type === 'array').items;
  assert.equal(publishedTakes(word, '5XX'), true, 'the JSON Schema refuses upper case the store takes');
});

test('a backend named __proto__, constructor or prototype is refused by the schema', () => {
  const published = publishedNode('backendRefs', '[]', 'name');
  for (const name of ['__proto__', 'constructor', 'prototype']) {
    const doc = {
      services: {
        a: {
          backendRefs: [
            { name: 'primary', weight: 1 },
            { name, weight: 1 },
          ],
        },
      },
    };
    const r = validateMeshConfig(doc);
    assert.deepEqual(r.ok ? [] : r.problems, [
      { field: 'services.a.backendRefs.1.name', message: `must not be "__proto__", "constructor" or "prototype" (got "${name}")` },
    ]);
    assert.equal(publishedTakes(published, name), false, name);
    const route = validateMeshConfig({ services: { a: { routes: { r: { backendRefs: [{ name, weight: 1 }] } } } } });
    assert.deepEqual(route.ok ? [] : route.problems.map((p) => p.field), ['services.a.routes.r.backendRefs.0.name']);
  }
  assert.equal(publishedTakes(published, 'proto'), true);
});

test('an endpoint in brackets must hold an IPv6 address; service, route and metadata names refuse the reserved keys in the published schema too', async () => {
  const address = publishedNode('endpoints', '[]', 'address');
  for (const bad of ['[1.2.3.4]:80', '[abc]:80', '[..]:80']) {
    const r = validateMeshConfig({ services: { a: { endpoints: [{ address: bad }] } } });
    assert.equal(r.ok, false, bad);
    assert.deepEqual(r.ok ? [] : r.problems.map((p) => p.field), ['services.a.endpoints.0.address'], bad);
  }
  // The published pattern cannot check an IPv6 address, but it refuses brackets without a colon.
  for (const bad of ['[1.2.3.4]:80', '[..]:80']) assert.equal(publishedTakes(address, bad), false, bad);
  for (const good of ['[::1]:80', '[FE80::1]:8080', '[::ffff:1.2.3.4]:65535']) {
    assert.equal(validateMeshConfig({ services: { a: { endpoints: [{ address: good }] } } }).ok, true, good);
    assert.equal(publishedTakes(address, good), true, good);
  }
  const published = JSON.parse(await readFile(new URL('../../schema/mesh-config.schema.json', import.meta.url), 'utf8'));
  const services = published.properties.services;
  const patterns = [services.propertyNames, services.additionalProperties.properties.routes.propertyNames].map((names) =>
    JSON.stringify(names),
  );
  for (const names of patterns) assert.match(names, /__proto__/, 'the reserved keys are refused by the published schema');
});
