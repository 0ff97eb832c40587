import type { Subscription } from '../../core/events.js';

/** One condition a {@link Readiness} waits for; release it once that condition holds. */
export class Latch {
  readonly name: string;
  #released = false;
  readonly #owner: Readiness;

  /** @internal use {@link Readiness.latch}. */
  constructor(owner: Readiness, name: string) {
    this.#owner = owner;
    this.name = name;
  }

  /** Whether {@link Latch.release} was called. */
  get released(): boolean {
    return this.#released;
  }

  /** Releases the latch. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#owner.released(this);
  }
}

/**
 * Ready when every latch is released, and never unready afterwards — linkerd2-proxy's
 * `Readiness`/`Latch`: a process is ready once its config arrived, its caches warmed, its
 * endpoints resolved. Any number of latches; each names what it waits for, so `/ready` and
 * {@link NotReadyError} can say what is missing.
 */
export class Readiness {
  readonly #held = new Set<Latch>();
  readonly #waiters = new Set<() => void>();
  #ready = true;
  #everLatched = false;

  /** A new latch that holds readiness until released. Throws once readiness was reached. */
  latch(name = 'latch'): Latch {
    if (this.#everLatched && this.#ready) {
      throw new Error(`readiness already reached: cannot add latch "${name}"`);
    }
    const latch = new Latch(this, name);
    this.#held.add(latch);
    this.#ready = false;
    this.#everLatched = true;
    return latch;
  }

  /** True once every latch is released (or when none was ever taken). */
  get isReady(): boolean {
    return this.#ready;
  }

  /** Names of latches still held. */
  get pending(): string[] {
    return [...this.#held].map((latch) => latch.name);
  }

  /** Calls `fn` once ready (at once if already ready). */
  onReady(fn: () => void): Subscription {
    if (this.#ready) {
      fn();
      return { dispose() {} };
    }
    this.#waiters.add(fn);
    return { dispose: () => this.#waiters.delete(fn) };
  }

  /** Resolves once ready. */
  whenReady(): Promise<void> {
    return new Promise((resolve) => this.onReady(resolve));
  }

  /** Pending waiters, for leak checks. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  /** @internal */
  released(latch: Latch): void {
    this.#held.delete(latch);
    if (this.#held.size > 0 || this.#ready) return;
    this.#ready = true;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter();
  }
}
