/**
 * Issue 3's targets, in one run: the success-path cost of timeout + retry + circuit breaker +
 * concurrency limit against the bare async call, opossum's `fire` and cockatiel's
 * wrap(retry, circuitBreaker, timeout); what each layer adds on its own; and the breaker's
 * per-call cost with a 100-call and a 100,000-call window (it must not grow: ring buckets with
 * running sums, no scan per call).
 *
 *   npm run bench:resilience
 */
import { ServiceBuilder } from '../src/index.js';
import { type CaseResult, check, measure, table, writeResults } from './harness.js';
import { bare, benchCommand, cockatielWrap, opossumBreaker, withCtx } from './peers.js';

const COMMAND = benchCommand('resilience');

let sink = 0;

const base = new ServiceBuilder({ name: 'bench', registry: false });
const full = base.timeout('1s').retry({ attempts: 3 }).circuitBreaker().concurrencyLimit({ max: 1000 }).service(withCtx);
const noLayers = base.service(withCtx);
const timeoutOnly = base.timeout('1s').service(withCtx);
const retryOnly = base.retry({ attempts: 3 }).service(withCtx);
const breakerOnly = base.circuitBreaker().service(withCtx);
const limitOnly = base.concurrencyLimit({ max: 1000 }).service(withCtx);
const rateWindow = (calls: number) =>
  base.circuitBreaker({ failureRate: { threshold: 0.5, minimumVolume: 20, window: { calls } } }).service(withCtx);
const window100 = rateWindow(100);
const window100k = rateWindow(100_000);
const timeWindow = base.circuitBreaker({ failureRate: { threshold: 0.5, window: { duration: '10s', buckets: 100 } } }).service(withCtx);

const cockatiel = cockatielWrap();
const opossum = opossumBreaker();

let i = 0;
const results = await measure(
  {
    'bare async call': async () => (sink += await bare(i++)),
    'ours: timeout+retry+circuitBreaker+concurrencyLimit': async () => (sink += await full(i++)),
    'ours: no layers (the wrapper)': async () => (sink += await noLayers(i++)),
    'ours: timeout': async () => (sink += await timeoutOnly(i++)),
    'ours: retry': async () => (sink += await retryOnly(i++)),
    'ours: circuitBreaker (consecutive)': async () => (sink += await breakerOnly(i++)),
    'ours: concurrencyLimit': async () => (sink += await limitOnly(i++)),
    'ours: breaker, rate window of 100 calls': async () => (sink += await window100(i++)),
    'ours: breaker, rate window of 100,000 calls': async () => (sink += await window100k(i++)),
    'ours: breaker, 10s time window in 100 buckets': async () => (sink += await timeWindow(i++)),
    'opossum fire': async () => (sink += await opossum.fire(i++)),
    'cockatiel wrap(retry, breaker, timeout)': async () => (sink += await cockatiel.execute(() => bare(i++))),
  },
  { calls: 200_000, rounds: 7, processes: 5 },
);
opossum.shutdown();
await Promise.all(
  [full, noLayers, timeoutOnly, retryOnly, breakerOnly, limitOnly, window100, window100k, timeWindow].map((f) => f.close()),
);

const ns = (name: string): number => {
  const r = results.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no case ${name}`);
  // Each case ran in its own process beside the bare call: its ratio, in bare-call nanoseconds.
  return r.ratio * (results[0] as CaseResult).nsPerCall;
};
const bareNs = ns('bare async call');
const oursNs = ns('ours: timeout+retry+circuitBreaker+concurrencyLimit');
const opossumNs = ns('opossum fire');
const cockatielNs = ns('cockatiel wrap(retry, breaker, timeout)');
const w100 = ns('ours: breaker, rate window of 100 calls');
const w100k = ns('ours: breaker, rate window of 100,000 calls');
const wrapperNs = ns('ours: no layers (the wrapper)');

const perLayer = [
  ['the wrapper (context, function service)', wrapperNs - bareNs],
  ['timeout', ns('ours: timeout') - wrapperNs],
  ['retry', ns('ours: retry') - wrapperNs],
  ['circuitBreaker', ns('ours: circuitBreaker (consecutive)') - wrapperNs],
  ['concurrencyLimit', ns('ours: concurrencyLimit') - wrapperNs],
] as const;
const sumOfParts = perLayer.reduce((total, [, cost]) => total + cost, bareNs);

const checks = [
  check('our stack vs bare call', oursNs / bareNs, 6),
  check('opossum is >= 10x our cost', 10 / (opossumNs / oursNs), 1, ' (10 / speedup)'),
  check('cockatiel is >= 30x our cost', 30 / (cockatielNs / oursNs), 1, ' (30 / speedup)'),
  check('breaker window 100,000 vs 100 calls', w100k / w100, 1.25),
];

writeResults(
  'resilience',
  COMMAND,
  `${table(results)}\n\n` +
    `Our stack costs ${(oursNs / bareNs).toFixed(2)}x the bare call; opossum's fire is ${(opossumNs / oursNs).toFixed(2)}x ours, ` +
    `cockatiel's wrap ${(cockatielNs / oursNs).toFixed(1)}x ours. ` +
    `opossum's fire itself costs ${(opossumNs / bareNs).toFixed(2)}x the bare call, so being 10x cheaper than it would mean ` +
    `costing ${(opossumNs / bareNs / 10).toFixed(2)}x a bare call — less than the call being wrapped.\n\n` +
    'Per-layer numbers are differences of medians and move by +-50% between runs on a shared machine; ' +
    'the ratios of the whole stack are steadier.\n\n' +
    `Breaker per-call cost: ${w100.toFixed(0)} ns with a 100-call window, ${w100k.toFixed(0)} ns with a 100,000-call window ` +
    `(${(w100k / w100).toFixed(2)}x).\n\n` +
    'What each layer adds over the bare call on the success path (each measured alone, minus the wrapper):\n\n' +
    `${perLayer.map(([name, cost]) => `- ${name}: ${cost.toFixed(0)} ns`).join('\n')}\n` +
    `- sum of the parts: ${sumOfParts.toFixed(0)} ns vs the whole stack measured: ${oursNs.toFixed(0)} ns\n\n` +
    `${checks.map((c) => c.line).join('\n')}\n`,
);
if (sink === 42) console.log('');
