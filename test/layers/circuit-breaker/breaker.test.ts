import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CallContext,
  type CircuitBreakerService,
  CircuitOpenError,
  ConfigStore,
  circuitBreaker,
  classification,
  InvalidOptionError,
  live,
  OverloadedError,
  probeDelay,
  ServiceBuilder,
  ServiceClosedError,
} from '../../../src/index.js';
import { flushMicrotasks } from '../../../src/testing/index.js';
import { boom, observe, record, setup, setupLayer } from './helpers.js';

type Breaker = CircuitBreakerService<unknown, unknown>;

/** Fails `n` calls through `fn`, each answered by the mock's script. */
async function fail(s: ReturnType<typeof setup>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    s.mock.script({ error: boom() });
    await assert.rejects(s.fn('x'), /boom/);
  }
}

test('opens after 7 consecutive failures (default), refuses at once with retryAt, ready() false', async () => {
  const s = setupLayer<Breaker>(circuitBreaker());
  const events = record(s.fn, 'circuit-state');
  await fail(s, 6);
  assert.equal(s.service.state, 'closed');
  assert.equal(s.fn.ready(), true);
  await fail(s, 1);
  assert.equal(s.service.state, 'open');
  assert.equal(s.fn.ready(), false);
  const error = await s.fn('x').catch((e: unknown) => e);
  assert.ok(error instanceof CircuitOpenError);
  assert.equal(error.retryAt, 1000); // random() = 0: no jitter
  assert.equal(error.retryAfterMs, 1000);
  assert.equal(s.mock.calls.length, 7, 'an open circuit does not call the backend');
  assert.deepEqual(events, [{ service: 'default', from: 'closed', to: 'open', reason: 'consecutive-failures', retryAt: 1000 }]);
  await s.fn.close();
  assert.equal(s.clock.pendingTimers, 0);
});

test('a success resets the consecutive count', async () => {
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 3 }));
  await fail(s, 2);
  s.mock.script({ value: 'ok' });
  assert.equal(await s.fn('x'), 'ok');
  await fail(s, 2);
  assert.equal(s.service.state, 'closed');
  await fail(s, 1);
  assert.equal(s.service.state, 'open');
});

test('half-open after the backoff: one probe at a time; its success closes the circuit', async () => {
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 1 }));
  const events = record(s.fn, 'circuit-state');
  await fail(s, 1);
  await s.clock.advance(999);
  await assert.rejects(s.fn('x'), (e: CircuitOpenError) => e.retryAfterMs === 1);
  await s.clock.advance(1);
  assert.equal(s.fn.ready(), true, 'a probe would be admitted');
  const probe = observe(s.fn('probe'));
  assert.equal(s.service.state, 'half-open');
  const second = await s.fn('second').catch((e: unknown) => e);
  assert.ok(second instanceof CircuitOpenError && second.retryAfterMs === 0, 'only one probe at a time');
  assert.equal(s.fn.ready(), false);
  (await s.mock.nextCall()).respond('ok');
  await flushMicrotasks();
  assert.equal(probe.value, 'ok');
  assert.equal(s.service.state, 'closed');
  assert.deepEqual(
    events.map((e) => `${e.from}>${e.to}:${e.reason}`),
    ['closed>open:consecutive-failures', 'open>half-open:backoff-elapsed', 'half-open>closed:probes-succeeded'],
  );
});

test('each failed probe doubles the backoff up to 60s; jitter 0.5 adds up to half', async () => {
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 1 }));
  await fail(s, 1);
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) {
    waits.push(s.service.retryAt - s.clock.now());
    await s.clock.advance(s.service.retryAt - s.clock.now());
    await fail(s, 1); // the probe fails
    assert.equal(s.service.state, 'open');
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  const backoff = { minMs: 1000, maxMs: 60_000, multiplier: 2, jitter: 0.5 };
  assert.equal(
    probeDelay(backoff, 0, () => 0.5),
    1250,
  );
  assert.equal(
    probeDelay(backoff, 1, () => 0.999),
    2000 * 1.4995,
  );
  assert.equal(
    probeDelay(backoff, 10, () => 0.9),
    60_000,
    'never beyond max',
  );
});

test('probes: 3 needs three successful probes; a failure reopens with a longer wait', async () => {
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 1, probes: 3 }));
  await fail(s, 1);
  await s.clock.advance(1000);
  const probes = [observe(s.fn('a')), observe(s.fn('b')), observe(s.fn('c'))];
  await assert.rejects(s.fn('d'), CircuitOpenError);
  for (let i = 0; i < 2; i++) (await s.mock.nextCall()).respond('ok');
  await flushMicrotasks();
  assert.equal(s.service.state, 'half-open');
  (await s.mock.nextCall()).fail(boom());
  await flushMicrotasks();
  assert.equal(s.service.state, 'open');
  assert.equal(s.service.retryAt - s.clock.now(), 2000);
  assert.deepEqual(
    probes.map((p) => p.settled),
    [1, 1, 1],
  );
  await s.clock.advance(2000);
  s.mock.script({ value: 'ok' }, { value: 'ok' }, { value: 'ok' });
  for (let i = 0; i < 3; i++) await s.fn('x');
  assert.equal(s.service.state, 'closed');
  await fail(s, 1);
  assert.equal(s.service.retryAt - s.clock.now(), 1000, 'closing resets the backoff');
});

test('only failures by the classifier count: an HTTP 404 classified success does not', async () => {
  const classifier = {
    classifyResult: (r: unknown) =>
      String(r).startsWith('5') ? classification('failure', String(r), true) : classification('success', String(r)),
    classifyError: () => classification('failure', 'error'),
  };
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 2 }), { classifier });
  s.mock.script({ value: '404' }, { value: '404' }, { value: '404' }, { value: '503' });
  for (let i = 0; i < 3; i++) await s.fn('x');
  assert.equal(s.service.state, 'closed');
  assert.equal(await s.fn('x'), '503', 'the failed response is passed on unchanged');
  s.mock.script({ value: '500' });
  await s.fn('x');
  assert.equal(s.service.state, 'open');
});

test('failure rate over a count window, with a minimum volume', async () => {
  const s = setupLayer<Breaker>(
    circuitBreaker({ consecutiveFailures: false, failureRate: { threshold: 0.5, minimumVolume: 10, window: { calls: 10 } } }),
  );
  for (let i = 0; i < 9; i++) s.mock.script(i % 2 === 0 ? { error: boom() } : { value: 'ok' });
  for (let i = 0; i < 9; i++) await s.fn('x').catch(() => {});
  assert.equal(s.service.state, 'closed', '5 of 9 failed, but below the minimum volume');
  s.mock.script({ value: 'ok' });
  await s.fn('x');
  assert.equal(s.service.state, 'closed', 'the rate is only checked on a failure');
  s.mock.script({ error: boom() });
  await s.fn('x').catch(() => {});
  // Window now: the oldest (a failure) left; 5 of 10 failed.
  assert.equal(s.service.state, 'open');
  assert.equal(s.fn.describe()[0]?.state?.state, 'open');
});

test('failure rate over a time window: old buckets fall out', async () => {
  const s = setupLayer<Breaker>(
    circuitBreaker({
      consecutiveFailures: false,
      failureRate: { threshold: 0.5, minimumVolume: 4, window: { duration: '10s', buckets: 10 } },
    }),
  );
  const events = record(s.fn, 'circuit-state');
  for (let i = 0; i < 3; i++) {
    s.mock.script({ error: boom() });
    await s.fn('x').catch(() => {});
  }
  await s.clock.advance(10_000); // those three are now outside the window
  s.mock.script({ value: 'ok' }, { value: 'ok' }, { value: 'ok' }, { error: boom() });
  for (let i = 0; i < 4; i++) await s.fn('x').catch(() => {});
  assert.equal(s.service.state, 'closed', '1 failure in 4 within the window');
  assert.equal(s.fn.describe()[0]?.state?.windowCalls, 4);
  s.mock.script({ error: boom() });
  await s.fn('x').catch(() => {});
  assert.equal(s.service.state, 'closed', '2 of 5');
  s.mock.script({ error: boom() });
  await s.fn('x').catch(() => {});
  assert.equal(s.service.state, 'open', '3 of 6');
  assert.equal(events[0]?.reason, 'failure-rate');
});

test('isolate() and reset() through the layer handle', async () => {
  const layer = circuitBreaker();
  const s = setupLayer<Breaker>(layer);
  assert.equal(layer.breaker, s.service);
  layer.isolate();
  const error = await s.fn('x').catch((e: unknown) => e);
  assert.ok(error instanceof CircuitOpenError);
  assert.equal(error.retryAt, Number.POSITIVE_INFINITY);
  await s.clock.advance(3_600_000);
  await assert.rejects(s.fn('x'), CircuitOpenError, 'isolation does not time out');
  assert.equal(s.fn.ready(), false);
  layer.reset();
  s.mock.script({ value: 'ok' });
  assert.equal(await s.fn('x'), 'ok');
  await s.fn.close();
  assert.equal(layer.breakers.size, 0, 'a closed stack leaves the handle');
});

test('export() and restore() carry an open circuit across a restart', async () => {
  const a = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 1 }));
  await fail(a, 1);
  await a.clock.advance(1000);
  await fail(a, 1); // failed probe: 2 s backoff
  await a.clock.advance(500);
  const saved = JSON.parse(JSON.stringify(a.service.export()));
  assert.equal(saved.state, 'open');
  assert.equal(saved.failedProbes, 1);
  assert.equal(saved.retryInMs, 1500);

  const b = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 1 }));
  await b.clock.advance(a.clock.now() + 300); // the new process starts 300 ms of wall time later
  b.service.restore(saved);
  assert.equal(b.service.state, 'open');
  assert.equal(b.service.retryAt - b.clock.now(), 1200);
  await b.clock.advance(1200);
  await fail(b, 1); // the probe fails: the backoff continues where it was
  assert.equal(b.service.retryAt - b.clock.now(), 4000);
  assert.throws(() => b.service.restore({ ...saved, state: 'ajar' }), InvalidOptionError);
});

test('outcomes of calls admitted before a state change are ignored', async () => {
  const s = setupLayer<Breaker>(circuitBreaker({ consecutiveFailures: 2 }));
  // A stale call: admitted while closed, settles after the circuit opened and closed again.
  const stale = observe(s.fn('stale'));
  const staleCall = await s.mock.nextCall();
  await fail(s, 2);
  assert.equal(s.service.state, 'open');
  s.service.reset();
  staleCall.fail(boom());
  await flushMicrotasks();
  assert.equal(stale.settled, 1);
  assert.equal(s.fn.describe()[0]?.state?.consecutiveFailures, 0, 'the stale failure was not counted');
});

test('a caller-cancelled call is not a failure', async () => {
  const s = setup((b) => b.circuitBreaker({ consecutiveFailures: 1 }));
  const fn = s.fn.stack;
  const controller = new AbortController();
  const ctx = new CallContext(controller.signal);
  const p = observe(fn.call(['x'], ctx));
  const call = await s.mock.nextCall();
  controller.abort();
  call.fail(new Error('aborted'));
  await flushMicrotasks();
  assert.equal(p.settled, 1);
  assert.equal(s.fn.describe()[0]?.state?.state, 'closed');
});

test('live parameters: a new snapshot changes the threshold on the next call', async () => {
  const store = new ConfigStore({ initial: { failures: 5 } });
  const s = setupLayer<Breaker>(circuitBreaker(live(store, (c: { failures: number }) => ({ consecutiveFailures: c.failures }))));
  await fail(s, 2);
  assert.equal(s.service.state, 'closed');
  store.swap({ failures: 3 }, '2');
  await fail(s, 1);
  assert.equal(s.service.state, 'open');
  const rejected = record(s.fn, 'param-rejected');
  store.swap({ failures: 0 }, '3');
  s.service.reset();
  await fail(s, 2);
  assert.equal(rejected.length, 1, 'a bad value is reported and the last good one kept');
  assert.equal(s.service.state, 'closed');
});

test('options are checked at build time, naming the field and the range', () => {
  assert.throws(() => circuitBreaker({ consecutiveFailures: 0 }), /circuitBreaker\.consecutiveFailures: must be an integer from 1/);
  assert.throws(() => circuitBreaker({ failureRate: { threshold: 2 } }), /circuitBreaker\.failureRate/);
  assert.throws(() => circuitBreaker({ backoff: { min: '10s', max: '1s' } }), /circuitBreaker\.backoff\.max: must be at least/);
  assert.throws(() => circuitBreaker({ probes: 0 }), /circuitBreaker\.probes: must be an integer from 1 to 1000 \(got 0\)/);
  assert.throws(() => circuitBreaker({ bogus: 1 } as never), /unknown field "bogus"/);
});

test('close() refuses later calls and leaves no timer', async () => {
  const s = setup((b) => b.timeout('1s').circuitBreaker());
  s.mock.script({ value: 'ok' });
  await s.fn('x');
  await s.fn.close();
  await assert.rejects(s.fn('x'), ServiceClosedError);
  assert.equal(s.clock.pendingTimers, 0);
});

/** Succeeds `n` calls through `fn`. */
async function succeed(s: ReturnType<typeof setup>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    s.mock.script({ value: 'ok' });
    assert.equal(await s.fn('x'), 'ok');
  }
}

test("export() and restore() carry a closed circuit's failure-rate window (count window, in call order)", async () => {
  const options = { consecutiveFailures: 100, failureRate: { threshold: 0.5, minimumVolume: 10, window: { calls: 10 } } };
  const a = setupLayer<Breaker>(circuitBreaker(options));
  // Oldest first: F F S S S S S S F S — 3 failures in 10, under the 0.5 threshold.
  await fail(a, 2);
  await succeed(a, 6);
  await fail(a, 1);
  await succeed(a, 1);
  assert.equal(a.service.state, 'closed');
  const saved = JSON.parse(JSON.stringify(a.service.export()));
  assert.equal(saved.window.kind, 'calls');
  assert.equal(saved.window.total, 10);

  const b = setupLayer<Breaker>(circuitBreaker(options));
  b.service.restore(saved);
  const state = () => b.fn.describe()[0]?.state as { windowCalls: number; windowFailures: number };
  assert.deepEqual([state().windowCalls, state().windowFailures], [10, 3]);
  await fail(b, 2); // the two oldest outcomes, both failures, make room: still 3 in 10
  assert.deepEqual([state().windowCalls, state().windowFailures, b.service.state], [10, 3, 'closed'], 'oldest out first');
  await fail(b, 2); // now two successes leave: 5 in 10 reaches the rate
  assert.equal(b.service.state, 'open', 'the restored outcomes count: a fresh window would hold 4 calls, under the volume');

  const fresh = setupLayer<Breaker>(circuitBreaker(options));
  await fail(fresh, 2);
  assert.equal(fresh.service.state, 'closed');
  // A window of another size keeps the newest outcomes; one of another kind is ignored.
  const smaller = setupLayer<Breaker>(circuitBreaker({ ...options, failureRate: { ...options.failureRate, window: { calls: 4 } } }));
  smaller.service.restore(saved);
  assert.deepEqual([smaller.fn.describe()[0]?.state?.windowCalls, smaller.fn.describe()[0]?.state?.windowFailures], [4, 1]);
  const timed = setupLayer<Breaker>(
    circuitBreaker({ ...options, failureRate: { ...options.failureRate, window: { duration: '10s', buckets: 10 } } }),
  );
  timed.service.restore(saved);
  assert.equal(timed.fn.describe()[0]?.state?.windowCalls, 0);
});

test('export() and restore() carry a time window, aged by the wall time since the export', async () => {
  const options = {
    consecutiveFailures: 100,
    failureRate: { threshold: 0.6, minimumVolume: 4, window: { duration: '10s' as const, buckets: 10 } },
  };
  const a = setupLayer<Breaker>(circuitBreaker(options));
  await fail(a, 1); // t = 0 s
  await a.clock.advance(5000);
  await succeed(a, 2); // t = 5 s
  await a.clock.advance(3000);
  await fail(a, 1); // t = 8 s
  const saved = JSON.parse(JSON.stringify(a.service.export()));
  assert.equal(saved.state, 'closed', '2 failures in 4 calls: under the 0.6 threshold');
  assert.deepEqual(saved.window.calls.slice(0, 4), [1, 0, 0, 2]);

  const state = (s: ReturnType<typeof setup>) => s.fn.describe()[0]?.state as { windowCalls: number; windowFailures: number };
  const soon = setupLayer<Breaker>(circuitBreaker(options));
  await soon.clock.advance(a.clock.now() + 2000); // restored two seconds later: the t = 0 bucket has aged out
  soon.service.restore(saved);
  assert.deepEqual([state(soon).windowCalls, state(soon).windowFailures], [3, 1]);
  const late = setupLayer<Breaker>(circuitBreaker(options));
  await late.clock.advance(a.clock.now() + 7000); // seven seconds later: only the t = 8 s call is left
  late.service.restore(saved);
  assert.deepEqual([state(late).windowCalls, state(late).windowFailures], [1, 1]);
  await fail(late, 1);
  await succeed(late, 1);
  await fail(late, 1); // 3 failures of 4 (0.75): opens
  assert.equal(late.service.state, 'open');
});

test('calls a layer beneath refused before sending them (shed by a concurrency limit) do not open the circuit', async () => {
  let release!: () => void;
  const fn = new ServiceBuilder({ registry: false })
    .circuitBreaker({ consecutiveFailures: 3 })
    .concurrencyLimit({ max: 1 })
    .service(() => new Promise<string>((resolve) => (release = () => resolve('ok'))));
  const held = fn();
  for (let i = 0; i < 5; i++) await assert.rejects(fn(), OverloadedError);
  assert.equal(fn.describe()[0]?.state?.state, 'closed', 'the backend never failed');
  release();
  assert.equal(await held, 'ok');
  await fn.close();
});
