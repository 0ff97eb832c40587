import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Classifier,
  ConfigStore,
  classification,
  InvalidOptionError,
  live,
  RetryBudget,
  type RetryOptions,
  type RetryService,
  type RetrySkipReason,
  ServiceBuilder,
  SUCCESS,
  TimeoutError,
} from '../../../src/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';
import { observe, resetError } from '../../support/leaks.js';

const clockAt = (deadline: number): number => Math.round(deadline);

function retrying(
  options: RetryOptions,
  builder = (clock: VirtualClock) => new ServiceBuilder({ clock, registry: false, random: () => 0.5 }),
) {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = builder(clock).retry(options).service(mock.fn);
  const skipped: RetrySkipReason[] = [];
  fn.events.on('retry-skipped', (e) => skipped.push(e.reason));
  const delays: number[] = [];
  fn.events.on('retry', (e) => delays.push(e.delayMs));
  return { clock, mock, fn, skipped, delays };
}

test('fails twice, then succeeds; backoff waits 25 ms then 50 ms', async () => {
  const { clock, mock, fn, delays } = retrying({ attempts: 3, backoff: { base: '25ms', max: '1s', jitter: 'none' } });
  mock.script({ error: resetError() }, { error: resetError() }, { value: 'ok' });
  const started = clock.now();
  assert.equal(await clock.settle(fn()), 'ok');
  assert.equal(clock.now() - started, 75);
  assert.deepEqual(delays, [25, 50]);
  assert.deepEqual(
    mock.calls.map((c) => c.attempt),
    [1, 2, 3],
  );
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('when attempts run out the caller gets the last real failure', async () => {
  const { clock, mock, fn, skipped } = retrying({ attempts: 2, backoff: { base: '1ms', jitter: 'none' } });
  const last = resetError('third reset');
  mock.script({ error: resetError() }, { error: resetError() }, { error: last });
  await assert.rejects(clock.settle(fn()), (e) => e === last);
  assert.equal(mock.calls.length, 3);
  assert.deepEqual(skipped, ['attempts']);
});

test('errors the classifier does not mark retryable are not retried by default', async () => {
  const { clock, mock, fn, skipped } = retrying({ attempts: 3 });
  mock.script({ error: new Error('bad input') });
  await assert.rejects(clock.settle(fn()), /bad input/);
  assert.equal(mock.calls.length, 1);
  assert.deepEqual(skipped, ['not-retryable']);
});

test('retryOn "error" retries any thrown error; a predicate decides alone', async () => {
  const any = retrying({ attempts: 1, retryOn: ['error'], backoff: { base: '1ms' } });
  any.mock.script({ error: new Error('boom') }, { value: 'ok' });
  assert.equal(await any.clock.settle(any.fn()), 'ok');
  const predicate = retrying({ attempts: 5, retryOn: (_c, o) => (o.error as Error).message === 'again', backoff: { base: '1ms' } });
  predicate.mock.script({ error: new Error('again') }, { error: new Error('stop') });
  await assert.rejects(predicate.clock.settle(predicate.fn()), /stop/);
  assert.equal(predicate.mock.calls.length, 2);
});

const httpLike: Classifier<{ status: number; retryAfterMs?: number }> = {
  classifyResult: (r) =>
    r.status >= 500 || r.status === 429 ? classification('failure', String(r.status), r.status !== 501, r.retryAfterMs) : SUCCESS,
  classifyError: () => classification('failure', 'error', true),
};

test('failed results are retried, discarded, and the last one returned; retryOn matches statuses', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], { status: number }>();
  const discarded: number[] = [];
  const fn = new ServiceBuilder({ clock, classifier: httpLike, registry: false })
    .retry({
      attempts: 2,
      retryOn: ['gateway-error'],
      backoff: { base: '1ms', jitter: 'none' },
      discard: (r) => discarded.push((r as { status: number }).status),
    })
    .service(mock.fn);
  mock.script({ value: { status: 503 } }, { value: { status: 502 } }, { value: { status: 504 } });
  assert.deepEqual(await clock.settle(fn()), { status: 504 });
  assert.deepEqual(discarded, [503, 502]);
  mock.script({ value: { status: 500 } });
  assert.deepEqual(await clock.settle(fn()), { status: 500 }, '500 is not a gateway error');
  await fn.close();
});

test('Retry-After raises the delay; a Retry-After past the deadline stops retrying', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], { status: number; retryAfterMs?: number }>();
  const fn = new ServiceBuilder({ clock, classifier: httpLike, registry: false })
    .timeout('5s')
    .retry({ attempts: 3, backoff: { base: '1ms', jitter: 'none' } })
    .service(mock.fn);
  mock.script({ value: { status: 429, retryAfterMs: 2000 } }, { value: { status: 200 } });
  const start = clock.now();
  assert.deepEqual(await clock.settle(fn()), { status: 200 });
  assert.equal(clock.now() - start, 2000);
  mock.script({ value: { status: 503, retryAfterMs: 60_000 } });
  assert.deepEqual(await clock.settle(fn()), { status: 503, retryAfterMs: 60_000 });
  assert.equal(mock.calls.length, 3, 'no retry: it would land after the deadline');
  await fn.close();
});

test('the budget stops a retry storm: 20% of traffic plus the per-second reserve', async () => {
  const clock = new VirtualClock();
  const budget = new RetryBudget({ retryRatio: 0.2, minRetriesPerSecond: 1, ttl: '10s' }, clock);
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).retry({ attempts: 1, budget, backoff: { base: '0ms' } }).service(mock.fn);
  const skipped: RetrySkipReason[] = [];
  fn.events.on('retry-skipped', (e) => skipped.push(e.reason));
  // 100 calls that always fail: 100 * 0.2 + 1/s * 10 s = 30 retries at most.
  for (let i = 0; i < 100; i++) mock.script({ error: resetError() }, { error: resetError() });
  const outcomes = [];
  for (let i = 0; i < 100; i++) outcomes.push(clock.settle(fn()).catch((e: unknown) => e));
  await Promise.all(outcomes);
  const retries = mock.calls.filter((c) => c.attempt === 2).length;
  assert.ok(retries >= 28 && retries <= 30, `retries ${retries}`);
  assert.equal(skipped.filter((s) => s === 'budget').length, 100 - retries);
  assert.equal(budget.balance(), 0);
  await fn.close();
});

test('budget deposits expire after the ttl', async () => {
  const clock = new VirtualClock();
  const budget = new RetryBudget({ retryRatio: 0.5, minRetriesPerSecond: 0, ttl: '1s' }, clock);
  for (let i = 0; i < 64; i++) budget.deposit();
  assert.equal(budget.balance(), 32);
  await clock.advance(1100);
  assert.equal(budget.balance(), 0);
  assert.throws(() => new RetryBudget({ retryRatio: -1 }), /budget\.retryRatio: must be a number from 0 to 1000/);
});

test('a per-try timeout is retried within the call deadline; none starts after it', async () => {
  const { clock, mock, fn, skipped } = retrying({ attempts: 5, perTryTimeout: '100ms', backoff: { base: '10ms', jitter: 'none' } }, (c) =>
    new ServiceBuilder({ clock: c, registry: false }).timeout('300ms'),
  );
  const outcome = observe(fn());
  await clock.advance(300);
  assert.ok(outcome.error instanceof TimeoutError);
  // 0-100 times out, 10 ms backoff, 110-210 times out, 20 ms backoff, 230 starts with 70 ms left.
  assert.deepEqual(
    mock.calls.map((c) => [c.attempt, clockAt(c.deadline)]),
    [
      [1, 100],
      [2, 210],
      [3, 300],
    ],
  );
  assert.ok(mock.calls[2]!.ctx.signal.aborted, 'the total deadline aborts the attempt in flight');
  await clock.runAll();
  assert.deepEqual(skipped, ['deadline']);
  await fn.close();
  assert.equal(clock.pendingTimers, 0);
});

test('aborting the call wakes a sleeping backoff and stops retrying', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[{ signal: AbortSignal }], string>();
  const fn = new ServiceBuilder({ clock, registry: false })
    .retry({ attempts: 3, backoff: { base: '10s', jitter: 'none' } })
    .service(mock.fn as never as (init: { signal: AbortSignal }) => Promise<string>, { context: (init) => ({ signal: init.signal }) });
  const caller = new AbortController();
  const outcome = observe(fn({ signal: caller.signal }));
  (await mock.nextCall()).fail(resetError());
  await clock.advance(0);
  assert.equal(clock.pendingTimers, 1, 'sleeping');
  caller.abort();
  await clock.advance(0);
  assert.equal(outcome.settled, 1);
  assert.match((outcome.error as Error).message, /socket hang up/);
  assert.equal(clock.pendingTimers, 0, 'the backoff timer is cleared');
  assert.equal(mock.calls.length, 1);
  await fn.close();
});

test('jitter variants and decorrelated growth stay within their bounds', async () => {
  for (const [jitter, random, expected] of [
    ['full', 0.5, [12.5, 25]],
    ['equal', 0, [12.5, 25]],
    ['none', 0.9, [25, 50]],
  ] as const) {
    const clock = new VirtualClock();
    const mock = new MockService<[], string>().script({ error: resetError() }, { error: resetError() }, { value: 'ok' });
    const fn = new ServiceBuilder({ clock, registry: false, random: () => random })
      .retry({ attempts: 2, backoff: { base: '25ms', max: '1s', jitter } })
      .service(mock.fn);
    const delays: number[] = [];
    fn.events.on('retry', (e) => delays.push(e.delayMs));
    await clock.settle(fn());
    assert.deepEqual(delays, expected, jitter);
  }
  const clock = new VirtualClock();
  const mock = new MockService<[], string>().script(
    { error: resetError() },
    { error: resetError() },
    { error: resetError() },
    { value: 'ok' },
  );
  const fn = new ServiceBuilder({ clock, registry: false, random: () => 1 })
    .retry({ attempts: 3, backoff: { base: '10ms', max: '50ms', jitter: 'decorrelated' } })
    .service(mock.fn);
  const delays: number[] = [];
  fn.events.on('retry', (e) => delays.push(e.delayMs));
  await clock.settle(fn());
  assert.deepEqual(delays, [10, 30, 50]);
});

test('constant and custom backoff', async () => {
  const constant = retrying({ attempts: 2, backoff: { kind: 'constant', base: '40ms', jitter: 'none' } });
  constant.mock.script({ error: resetError() }, { error: resetError() }, { value: 'ok' });
  await constant.clock.settle(constant.fn());
  assert.deepEqual(constant.delays, [40, 40]);
  const custom = retrying({ attempts: 2, backoff: (retry) => retry * 7 });
  custom.mock.script({ error: resetError() }, { error: resetError() }, { value: 'ok' });
  await custom.clock.settle(custom.fn());
  assert.deepEqual(custom.delays, [7, 14]);
});

test('stats record why retries did or did not happen', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], string>();
  const fn = new ServiceBuilder({ clock, registry: false }).retry({ attempts: 1, backoff: { base: '1ms' } }).service(mock.fn);
  mock.script({ error: resetError() }, { value: 'ok' }, { error: new Error('no') });
  await clock.settle(fn());
  await clock.settle(fn()).catch(() => {});
  const retry = fn.stack as unknown as RetryService<unknown, unknown>;
  assert.deepEqual(retry.stats, {
    calls: 2,
    retried: 1,
    skipped: { budget: 0, 'not-retryable': 1, attempts: 0, deadline: 0, cancelled: 0 },
  });
  const described = fn.describe()[0]!;
  assert.equal((described.state as { retried: number }).retried, 1);
  await fn.close();
});

test('invalid retry options throw at build time naming the field and range', () => {
  const cases: [RetryOptions, RegExp][] = [
    [{ attempts: -1 }, /retry\.attempts: must be an integer from 0 to 100 \(got -1\)/],
    [{ attempts: 1.5 }, /retry\.attempts: must be an integer/],
    [{ backoff: { base: 'fast' as never } }, /retry\.backoff\.base: must be a duration/],
    [{ backoff: { base: '1s', max: '10ms' } }, /retry\.backoff\.max: must be at least retry\.backoff\.base/],
    [{ backoff: { jitter: 'some' as never } }, /retry\.backoff\.jitter: must be "full", "equal", "decorrelated" or "none"/],
    [{ perTryTimeout: '0ms' }, /retry\.perTryTimeout: must be a duration/],
    [{ retryOn: ['5xx', 'not valid!'] }, /retry\.retryOn: must be a list of conditions/],
    [{ budget: { retryRatio: 2000 } }, /retry\.budget\.retryRatio: must be a number from 0 to 1000/],
    [{ budget: 'lots' as never }, /retry\.budget: must be a RetryBudget/],
    [{ attempts: 1, typo: true } as never, /retry: unknown field "typo"/],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new ServiceBuilder().retry(options),
      (e: unknown) => e instanceof InvalidOptionError && message.test(e.message),
      JSON.stringify(options),
    );
  }
});

test('close() during a backoff ends the sleeping call with its last failure: no timer left, no further attempt', async () => {
  const { clock, mock, fn, skipped } = retrying({ attempts: 3, backoff: { kind: 'constant', base: '10s', jitter: 'none' } });
  mock.script({ error: resetError('first') }, { value: 'never' });
  const seen = observe(fn());
  await clock.advance(0);
  assert.equal(mock.calls.length, 1);
  assert.equal(clock.pendingTimers, 1, 'sleeping in the backoff');
  await fn.close();
  await clock.advance(0);
  assert.equal(seen.settled, 1);
  assert.match(String((seen.error as Error).message), /first/);
  assert.equal(clock.pendingTimers, 0);
  await clock.advance(60_000);
  assert.equal(mock.calls.length, 1, 'no attempt after close');
  assert.deepEqual(skipped, ['cancelled']);
});

test('an attempt failing after close() ends the call with its failure: no backoff started, no timer left', async () => {
  const { clock, mock, fn, skipped } = retrying({ attempts: 3, backoff: { kind: 'constant', base: '30s', jitter: 'none' } });
  mock.script('hold');
  const seen = observe(fn());
  await clock.advance(0);
  await fn.close();
  mock.calls[0]?.fail(resetError('after close'));
  await clock.advance(0);
  assert.equal(seen.settled, 1, 'settled at once, not after a 30 s backoff');
  assert.match(String((seen.error as Error).message), /after close/);
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(skipped, ['cancelled']);
});

test('a result returned because the backoff was cut short is not discarded', async () => {
  const clock = new VirtualClock();
  const mock = new MockService<[], { status: number }>();
  const discarded: number[] = [];
  const controller = new AbortController();
  const fn = new ServiceBuilder({ clock, classifier: httpLike, registry: false })
    .retry({
      attempts: 2,
      retryOn: ['gateway-error'],
      backoff: { base: '1s', jitter: 'none' },
      discard: (r) => discarded.push((r as { status: number }).status),
    })
    .service(mock.fn, { context: () => ({ signal: controller.signal }) });
  mock.script({ value: { status: 503 } });
  const seen = observe(fn());
  await clock.advance(0);
  controller.abort();
  await clock.advance(0);
  assert.equal(seen.settled, 1);
  assert.deepEqual(discarded, [], 'the caller gets it whole');
  await fn.close();
});

test('a live config change elsewhere keeps the retry budget and the hedge budget (and what they spent)', async () => {
  const clock = new VirtualClock();
  const store = new ConfigStore<{ other: number }>({ initial: { other: 1 } });
  const mock = new MockService<[], string>();
  // Default budgets: resolved anew from the options on every snapshot.
  const fn = new ServiceBuilder({ clock, registry: false })
    .retry(live(store, () => ({ attempts: 1, backoff: { base: '1ms', jitter: 'none' } })))
    .service(mock.fn);
  const hedged = new ServiceBuilder({ clock, registry: false }).hedge(live(store, () => ({ delay: '10ms' }))).service(mock.fn);
  const retryBudget = (fn.stack as unknown as RetryService<unknown, unknown>).budget;
  const hedgeBudget = (hedged.stack as unknown as { budget: RetryBudget | undefined }).budget;
  mock.script({ error: resetError() }, { value: 'ok' });
  assert.equal(await clock.settle(fn()), 'ok');
  const spent = retryBudget?.describe();
  store.swap({ other: 2 }, '2'); // nothing about budgets changed
  assert.equal((fn.stack as unknown as RetryService<unknown, unknown>).budget, retryBudget, 'the same retry budget');
  assert.deepEqual(retryBudget?.describe(), spent);
  assert.equal((hedged.stack as unknown as { budget: RetryBudget | undefined }).budget, hedgeBudget, 'the same hedge budget');
  await fn.close();
  await hedged.close();
});

test('each outcome is classified once, whether the layer is called or called into (a timeout above)', async () => {
  for (const outer of [false, true]) {
    const clock = new VirtualClock();
    const mock = new MockService<[], { status: number }>();
    const judged: string[] = [];
    const counting: Classifier<{ status: number }> = {
      classifyResult: (r) => {
        judged.push(`result ${r.status}`);
        return httpLike.classifyResult(r);
      },
      classifyError: (e) => {
        judged.push('error');
        return httpLike.classifyError(e);
      },
    };
    const builder = new ServiceBuilder({ clock, classifier: counting, registry: false });
    const fn = (outer ? builder.timeout('10s') : builder).retry({ attempts: 3, backoff: { base: '1ms', jitter: 'none' } }).service(mock.fn);
    mock.script({ value: { status: 503 } }, { error: resetError() }, { value: { status: 200 } });
    assert.deepEqual(await clock.settle(fn()), { status: 200 });
    // Layers outside the retry (the timeout) do not classify: what is counted is the retry's.
    assert.deepEqual(judged, ['result 503', 'error', 'result 200'], outer ? 'called into' : 'called');
    await fn.close();
  }
});

test('a thrown error the classifier calls a success is rethrown, not turned into a value', async () => {
  for (const outer of [false, true]) {
    const clock = new VirtualClock();
    const mock = new MockService<[], string>();
    const lenient: Classifier<string> = { classifyResult: () => SUCCESS, classifyError: () => SUCCESS };
    const builder = new ServiceBuilder({ clock, classifier: lenient, registry: false });
    const fn = (outer ? builder.timeout('10s') : builder).retry({ attempts: 3 }).service(mock.fn);
    const failure = resetError('not found, and that is fine');
    mock.script({ error: failure });
    await assert.rejects(clock.settle(fn()), (e) => e === failure, outer ? 'called into' : 'called');
    assert.equal(mock.calls.length, 1);
    await fn.close();
  }
});
