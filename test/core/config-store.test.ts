import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigStore, InvalidOptionError, live, ServiceBuilder, type Validator } from '../../src/index.js';
import { MockService, VirtualClock } from '../../src/testing/index.js';
import { resetError } from '../support/leaks.js';

interface Doc {
  attempts: number;
}
const validate: Validator<Doc> = (raw) => {
  const attempts = (raw as Doc | null)?.attempts;
  if (typeof attempts === 'number' && Number.isInteger(attempts) && attempts >= 0) return { ok: true, value: { attempts } };
  return { ok: false, problems: [{ field: 'attempts', message: 'must be a whole number' }] };
};

test('swap applies a valid document atomically and tells subscribers', () => {
  const store = new ConfigStore<Doc>({ initial: { attempts: 0 }, validate });
  const seen: string[] = [];
  const unsubscribe = store.subscribe((next, previous) => seen.push(`${previous.version}->${next.version}`));
  const result = store.swap({ attempts: 3 }, '7');
  assert.equal(result.applied, true);
  assert.equal(store.current.version, '7');
  assert.equal(store.current.value.attempts, 3);
  assert.ok(Object.isFrozen(store.current));
  assert.deepEqual(seen, ['0->7']);
  unsubscribe();
  assert.equal(store.subscriberCount, 0);
});

test('an invalid document is rejected whole; the last good one stays in force', () => {
  const store = new ConfigStore<Doc>({ initial: { attempts: 1 }, validate });
  const result = store.swap({ attempts: -1 }, '2');
  assert.equal(result.applied, false);
  assert.equal(store.current.value.attempts, 1);
  assert.equal(store.lastRejected?.version, '2');
  assert.deepEqual(store.lastRejected?.problems, [{ field: 'attempts', message: 'must be a whole number' }]);
});

test('live options: a change applies to the next call without rebuilding the stack', async () => {
  const clock = new VirtualClock();
  const store = new ConfigStore<Doc>({ initial: { attempts: 0 }, validate });
  const mock = new MockService<[], string>();
  const call = new ServiceBuilder({ clock, registry: false })
    .retry(live(store, (doc) => ({ attempts: doc.attempts, backoff: { base: '1ms', max: '1ms', jitter: 'none' }, budget: false })))
    .service(mock.fn);
  mock.script({ error: resetError() });
  await assert.rejects(clock.settle(call()), /socket hang up/);
  assert.equal(mock.calls.length, 1, 'attempts 0: no retry');

  store.swap({ attempts: 3 }, '2');
  mock.script({ error: resetError() }, { error: resetError() }, { value: 'ok' });
  assert.equal(await clock.settle(call()), 'ok');
  assert.equal(mock.calls.length, 4);
  await call.close();
});

test('a live value that fails the layer check is reported and the previous one kept', async () => {
  const clock = new VirtualClock();
  const store = new ConfigStore<Doc>({ initial: { attempts: 1 } });
  const mock = new MockService<[], string>();
  const call = new ServiceBuilder({ clock, registry: false })
    .retry(live(store, (doc) => ({ attempts: doc.attempts, backoff: { base: '1ms', jitter: 'none' }, budget: false })))
    .service(mock.fn);
  const rejected: string[] = [];
  call.events.on('param-rejected', (e) => rejected.push(`${e.layer}: ${e.problems.map((p) => p.field).join()}`));
  store.swap({ attempts: 1000 }, '2'); // the store has no validator; the layer's own check refuses it
  mock.script({ error: resetError() }, { value: 'ok' });
  assert.equal(await clock.settle(call()), 'ok', 'still retries once under the previous value');
  assert.deepEqual(rejected, ['retry: retry.attempts']);
  await call.close();
});

test('a selector that throws on a new snapshot keeps the previous value; no permit of a layer above leaks', async () => {
  const store = new ConfigStore<{ svc?: { timeout: `${number}s` } }>({ initial: { svc: { timeout: '1s' } } });
  const call = new ServiceBuilder({ registry: false })
    .concurrencyLimit({ max: 1 })
    .timeout(live(store, (doc) => (doc.svc as { timeout: `${number}s` }).timeout))
    .service(async (x: number) => x + 1);
  const rejected: string[] = [];
  call.events.on('param-rejected', (e) => rejected.push(`${e.layer}: ${e.problems.map((p) => p.message).join()}`));
  store.swap({}, '2'); // no svc section: the selector throws a TypeError
  for (let i = 0; i < 3; i++) assert.equal(await call(i), i + 1, 'served under the previous timeout, the permit given back');
  assert.equal(call.ready(), true);
  assert.equal(rejected.length, 1);
  assert.match(rejected[0] as string, /^timeout: could not be read: TypeError/);
  await call.close();
});

test('a stack built on bad live options does not start', () => {
  const store = new ConfigStore<Doc>({ initial: { attempts: -3 } });
  assert.throws(
    () => new ServiceBuilder({ registry: false }).retry(live(store, (d) => ({ attempts: d.attempts }))).service(async () => 1),
    InvalidOptionError,
  );
});
