/**
 * `sidecarless/testing`: unit-test a policy in virtual time. A {@link VirtualClock} drives every
 * timer of a stack; a {@link MockService} lets the test answer, fail or hold each call.
 *
 * ```ts
 * const clock = new VirtualClock();
 * const mock = new MockService<[string], string>().script({ error: reset }, { error: reset }, { value: 'ok' });
 * const get = new ServiceBuilder({ clock }).retry({ attempts: 3, backoff: { base: '25ms', jitter: 'none' } }).service(mock.fn);
 * assert.equal(await clock.settle(get('42')), 'ok');   // waited 25 ms, then 50 ms
 * ```
 *
 * @module
 */

export { MockCall, MockService, type MockStep } from './mock-service.js';
export {
  type BackendModel,
  type LatencyModel,
  type OutageWindow,
  type SimulationOptions,
  type SimulationReport,
  seededRandom,
  simulate,
} from './simulator.js';
export { flushMicrotasks, VirtualClock } from './virtual-clock.js';
