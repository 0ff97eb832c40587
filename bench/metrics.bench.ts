/**
 * Issue 5's target: the metrics layer adds at most the cost of one bare call per call. Measured
 * as the difference between the same stack with and without `.metrics()`, next to the bare call,
 * the effective+actual pair, a tracing layer with no tracer registered, and — for scale — what
 * counting in prom-client directly would cost (a `Histogram.observe` and a `Counter.inc` per call).
 * The same pair on a clock whose reading is a counter shows the layer's counting apart from its
 * two exact clock reads (~40 ns each on this VM). Also measured in a mesh stack (circuit breaker + timeout + retry + balancer): there the metrics
 * layer joins the breaker's before/after step and takes its start and end times from the readings
 * the layers share, so it adds its counting alone.
 *
 *   npm run bench:metrics
 */
import { availableParallelism, loadavg } from 'node:os';
import { Counter, Histogram, Registry } from 'prom-client';
import { StaticDiscovery } from '../src/discovery/index.js';
import { MetricsRegistry, ServiceBuilder, systemClock } from '../src/index.js';
import { type CaseResult, check, measure, table, writeResults } from './harness.js';
import { bare, benchCommand, withCtx } from './peers.js';

const COMMAND = benchCommand('metrics');

let sink = 0;

const registry = new MetricsRegistry();
const base = new ServiceBuilder({ name: 'bench', registry: false });
const plain = base.retry({ attempts: 3 }).service(withCtx);
const measured = base.metrics({ registry }).retry({ attempts: 3 }).service(withCtx);
const both = base.named('both').metrics({ registry }).retry({ attempts: 3 }).metrics({ registry, scope: 'attempt' }).service(withCtx);
const traced = base.tracing().retry({ attempts: 3 }).service(withCtx);
// The same stacks on a clock whose reading costs next to nothing (a counter): what the layer's
// own counting costs, apart from the two exact clock reads it must pay when no layer shares them.
let tick = 0;
const counterClock = { ...systemClock, now: () => ++tick, approximateNow: undefined };
const onCounter = base.named('counter-clock').with({ clock: counterClock });
const plainOnCounter = onCounter.retry({ attempts: 3 }).service(withCtx);
const measuredOnCounter = onCounter.metrics({ registry }).retry({ attempts: 3 }).service(withCtx);

const endpoints = [1, 2, 3].map((n) => ({ address: `10.0.0.${n}`, port: 80 }));
const meshStack = base.named('mesh').circuitBreaker().timeout('1s').retry({ attempts: 2 });
const mesh = meshStack.balance(new StaticDiscovery(endpoints), () => withCtx);
const meshMeasured = base
  .named('mesh-measured')
  .metrics({ registry })
  .circuitBreaker()
  .timeout('1s')
  .retry({ attempts: 2 })
  .balance(new StaticDiscovery(endpoints), () => withCtx);

const prom = new Registry();
const histogram = new Histogram({ name: 'bench_latency_seconds', help: 'x', labelNames: ['service', 'status'], registers: [prom] });
const counter = new Counter({ name: 'bench_requests_total', help: 'x', labelNames: ['service', 'status'], registers: [prom] });
const labels = { service: 'bench', status: 'ok' };
const promCounted = base.retry({ attempts: 3 }).service(async (x: number, _ctx: unknown) => {
  const start = performance.now();
  const result = await bare(x);
  histogram.observe(labels, (performance.now() - start) / 1000);
  counter.inc(labels);
  return result;
});

const loadBefore = loadavg()[0] ?? 0;
let i = 0;
const results = await measure(
  {
    'bare async call': async () => (sink += await bare(i++)),
    'stack: retry': async () => (sink += await plain(i++)),
    'stack: metrics+retry': async () => (sink += await measured(i++)),
    'stack: metrics+retry+metrics(attempt)': async () => (sink += await both(i++)),
    'mesh stack: breaker+timeout+retry+balance(3)': async () => (sink += await mesh(i++)),
    'mesh stack: metrics+breaker+timeout+retry+balance(3)': async () => (sink += await meshMeasured(i++)),
    'bare async call + 2 performance.now()': async () => (sink += (await bare(i++)) + performance.now() - performance.now()),
    'stack: retry, counter clock': async () => (sink += await plainOnCounter(i++)),
    'stack: metrics+retry, counter clock': async () => (sink += await measuredOnCounter(i++)),
    'stack: tracing (no tracer)+retry': async () => (sink += await traced(i++)),
    'stack: retry, prom-client observe+inc per call': async () => (sink += await promCounted(i++)),
  },
  { calls: 100_000, rounds: 9, processes: 5 },
);

// Each case ran in its own process beside the bare call: its ratio, in bare-call nanoseconds.
const ns = (name: string) => (results.find((r) => r.name === name)?.ratio ?? Number.NaN) * (results[0] as CaseResult).nsPerCall;
const bareNs = ns('bare async call');
const addedByMetrics = (ns('stack: metrics+retry') - ns('stack: retry')) / bareNs;
const addedWithoutClock = (ns('stack: metrics+retry, counter clock') - ns('stack: retry, counter clock')) / bareNs;
const addedToMesh =
  (ns('mesh stack: metrics+breaker+timeout+retry+balance(3)') - ns('mesh stack: breaker+timeout+retry+balance(3)')) / bareNs;
const addedByTracing = (ns('stack: tracing (no tracer)+retry') - ns('stack: retry')) / bareNs;
const addedByProm = (ns('stack: retry, prom-client observe+inc per call') - ns('stack: retry')) / bareNs;
const checks = [
  check('metrics layer added to a retry stack, in bare calls', addedByMetrics, 1, ' bare calls'),
  check('metrics layer added to a mesh stack (breaker+timeout+retry+balancer), in bare calls', addedToMesh, 1, ' bare calls'),
  check('tracing layer without a tracer adds, in bare calls', addedByTracing, 1, ' bare calls'),
];
const counted = registry.snapshot().reduce((a, s) => a + s.requests, 0);
writeResults(
  'metrics',
  COMMAND,
  [
    table(results),
    '',
    `Added per call by the metrics layer: ${(ns('stack: metrics+retry') - ns('stack: retry')).toFixed(0)} ns (${addedByMetrics.toFixed(2)} bare calls of ${bareNs.toFixed(0)} ns).`,
    `Added to a mesh stack (breaker+timeout+retry+balancer), where it shares the breaker's step and the balancer's clock readings: ${(addedToMesh * bareNs).toFixed(0)} ns (${addedToMesh.toFixed(2)} bare calls).`,
    `Of the first, the two clock reads (env.clock = performance.now()) cost ${(ns('bare async call + 2 performance.now()') - bareNs).toFixed(0)} ns here; ` +
      `on a clock whose reading is a counter, the layer adds ${(addedWithoutClock * bareNs).toFixed(0)} ns (${addedWithoutClock.toFixed(2)} bare calls): its counting alone.`,
    `For scale, prom-client observe+inc on the hot path adds ${addedByProm.toFixed(2)} bare calls.`,
    `Calls counted by the metrics layers during the run: ${counted}.`,
    `1-minute load average: ${loadBefore.toFixed(1)} before, ${(loadavg()[0] ?? 0).toFixed(1)} after, on ${availableParallelism()} CPUs — ` +
      'above the CPU count, other processes share the cores and differences of a few hundred ns are noise.',
    '',
    ...checks.map((c) => c.line),
  ].join('\n'),
);
await Promise.all([plain.close(), measured.close(), both.close(), traced.close(), plainOnCounter.close(), measuredOnCounter.close()]);
if (sink === 0) process.stdout.write('');
process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
