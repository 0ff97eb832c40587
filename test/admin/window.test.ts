import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAdminServer } from '../../src/admin/index.js';
import { MetricsRegistry, ServiceBuilder, type ServiceStats, StackRegistry } from '../../src/index.js';
import { thin } from '../../src/layers/metrics/registry.js';
import { VirtualClock } from '../../src/testing/index.js';

test('/api/stats honours a window of minutes while the dashboard polls a short one', async () => {
  const clock = new VirtualClock();
  const metrics = new MetricsRegistry();
  const fn = new ServiceBuilder({ name: 'steady', clock, registry: false }).metrics({ registry: metrics }).service(async () => 'ok');
  const admin = await createAdminServer({ port: 0, metrics, stacks: new StackRegistry() });
  const stats = async (windowMs: number): Promise<ServiceStats> => {
    const response = await fetch(`${admin.url}/api/stats?window=${windowMs}`, { signal: AbortSignal.timeout(5_000) });
    const doc = (await response.json()) as { services: ServiceStats[] };
    assert.equal(doc.services.length, 1);
    return doc.services[0] as ServiceStats;
  };
  try {
    // A burst before any window of interest, then one call a second for ten minutes, with the
    // dashboard asking for its 10 s window after each (what takes the samples).
    for (let i = 0; i < 50; i++) await fn();
    for (let s = 0; s < 600; s++) {
      await clock.advance(1_000);
      await fn();
      metrics.snapshot({ windowMs: 10_000 });
    }
    const fiveMinutes = await stats(300_000);
    // The baseline may sit up to 1/16 of the window late (samples thin out with age), never early.
    assert.ok(
      fiveMinutes.windowRequests >= 300 * (15 / 16) && fiveMinutes.windowRequests <= 300,
      `5 min window counted ${fiveMinutes.windowRequests}`,
    );
    assert.ok(Math.abs(fiveMinutes.rps - 1) < 0.01, `rps ${fiveMinutes.rps}`);
    assert.equal((await stats(10_000)).windowRequests, 10, 'short windows stay exact');
    // Longer than the layer has lived: everything since it was built.
    assert.equal((await stats(3_600_000)).windowRequests, 650);
  } finally {
    await admin.close();
    await fn.close();
  }
});

test('samples stay bounded over hours of polling and still cover an hour', () => {
  for (const everyMs of [500, 1_000, 5_000]) {
    const samples = [{ at: 0 }];
    let most = 0;
    for (let at = everyMs; at <= 3 * 3_600_000; at += everyMs) {
      samples.push({ at });
      thin(samples, at);
      most = Math.max(most, samples.length);
    }
    assert.ok(most <= 200, `${most} samples kept polling every ${everyMs} ms`);
    const now = 3 * 3_600_000;
    for (const windowMs of [10_000, 60_000, 600_000, 3_600_000]) {
      const base = samples.find((s) => s.at >= now - windowMs);
      assert.ok(base, `a baseline for ${windowMs} ms`);
      assert.ok(
        base.at - (now - windowMs) <= Math.max(everyMs, windowMs / 16),
        `baseline of ${windowMs} ms is ${base.at - (now - windowMs)} ms late`,
      );
      assert.ok((samples[0] as { at: number }).at <= now - 3_600_000, 'one sample older than the longest window stays');
    }
  }
});
