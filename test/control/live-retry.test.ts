import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder } from '../../src/builder/index.js';
import { configured, createMeshStore } from '../../src/control/index.js';
import type { CallContext } from '../../src/core/context.js';

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const budget = { retryRatio: 1000, minRetriesPerSecond: 1_000_000 };
const doc = (attempts: number) => ({
  services: { users: { retries: { attempts, retryOn: ['reset'], backoff: { base: '1ms', max: '2ms' } }, retryBudget: budget } },
});

test('retries changed from 0 to 3 while calls flow: next calls retry, in-flight calls keep theirs', async () => {
  const store = await createMeshStore({ initial: doc(0) });
  const invocations = new Map<number, number[]>();
  let gate: Promise<void> = Promise.resolve();
  // Flaky: the first two attempts of every call fail with a connection reset.
  const flaky = async (id: number, ctx: CallContext): Promise<number> => {
    const seen = invocations.get(id) ?? [];
    seen.push(ctx.attempt);
    invocations.set(id, seen);
    await gate;
    if (ctx.attempt < 3) throw reset();
    return id;
  };
  const users = configured(store, 'users');
  const call = new ServiceBuilder({ name: 'users', registry: false }).retry(users.retry).service(flaky);
  const settled = new Map<number, 'ok' | 'failed'>();
  const run = (id: number) =>
    call(id).then(
      (v) => {
        assert.equal(v, id);
        assert.equal(settled.has(id), false, `call ${id} settled twice`);
        settled.set(id, 'ok');
      },
      (e: Error) => {
        assert.equal((e as { code?: string }).code, 'ECONNRESET');
        assert.equal(settled.has(id), false, `call ${id} settled twice`);
        settled.set(id, 'failed');
      },
    );

  // 50 calls under attempts: 0, of which the last 20 are still in flight at the swap.
  const before: Promise<void>[] = [];
  for (let id = 0; id < 30; id++) await run(id);
  let open!: () => void;
  gate = new Promise((resolve) => {
    open = resolve;
  });
  for (let id = 30; id < 50; id++) before.push(run(id));
  const verdict = store.deliver({ version: 'v2', raw: doc(3) });
  assert.equal(verdict.applied, true);
  gate = Promise.resolve();
  const after: Promise<void>[] = [];
  for (let id = 50; id < 100; id++) after.push(run(id));
  open();
  await Promise.all([...before, ...after]);

  assert.equal(settled.size, 100, 'every call settled');
  for (let id = 0; id < 50; id++) {
    assert.deepEqual(invocations.get(id), [1], `call ${id} started under attempts 0`);
    assert.equal(settled.get(id), 'failed');
  }
  for (let id = 50; id < 100; id++) {
    assert.deepEqual(invocations.get(id), [1, 2, 3], `call ${id} started under attempts 3`);
    assert.equal(settled.get(id), 'ok');
  }
  await call.close();
  await store.close();
});
