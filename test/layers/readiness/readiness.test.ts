import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidOptionError, NotReadyError, Readiness, ServiceBuilder, TimeoutError } from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe } from '../../support/leaks.js';

test('ready when every latch is released, and never unready afterwards', () => {
  const readiness = new Readiness();
  assert.equal(readiness.isReady, true, 'no latch taken: ready');
  const config = readiness.latch('config');
  const warm = readiness.latch('cache');
  assert.equal(readiness.isReady, false);
  assert.deepEqual(readiness.pending, ['config', 'cache']);
  config.release();
  config.release();
  assert.deepEqual(readiness.pending, ['cache']);
  warm.release();
  assert.equal(readiness.isReady, true);
  assert.throws(() => readiness.latch('late'), /readiness already reached/);
  assert.equal(readiness.isReady, true);
});

test('fail mode refuses at once with NotReadyError naming the latches', async () => {
  const readiness = new Readiness();
  const latch = readiness.latch('endpoints');
  const mock = new MockService<[], string>().script({ value: 'ok' });
  const fn = new ServiceBuilder({ registry: false }).readiness(readiness, { mode: 'fail' }).service(mock.fn);
  const refused: string[][] = [];
  fn.events.on('not-ready', (e) => refused.push([...e.pending]));
  await assert.rejects(fn(), (e: unknown) => e instanceof NotReadyError && /endpoints/.test(e.message) && e.pending[0] === 'endpoints');
  assert.equal(mock.calls.length, 0);
  assert.equal(fn.ready(), false);
  latch.release();
  assert.equal(await fn(), 'ok');
  assert.deepEqual(refused, [['endpoints']]);
  await fn.close();
});

test('wait mode holds calls until ready', async () => {
  const clock = new VirtualClock();
  const readiness = new Readiness();
  const latch = readiness.latch('config');
  const mock = new MockService<[], string>().script({ value: 'a' }, { value: 'b' });
  const fn = new ServiceBuilder({ clock, registry: false }).readiness(readiness).service(mock.fn);
  const first = observe(fn());
  const second = observe(fn());
  await clock.advance(5000);
  assert.equal(mock.calls.length, 0);
  latch.release();
  await clock.advance(0);
  assert.equal(first.value, 'a');
  assert.equal(second.value, 'b');
  assert.equal(readiness.waiterCount, 0);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a wait is bounded by maxWait and by the deadline', async () => {
  const clock = new VirtualClock();
  const readiness = new Readiness();
  readiness.latch('config');
  const bounded = new ServiceBuilder({ clock, registry: false }).readiness(readiness, { maxWait: '200ms' }).service(async () => 'x');
  const a = observe(bounded());
  await clock.advance(200);
  assert.ok(a.error instanceof NotReadyError);
  const deadlined = new ServiceBuilder({ clock, registry: false })
    .timeout('50ms')
    .readiness(readiness)
    .service(async () => 'x');
  const b = observe(deadlined());
  await clock.advance(50);
  assert.ok(b.error instanceof TimeoutError || b.error instanceof NotReadyError, String(b.error));
  await clock.runAll();
  assert.equal(readiness.waiterCount, 0, 'no waiter left behind');
  await bounded.close();
  await deadlined.close();
  assert.equal(clock.pendingTimers, 0);
});

test('close releases waiting calls with NotReadyError', async () => {
  const clock = new VirtualClock();
  const readiness = new Readiness();
  readiness.latch('never');
  const fn = new ServiceBuilder({ clock, registry: false }).readiness(readiness).service(async () => 'x');
  const waiting = observe(fn());
  await clock.advance(0);
  await fn.close();
  await clock.advance(0);
  assert.ok(waiting.error instanceof NotReadyError);
  assert.equal(readiness.waiterCount, 0);
});

test('readiness options are checked', () => {
  assert.throws(
    () => new ServiceBuilder().readiness(new Readiness(), { mode: 'maybe' as never }),
    (e: unknown) => e instanceof InvalidOptionError && /readiness\.mode: must be "wait" or "fail"/.test(e.message),
  );
});

test('a call cancelled before or while it waits for readiness ends with the cancel reason and never reaches the service', async () => {
  const clock = new VirtualClock();
  const readiness = new Readiness();
  const latch = readiness.latch('config');
  const mock = new MockService<[], string>().script({ value: 'ok' });
  const before = new AbortController();
  before.abort('gone');
  const during = new AbortController();
  let signal = before.signal;
  const fn = new ServiceBuilder({ clock, registry: false })
    .readiness(readiness, { mode: 'wait' })
    .service(mock.fn, { context: () => ({ signal }) });
  const refused: unknown[] = [];
  fn.events.on('not-ready', (e) => refused.push(e));
  await assert.rejects(fn(), (e: unknown) => e instanceof Error && (e as Error).cause === 'gone', 'already cancelled: refused at once');
  signal = during.signal;
  const waiting = observe(fn());
  await clock.advance(100);
  during.abort(new Error('caller left'));
  await clock.advance(0);
  assert.equal(waiting.settled, 1);
  assert.equal((waiting.error as Error).message, 'caller left');
  latch.release();
  await clock.advance(0);
  assert.equal(mock.calls.length, 0);
  assert.deepEqual(refused, [], 'a cancelled call is not a not-ready refusal');
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});
