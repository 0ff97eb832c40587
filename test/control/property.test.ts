import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { validateMeshConfig } from '../../src/control/index.js';

const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();
const polluted = () => ['polluted', 'timeout', 'services', 'attempts'].filter((k) => k in ({} as object) || k in Object.prototype);

function rejectedWithMessages(raw: unknown): void {
  const result = validateMeshConfig(raw);
  assert.equal(result.ok, false, `accepted: ${String(JSON.stringify(raw)).slice(0, 200)}`);
  if (!result.ok) {
    assert.ok(result.problems.length > 0);
    for (const p of result.problems) assert.ok(typeof p.field === 'string' && p.field.length > 0 && p.message.length > 0);
  }
}

// Values no field accepts: wrong types, non-durations, lists of scalars, objects with unknown keys.
const DURATION_LIKE = /^\s*\d+(\.\d+)?(ns|us|µs|ms|s|m|h)\s*$/;
const badValue = fc.oneof(
  fc.integer({ min: -1e9, max: -1 }),
  fc.double({ noNaN: false }),
  fc.string().filter((text) => !DURATION_LIKE.test(text)),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { minLength: 1, maxLength: 3 }),
  fc.dictionary(
    fc.string({ minLength: 1 }).map((k) => `x-${k}`),
    fc.integer(),
    { minKeys: 1, maxKeys: 3 },
  ),
);
const field = fc.constantFrom(
  'timeout',
  'perTryTimeout',
  'retries',
  'retryBudget',
  'fault',
  'loadBalancer',
  'endpoints',
  'routes',
  'rateLimit',
);
const forbidden = fc.constantFrom('__proto__', 'constructor', 'prototype');

test('property: malformed documents are each rejected with messages, Object.prototype untouched', () => {
  // Any JSON whatsoever that lacks a services map.
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      fc.pre(!(v !== null && typeof v === 'object' && !Array.isArray(v) && 'services' in v));
      rejectedWithMessages(v);
    }),
    { numRuns: 1500 },
  );
  // A valid shape with one field replaced by a wrong value or an unknown field added.
  fc.assert(
    fc.property(field, badValue, fc.string({ minLength: 1, maxLength: 8 }), (f, value, extra) => {
      rejectedWithMessages({ services: { users: { [f]: value } } });
      rejectedWithMessages({ services: { users: { timeout: '1s', [`x${extra}`]: 1 } } });
    }),
    { numRuns: 1500 },
  );
  // Prototype-polluting keys anywhere, as JSON text, YAML text and parsed data.
  fc.assert(
    fc.property(forbidden, fc.jsonValue(), fc.integer({ min: 0, max: 3 }), (key, payload, depth) => {
      let inner = `{"${key}": ${JSON.stringify({ polluted: payload })}}`;
      for (let i = 0; i < depth; i++) inner = `{"users": ${inner}}`;
      const json = `{"services": ${inner}}`;
      rejectedWithMessages(json);
      rejectedWithMessages(JSON.parse(json));
      rejectedWithMessages(`services:\n  users:\n    ${key}:\n      polluted: 1\n`);
    }),
    { numRuns: 1000 },
  );
  // Random text: JSON-ish or YAML-ish garbage.
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      const result = validateMeshConfig(text);
      if (!result.ok) for (const p of result.problems) assert.ok(p.message.length > 0);
      else assert.deepEqual(Object.keys(result.value), ['services']);
    }),
    { numRuns: 1500 },
  );
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), protoBefore);
  assert.deepEqual(polluted(), []);
});
