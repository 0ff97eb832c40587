/**
 * What every bench compares against: the bare async call, the same function taking a context,
 * and the peers a user would reach for instead — cockatiel's wrap(retry, circuitBreaker,
 * timeout) and opossum's `fire` — configured alike in every bench.
 */
import { ConsecutiveBreaker, circuitBreaker, handleAll, retry, TimeoutStrategy, timeout, wrap } from 'cockatiel';
import CircuitBreaker from 'opossum';

/** The bare call every ratio is taken against. */
export async function bare(x: number): Promise<number> {
  return x + 1;
}

/** The same work, as a function wrapped by `.service()` (it receives the context). */
export async function withCtx(x: number, _ctx: unknown): Promise<number> {
  return x + 1;
}

/** cockatiel's policy of the same shape as our timeout+retry+breaker stacks. */
export function cockatielWrap(): { execute(fn: () => Promise<number>): Promise<number> } {
  return wrap(
    retry(handleAll, { maxAttempts: 3 }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(7) }),
    timeout(1000, TimeoutStrategy.Cooperative),
  );
}

/** opossum's breaker over the bare call, with a timeout as its users configure it. */
export function opossumBreaker(): CircuitBreaker<[number], number> {
  return new CircuitBreaker(bare, { timeout: 1000, errorThresholdPercentage: 50, resetTimeout: 10_000 });
}

/** How a bench is run, as written into its results. */
export function benchCommand(name: string): string {
  return `npm run bench:${name}   (tsc -p tsconfig.bench.json && node --expose-gc build/bench/${name}.bench.js)`;
}
