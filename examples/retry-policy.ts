/**
 * Unit-testing a retry policy in virtual time: the stack runs on a VirtualClock, the service is
 * a MockService scripted to fail twice and then succeed, and the test reads exactly when each
 * attempt happened — no real sleeping, deterministic to the millisecond.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/retry-policy.ts
 */
import assert from 'node:assert/strict';
import { type CallContext, ServiceBuilder } from 'sidecarless';
import { MockService, VirtualClock } from 'sidecarless/testing';

const clock = new VirtualClock();
const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
const backend = new MockService<[string], string>().script({ error: reset }, { error: reset }, { value: 'user 42' });

const getUser = new ServiceBuilder({ name: 'users', clock, registry: false })
  .timeout('1s')
  .retry({ attempts: 3, backoff: { kind: 'exponential', base: '25ms', jitter: 'none' }, budget: false })
  .service((id: string, ctx: CallContext) => backend.call([id], ctx));

getUser.events.on('retry', (e) => console.log(`attempt ${e.attempt} failed (${e.status}); retrying in ${e.delayMs} ms`));
const started = performance.now();
const result = await clock.settle(getUser('42'));

console.log(`result: ${result}`);
console.log(`attempts: ${backend.calls.length}, virtual time elapsed: ${clock.now()} ms`);
assert.equal(result, 'user 42');
assert.equal(backend.calls.length, 3);
assert.equal(clock.now(), 75, 'backoff waits 25 ms then 50 ms');
await getUser.close();
assert.equal(clock.pendingTimers, 0);
console.log(`fails twice, then succeeds; backoff waits 25 ms then 50 ms (real time ${(performance.now() - started).toFixed(1)} ms)`);
console.log('done');
