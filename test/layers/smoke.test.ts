import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceBuilder, TimeoutError } from '../../src/index.js';
import { MockService, VirtualClock } from '../../src/testing/index.js';

test('retry: fails twice then succeeds, backoff 25 then 50 ms', async () => {
  const clock = new VirtualClock();
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const mock = new MockService<[string], string>().script({ error: reset }, { error: reset }, { value: 'ok' });
  const get = new ServiceBuilder({ clock, registry: false })
    .timeout('1s')
    .retry({ attempts: 3, backoff: { base: '25ms', jitter: 'none' } })
    .service(mock.fn);
  const p = get('42');
  assert.equal(await clock.settle(p), 'ok');
  assert.equal(clock.now(), 75);
  assert.deepEqual(
    mock.calls.map((c) => c.attempt),
    [1, 2, 3],
  );
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});

test('timeout fires in virtual time', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const get = new ServiceBuilder({ clock, registry: false }).timeout('100ms').service(mock.fn);
  const p = get();
  const call = await mock.nextCall();
  await assert.rejects(clock.settle(p), TimeoutError);
  assert.equal(call.ctx.signal.aborted, true);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});
