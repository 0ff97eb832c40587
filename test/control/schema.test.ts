import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { meshConfigJsonSchema, meshValidator, validateMeshConfig } from '../../src/control/index.js';

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
