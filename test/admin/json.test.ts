import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAdminServer, toJson } from '../../src/admin/index.js';
import { MetricsRegistry, StackRegistry } from '../../src/index.js';

test('toJson writes an object reached twice along different paths both times', () => {
  const endpoints = [{ address: '10.0.0.1', port: 80 }];
  const shared = { retries: 2 };
  const doc = JSON.parse(toJson({ a: { endpoints, shared }, b: { endpoints, shared }, list: [shared, shared] }));
  assert.deepEqual(doc, {
    a: { endpoints: [{ address: '10.0.0.1', port: 80 }], shared: { retries: 2 } },
    b: { endpoints: [{ address: '10.0.0.1', port: 80 }], shared: { retries: 2 } },
    list: [{ retries: 2 }, { retries: 2 }],
  });
});

test('toJson marks true cycles, also through maps, sets and arrays', () => {
  const node: Record<string, unknown> = { name: 'root' };
  node.self = node;
  node.child = { parent: node, sibling: { name: 'leaf' } };
  const map = new Map<string, unknown>([['k', 1]]);
  map.set('me', map);
  const set = new Set<unknown>(['x']);
  set.add(set);
  const list: unknown[] = [1];
  list.push(list);
  assert.deepEqual(JSON.parse(toJson({ node, map, set, list })), {
    node: { name: 'root', self: '[circular]', child: { parent: '[circular]', sibling: { name: 'leaf' } } },
    map: { k: 1, me: '[circular]' },
    set: ['x', '[circular]'],
    list: [1, '[circular]'],
  });
});

test('toJson keeps what JSON cannot hold readable', () => {
  const doc = JSON.parse(
    toJson({
      inf: Number.POSITIVE_INFINITY,
      nan: Number.NaN,
      big: 10n,
      fn: function named() {},
      error: new TypeError('bad'),
      at: new Date(0),
    }),
  );
  assert.deepEqual(doc, {
    inf: 'Infinity',
    nan: null,
    big: '10',
    fn: '[function named]',
    error: { name: 'TypeError', message: 'bad' },
    at: '1970-01-01T00:00:00.000Z',
  });
});

test('/api/stats describes each stack once', async () => {
  const stacks = new StackRegistry();
  let describes = 0;
  stacks.add({
    name: 'counted',
    describe: () => {
      describes++;
      return [
        { layer: 'circuit-breaker', params: {}, state: { state: 'closed' } },
        { layer: 'balance', params: {}, state: { endpoints: [{ address: '10.0.0.1:80', state: 'active' }] } },
      ];
    },
  });
  const admin = await createAdminServer({ port: 0, stacks, metrics: new MetricsRegistry() });
  try {
    const response = await fetch(`${admin.url}/api/stats`, { signal: AbortSignal.timeout(5_000) });
    const doc = (await response.json()) as { endpoints: { service: string }[]; breakers: { service: string; state: unknown }[] };
    assert.deepEqual(
      doc.endpoints.map((e) => e.service),
      ['counted'],
    );
    assert.deepEqual(doc.breakers, [{ service: 'counted', layer: 'circuit-breaker', state: 'closed' }]);
    assert.equal(describes, 1);
  } finally {
    await admin.close();
  }
});

test('toJson stops writing shared objects again past its budget: a chain of objects each holding the next twice answers', () => {
  // 2^30 paths through 30 objects: written in full, the string would be too long for V8.
  let node: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < 30; i++) node = { a: node, b: node };
  const text = toJson(node);
  assert.ok(text.includes('"[truncated]"'));
  assert.ok(text.length < 20_000_000, `${text.length} characters`);
  assert.doesNotThrow(() => JSON.parse(text));
});

test('toJson counts a shared list by its items: a chain ending in a list of 2,000 strings answers too', () => {
  let node: unknown = Array.from({ length: 2000 }, (_, i) => `endpoint-${i}`);
  for (let i = 0; i < 17; i++) node = { a: node, b: node };
  const text = toJson(node);
  assert.ok(text.includes('"[truncated]"'));
  assert.ok(text.length < 20_000_000, `${text.length} characters`);
});

test('toJson charges long strings and keys by their length: chains ending in a shared 20,000-character string or key answer too', () => {
  let keyed: unknown = { ['k'.repeat(20_000)]: 1 };
  for (let i = 0; i < 20; i++) keyed = { a: keyed, b: keyed };
  assert.ok(toJson(keyed).includes('"[truncated]"'));
  let node: unknown = { s: 'x'.repeat(20_000) };
  for (let i = 0; i < 20; i++) node = { a: node, b: node };
  const text = toJson(node);
  assert.ok(text.includes('"[truncated]"'));
  assert.ok(text.length < 50_000_000, `${text.length} characters`);
});

test('one report shares one budget: big descriptions past it are marked, not each written up to its own budget', async () => {
  let reads = 0;
  // One list of 50,000 endpoints shared by 160 layer descriptions, each endpoint counting reads.
  const endpoints = Array.from({ length: 50_000 }, (_, i) => ({
    get address() {
      reads++;
      return `10.0.${i >> 8}.${i & 255}:80`;
    },
  }));
  const stacks = new StackRegistry();
  for (let s = 0; s < 80; s++) {
    stacks.add({
      name: `svc-${s}`,
      describe: () => [
        { layer: 'balance', params: {}, state: { endpoints } },
        { layer: 'circuit-breaker', params: {}, state: { endpoints } },
      ],
    });
  }
  const admin = await createAdminServer({ port: 0, stacks, metrics: new MetricsRegistry() });
  try {
    const response = await fetch(`${admin.url}/stack`, { signal: AbortSignal.timeout(60_000) });
    assert.equal(response.status, 200);
    const doc = (await response.json()) as { service: string; layers: { layer: string; error?: string }[] }[];
    assert.equal(doc.length, 80, 'every stack is listed');
    const marked = doc.flatMap((s) => s.layers).filter((l) => typeof l === 'object' && l.error?.startsWith('truncated'));
    assert.ok(marked.length > 100, `layers past the budget are marked (${marked.length})`);
    assert.equal(marked[0]?.layer, 'balance', 'a marked layer keeps its name');
    // Bounded by the one budget (200,000 values) for the copy and again for the answer: well
    // under the 8,000,000 reads of writing every layer up to a budget of its own.
    assert.ok(reads < 1_000_000, `${reads} endpoint reads for one report`);
  } finally {
    await admin.close();
  }
});
