/**
 * Where built stacks make themselves known, so the admin endpoint can list every service, its
 * layers and live parameters without the application passing references around. A stack
 * registers when built and leaves when closed.
 *
 * @module
 */

import type { LayerDescription } from './service.js';

/** What the registry knows of one stack. */
export interface RegisteredStack {
  readonly name: string;
  describe(): LayerDescription[];
}

/** A set of stacks. */
export class StackRegistry {
  readonly #stacks = new Set<RegisteredStack>();

  add(stack: RegisteredStack): void {
    this.#stacks.add(stack);
  }

  delete(stack: RegisteredStack): void {
    this.#stacks.delete(stack);
  }

  /** Every registered stack, in registration order. */
  list(): RegisteredStack[] {
    return [...this.#stacks];
  }

  get size(): number {
    return this.#stacks.size;
  }
}

/** The registry stacks join unless the builder is given another (or `false`). */
export const defaultRegistry = new StackRegistry();
