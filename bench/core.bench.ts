/**
 * Issue 2's targets, in one run: the success-path cost of the timeout+retry stack against the
 * bare async call and against cockatiel's wrap(retry, circuitBreaker, timeout) and opossum's
 * fire; the default stack as it grows; and the heap a wrapped service costs.
 *
 *   npm run bench:core   (compiled with tsc, as users run it)
 */
import { Readiness, ServiceBuilder } from '../src/index.js';
import { check, measure, table, writeResults } from './harness.js';
import { bare, benchCommand, cockatielWrap, opossumBreaker, withCtx } from './peers.js';

const COMMAND = benchCommand('core');

let sink = 0;

const readiness = new Readiness();
const base = new ServiceBuilder({ name: 'bench', registry: false });
const timeoutRetry = base.timeout('1s').retry({ attempts: 3 }).service(withCtx);
const timeoutOnly = base.timeout('1s').service(withCtx);
const retryOnly = base.retry({ attempts: 3 }).service(withCtx);
const withReadiness = base.readiness(readiness).timeout('1s').retry({ attempts: 3 }).service(withCtx);
const noLayers = base.service(withCtx);

const cockatiel = cockatielWrap();
const opossum = opossumBreaker();

let i = 0;
const results = await measure(
  {
    'bare async call': async () => (sink += await bare(i++)),
    'sidecarless: no layers': async () => (sink += await noLayers(i++)),
    'sidecarless: timeout': async () => (sink += await timeoutOnly(i++)),
    'sidecarless: retry': async () => (sink += await retryOnly(i++)),
    'sidecarless: timeout+retry': async () => (sink += await timeoutRetry(i++)),
    'sidecarless: readiness+timeout+retry': async () => (sink += await withReadiness(i++)),
    'cockatiel wrap(retry, breaker, timeout)': async () => (sink += await cockatiel.execute(() => bare(i++))),
    'opossum fire': async () => (sink += await opossum.fire(i++)),
  },
  { calls: 100_000, rounds: 7 },
);
opossum.shutdown();

const byName = new Map(results.map((r) => [r.name, r]));
const ours = byName.get('sidecarless: timeout+retry')!;
// Each case ran beside its own baseline: compare ratios, not nanoseconds of different processes.
const cockatielRatio = byName.get('cockatiel wrap(retry, breaker, timeout)')!.ratio;

// Heap per wrapped service, after one call each (so lazily made state such as the retry budget
// is counted): services sharing one policy (one builder chain), and services each built with
// their own options.
const gc = (globalThis as { gc?: () => void }).gc;
async function heapPerService(make: () => (x: number) => Promise<number>): Promise<number> {
  // Warm first, so the count is the services' own heap, not the first calls' feedback and code.
  const warm = make();
  for (let n = 0; n < 50_000; n++) await warm(n);
  await (warm as unknown as { close(): Promise<void> }).close();
  const N = 2000;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const kept: ((x: number) => Promise<number>)[] = [];
  for (let n = 0; n < N; n++) kept.push(make());
  for (const f of kept) await f(1);
  gc?.();
  const bytes = (process.memoryUsage().heapUsed - before) / N;
  await Promise.all(kept.map((f) => (f as unknown as { close(): Promise<void> }).close()));
  return bytes;
}
const policy = base.timeout('1s').retry({ attempts: 3 });
const sharedPolicyBytes = await heapPerService(() => policy.service(withCtx));
const ownOptionsBytes = await heapPerService(() => base.timeout('1s').retry({ attempts: 3 }).service(withCtx));
const bytesPerService = sharedPolicyBytes;

const checks = [
  check('timeout+retry vs bare call', ours.ratio, 4),
  check('cockatiel / ours (must be >= 30)', 30 / (cockatielRatio / ours.ratio), 1, ' (30 / speedup)'),
  check('heap per wrapped timeout+retry service (shared policy)', bytesPerService, 1024, ' B'),
];
writeResults(
  'core',
  COMMAND,
  `${table(results)}\n\ncockatiel is ${(cockatielRatio / ours.ratio).toFixed(1)}x the cost of our timeout+retry stack.\n` +
    `A wrapped timeout+retry service retains ${sharedPolicyBytes.toFixed(0)} bytes of heap when services share one policy, ` +
    `${ownOptionsBytes.toFixed(0)} bytes when each is built with its own options (2,000 built, one call each, measured after gc); ` +
    'no timer or interval exists per instance while idle (deadlines share per-duration lists).\n\n' +
    `${checks.map((c) => c.line).join('\n')}\n`,
);
if (sink === 42) console.log('');
