// Helpers shared by the tests of the admission-control layers.

import type { Layer } from '../../../src/core/service.js';
import { FusedService, type MeshEventName, type MeshEvents, type MeshFunction, ServiceBuilder } from '../../../src/index.js';
import { flushMicrotasks, MockService, VirtualClock } from '../../../src/testing/index.js';

export { observe } from '../../support/leaks.js';

/** A stack of `layers` over a mock, in virtual time, with `random` fixed. */
export function setup(layers: (b: ServiceBuilder) => ServiceBuilder, options: { random?: () => number; classifier?: any } = {}) {
  const clock = new VirtualClock();
  const mock = new MockService<[string], string>();
  const builder = layers(
    new ServiceBuilder({ clock, registry: false, random: options.random ?? (() => 0), classifier: options.classifier }),
  );
  const fn = builder.service(mock.fn) as unknown as MeshFunction<[string], string>;
  return { clock, mock, fn };
}

/** Builds with one layer and returns the layer's service too. */
export function setupLayer<S>(layer: Layer<any, any>, options: { random?: () => number; classifier?: any } = {}) {
  const s = setup((b) => b.layer(layer), options);
  // Before/after layers run fused (core/hooks.ts); the layer's own service is the group's outermost.
  const stack = s.fn.stack;
  return { ...s, service: (stack instanceof FusedService ? stack.outermost : stack) as unknown as S };
}

/** Records the events of one name. */
export function record<K extends MeshEventName>(fn: MeshFunction<any[], unknown>, name: K): MeshEvents[K][] {
  const seen: MeshEvents[K][] = [];
  fn.events.on(name, (e) => seen.push(e));
  return seen;
}

/** Answers the mock's next `n` held calls with a value. */
export async function answer(mock: MockService<[string], string>, n: number, value = 'ok'): Promise<void> {
  for (let i = 0; i < n; i++) (await mock.nextCall()).respond(value);
  await flushMicrotasks();
}

export const boom = (): Error => Object.assign(new Error('boom'), { code: 'EBOOM' });
