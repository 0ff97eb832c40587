import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidOptionError, ServiceBuilder } from '../../src/index.js';
import { seededRandom, simulate } from '../../src/testing/index.js';

const near = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} not within ${tolerance} of ${expected}`);

test('simulator: 10% success behind 10 retries and no budget gives 1 - 0.9^11 ≈ 68.6%', async () => {
  const report = await simulate(new ServiceBuilder({ name: 'arith' }).retry({ attempts: 10, budget: false }), {
    backend: { failureRate: 0.9 },
    calls: 3000,
    concurrency: 20,
    seed: 7,
  });
  const expected = 1 - 0.9 ** 11;
  near(report.successRate, expected, 0.03, 'success rate');
  // Expected attempts per call: sum of 0.9^k for k = 0..10 = (1 - 0.9^11) / 0.1 ≈ 6.86.
  near(report.attempts.perCall, (1 - 0.9 ** 11) / 0.1, 0.2, 'attempts per call');
  assert.equal(report.retries, report.attempts.total - report.calls);
  assert.equal(report.succeeded + report.failed, 3000);
  assert.deepEqual(Object.keys(report.errors), ['ECONNRESET']);
  assert.equal(report.budget.retriesRefused, 0);
});

test('simulator: the same seed gives the same report; another seed another one', async () => {
  const run = (seed: number) =>
    simulate(new ServiceBuilder().retry({ attempts: 2 }), {
      backend: { failureRate: 0.3, latency: { kind: 'exponential', mean: '20ms' } },
      calls: 300,
      concurrency: 5,
      seed,
    });
  assert.deepEqual(await run(3), await run(3));
  assert.notDeepEqual(await run(3), await run(4));
});

test('simulator: a budget caps retries at its ratio of traffic', async () => {
  const report = await simulate(new ServiceBuilder().retry({ attempts: 10, budget: { retryRatio: 0.2, minRetriesPerSecond: 0 } }), {
    backend: { failureRate: 1, latency: { kind: 'constant', value: '10ms' } },
    calls: 1000,
    concurrency: 10,
  });
  assert.equal(report.successRate, 0);
  // At most 20% extra attempts (lazy deposit accounting allows a few more), most retries refused.
  assert.ok(report.attempts.perCall <= 1.25, `attempts per call ${report.attempts.perCall}`);
  assert.ok(report.attempts.perCall >= 1.15, `attempts per call ${report.attempts.perCall}`);
  assert.ok(report.budget.retriesRefused > 700);
});

test('simulator: latency models give their percentiles', async () => {
  const constant = await simulate(new ServiceBuilder(), { backend: { latency: { kind: 'constant', value: '10ms' } }, calls: 100 });
  assert.deepEqual([constant.latency.p50, constant.latency.p99, constant.latency.max, constant.latency.mean], [10, 10, 10, 10]);
  assert.equal(constant.durationMs, 1000);

  const uniform = await simulate(new ServiceBuilder(), {
    backend: { latency: { kind: 'uniform', min: 0, max: 100 } },
    calls: 4000,
    concurrency: 50,
  });
  near(uniform.latency.p50, 50, 4, 'uniform p50');
  near(uniform.latency.p90, 90, 3, 'uniform p90');

  const exponential = await simulate(new ServiceBuilder(), {
    backend: { latency: { kind: 'exponential', mean: '20ms' } },
    calls: 4000,
    concurrency: 50,
  });
  near(exponential.latency.mean, 20, 1.5, 'exponential mean');
  near(exponential.latency.p50, 20 * Math.LN2, 1.5, 'exponential median');

  const lognormal = await simulate(new ServiceBuilder(), {
    backend: { latency: { kind: 'lognormal', median: '30ms', sigma: 0.5 } },
    calls: 4000,
    concurrency: 50,
  });
  near(lognormal.latency.p50, 30, 2, 'lognormal median');
  // p90 of a lognormal: median * e^(1.2816 sigma).
  near(lognormal.latency.p90, 30 * Math.exp(1.2816 * 0.5), 4, 'lognormal p90');
});

test('simulator: an outage window fails the calls that arrive in it (open-loop arrivals)', async () => {
  const report = await simulate(new ServiceBuilder(), {
    backend: { latency: { kind: 'constant', value: '1ms' }, outages: [{ from: '1s', to: '2s' }] },
    calls: 600,
    rate: 200,
    seed: 11,
  });
  // 600 calls at 200/s span about 3 s, a third of them inside the outage.
  near(report.durationMs, 3000, 300, 'duration');
  near(report.successRate, 2 / 3, 0.06, 'success rate');
  assert.equal(report.errors.ECONNRESET, report.failed);
});

test('simulator: a timeout and hedging show up in latency, hedges and budget use', async () => {
  const slowTail = { kind: 'lognormal' as const, median: '10ms' as const, sigma: 1 };
  const plain = await simulate(new ServiceBuilder().timeout('1s'), { backend: { latency: slowTail }, calls: 2000, concurrency: 20 });
  const hedged = await simulate(
    new ServiceBuilder().timeout('1s').hedge({ delay: '25ms', budget: { retryRatio: 0.1, minRetriesPerSecond: 0 } }),
    {
      backend: { latency: slowTail },
      calls: 2000,
      concurrency: 20,
    },
  );
  assert.equal(plain.hedges, 0);
  assert.ok(hedged.hedges > 0);
  assert.ok(hedged.hedges <= 0.1 * 2000 + 32, `hedges ${hedged.hedges} within the 10% budget`);
  assert.ok(hedged.budget.hedgesRefused > 0);
  assert.ok(hedged.latency.p99 < plain.latency.p99, `hedged p99 ${hedged.latency.p99} < plain p99 ${plain.latency.p99}`);
  assert.equal(hedged.attempts.total, 2000 + hedged.hedges);

  const timedOut = await simulate(new ServiceBuilder().timeout('5ms'), {
    backend: { latency: { kind: 'constant', value: '10ms' } },
    calls: 10,
  });
  assert.deepEqual(timedOut.errors, { ERR_MESH_TIMEOUT: 10 });
  assert.equal(timedOut.latency.max, 5);
});

test('simulator: options are checked, naming the field', async () => {
  const builder = new ServiceBuilder();
  const field = async (options: unknown) => {
    try {
      await simulate(builder, options as never);
    } catch (error) {
      assert.ok(error instanceof InvalidOptionError, String(error));
      return error.problems[0]?.field;
    }
    return 'no error';
  };
  assert.equal(await field({ backend: {}, calls: 0 }), 'simulation.calls');
  assert.equal(await field({ backend: { failureRate: 2 }, calls: 1 }), 'simulation.backend.failureRate');
  assert.equal(await field({ backend: { latency: { kind: 'gamma' } }, calls: 1 }), 'simulation.backend.latency.kind');
  assert.equal(await field({ backend: {}, calls: 1, rate: 1, concurrency: 1 }), 'simulation.rate');
  assert.equal(await field({ backend: { outages: [{ from: '2s', to: '1s' }] }, calls: 1 }), 'simulation.backend.outages.0.to');
});

test('simulator: seededRandom is uniform on [0, 1) and reproducible', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  let sum = 0;
  for (let i = 0; i < 10_000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  near(sum / 10_000, 0.5, 0.01, 'mean');
});
