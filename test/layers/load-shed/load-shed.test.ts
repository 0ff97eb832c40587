import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallContext, OverloadedError, ServiceBuilder, ServiceClosedError } from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { answer, observe, setup } from '../circuit-breaker/helpers.js';

test('sheds at once when the inner service is not ready, passes through when it is', async () => {
  const mock = new MockService<string, string>();
  const stack = new ServiceBuilder({ clock: new VirtualClock(), registry: false }).loadShed().build(mock);
  mock.setReady(false);
  const error = await stack.call('x', new CallContext()).catch((e: unknown) => e);
  assert.ok(error instanceof OverloadedError);
  assert.equal(error.layer, 'load-shed');
  assert.equal(mock.calls.length, 0);
  mock.setReady(true);
  mock.script({ value: 'ok' });
  assert.equal(await stack.call('x', new CallContext()), 'ok');
  assert.equal(stack.describe?.()[0]?.state?.shed, 1);
  assert.equal(stack.ready?.(), true, 'load shed itself never makes a caller wait');
  await stack.close?.();
  assert.equal(mock.closed, true);
});

test('above a concurrency limit: excess calls fail fast instead of queueing', async () => {
  const s = setup((b) => b.loadShed().concurrencyLimit({ max: 2, queue: 10 }));
  const admitted = [observe(s.fn('a')), observe(s.fn('b'))];
  await assert.rejects(s.fn('c'), (e: OverloadedError) => e.layer === 'load-shed');
  assert.equal(s.fn.describe()[1]?.state?.queued, 0, 'nothing queued');
  await answer(s.mock, 2);
  assert.deepEqual(
    admitted.map((c) => c.settled),
    [1, 1],
  );
  await s.fn.close();
  await assert.rejects(s.fn('d'), ServiceClosedError);
  assert.equal(s.clock.pendingTimers, 0);
});
