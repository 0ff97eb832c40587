import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { ServiceBuilder } from '../../../src/builder/index.js';
import { CallContext } from '../../../src/core/context.js';
import type { NoEndpointsError } from '../../../src/core/errors.js';
import { type Endpoint, StaticDiscovery } from '../../../src/discovery/index.js';
import { balance } from '../../../src/layers/balance/index.js';
import { MockService, VirtualClock } from '../../../src/testing/index.js';

test('a retry above the balancer picks again and lands on a healthy endpoint', async () => {
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const tried: string[] = [];
  const get = new ServiceBuilder({ registry: false })
    .retry({ attempts: 1, backoff: { base: '1ms', jitter: 'none' }, budget: false })
    .balance(
      new StaticDiscovery([{ address: 'down' }, { address: 'up' }]),
      (endpoint: Endpoint) => async (ctx: CallContext) => {
        tried.push(`${ctx.attempt}:${ctx.endpoint}`);
        if (endpoint.address === 'down') throw reset;
        return endpoint.address;
      },
      { strategy: 'round-robin' },
    );
  for (let i = 0; i < 6; i++) assert.equal(await get(), 'up');
  assert.ok(tried.includes('1:down') && tried.includes('2:up'), tried.join(' '));
  await get.close();
});

test('a throwing endpoint factory is reported and that endpoint left out', async () => {
  const errors: string[] = [];
  const discovery = new StaticDiscovery([]);
  const get = new ServiceBuilder({ registry: false }).balance(discovery, (endpoint: Endpoint) => {
    if (endpoint.address === 'bad') throw new Error('no pool for you');
    return async () => endpoint.address;
  });
  get.events.on('endpoint-factory-error', (e) => errors.push(`${e.endpoint}: ${(e.error as Error).message}`));
  discovery.set([{ address: 'bad' }, { address: 'good' }]);
  assert.deepEqual(errors, ['bad: no pool for you']);
  for (let i = 0; i < 5; i++) assert.equal(await get(), 'good');
  await get.close();
});

test('when every endpoint failed to build, calls say so with the factory error as cause, not "none discovered"', async () => {
  const noPool = new Error('no pool for you');
  const discovery = new StaticDiscovery([{ address: 'a' }, { address: 'b' }]);
  let broken = true;
  const get = new ServiceBuilder({ registry: false }).balance(discovery, (endpoint: Endpoint) => {
    if (broken) throw noPool;
    return async () => endpoint.address;
  });
  await assert.rejects(
    get(),
    (e: NoEndpointsError) =>
      e.reason === 'factory-failed' &&
      e.message === 'no endpoints: factory failed (2 endpoints failed to build: no pool for you)' &&
      e.cause === noPool,
  );
  // Once an endpoint builds, or the ones that failed are gone, the failures no longer explain anything.
  broken = false;
  discovery.set([{ address: 'a' }, { address: 'c' }]);
  assert.equal(await get(), 'c');
  discovery.set([]);
  await assert.rejects(get(), (e: NoEndpointsError) => e.reason === 'none-discovered');
  await get.close();
});

test('a throwing classifier cannot break the call or leave an unhandled rejection', async () => {
  const get = new ServiceBuilder({
    registry: false,
    classifier: {
      classifyResult: () => {
        throw new Error('bad classifier');
      },
      classifyError: () => {
        throw new Error('bad classifier');
      },
    },
  }).balance(new StaticDiscovery([{ address: 'a' }]), () => async () => 'fine');
  const warning = once(process, 'warning');
  assert.equal(await get(), 'fine');
  const [emitted] = (await warning) as [Error];
  assert.match(emitted.message, /bookkeeping failed: Error: bad classifier/);
  const dump = (get.stack as unknown as { endpoints(): { pending: number }[] }).endpoints();
  assert.equal(dump[0]?.pending, 0, 'the pending count is still released');
  await get.close();
});

test('as a layer: the wrapped service is ignored and closed with the balancer', async () => {
  const ignored = new MockService<unknown[], string>();
  const endpointService = new MockService<unknown[], string>().script({ value: 'from endpoint' });
  const service = new ServiceBuilder({ registry: false })
    .layer(balance(new StaticDiscovery([{ address: 'a' }]), () => endpointService))
    .build(ignored);
  const ctx = new CallContext();
  assert.equal(await service.call([], ctx), 'from endpoint');
  assert.equal(ctx.endpoint, 'a');
  assert.equal(ignored.calls.length, 0);
  await service.close?.();
  assert.equal(ignored.closed, true);
  assert.equal(endpointService.closed, true);
});

test('an endpoint whose factory threw is built again after a growing backoff, until it builds; close calls off what is due', async () => {
  const clock = new VirtualClock();
  const retries: number[] = [];
  let failures = 2;
  const builds: string[] = [];
  const discovery = new StaticDiscovery([]);
  const get = new ServiceBuilder({ registry: false, clock, random: () => 0 }).balance(
    discovery,
    (endpoint: Endpoint) => {
      builds.push(endpoint.address);
      if (endpoint.address === 'flaky' && failures-- > 0) throw new Error('pool not ready');
      return async () => endpoint.address;
    },
    { failureAccrual: { backoff: { min: '1s', max: '1m', jitter: 0 } } },
  );
  get.events.on('endpoint-factory-error', (e) => retries.push(e.retryInMs));
  discovery.set([{ address: 'flaky' }]);
  await assert.rejects(get(), (e: NoEndpointsError) => e.reason === 'factory-failed');
  assert.deepEqual(retries, [1000]);
  discovery.set([{ address: 'flaky', weight: 3 }]);
  assert.deepEqual(builds, ['flaky'], 'a change of weight does not call the factory before the backoff');
  await clock.advance(999);
  assert.deepEqual(builds, ['flaky'], 'not before its backoff');
  await clock.advance(1);
  assert.deepEqual(retries, [1000, 2000], 'the second failure backs off twice as long');
  await clock.advance(2000);
  assert.deepEqual(builds, ['flaky', 'flaky', 'flaky']);
  assert.equal(await get(), 'flaky');
  const endpoints = get.describe()[0]?.state?.endpoints as { weight: number }[] | undefined;
  assert.equal(endpoints?.[0]?.weight, 3, 'built in its latest form');
  assert.equal(clock.pendingTimers, 0, 'built: nothing more is due');

  // A new address under the same id is built at once, not after the backoff.
  const named = new StaticDiscovery([{ id: 'users-0', address: 'bad', port: 80 }]);
  const byId = new ServiceBuilder({ registry: false, clock }).balance(named, (endpoint: Endpoint) => {
    if (endpoint.address === 'bad') throw new Error('unreachable address');
    return async () => endpoint.address;
  });
  named.set([{ id: 'users-0', address: 'good', port: 80 }]);
  assert.equal(await byId(), 'good', 'the corrected address was built without waiting');
  await byId.close();

  // A factory still failing when the stack closes leaves no timer behind.
  failures = Number.POSITIVE_INFINITY;
  discovery.set([{ address: 'flaky', port: 81 }]);
  assert.equal(clock.pendingTimers, 1);
  await get.close();
  assert.equal(clock.pendingTimers, 0);
});
