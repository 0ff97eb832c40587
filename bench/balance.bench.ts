/**
 * Issue 4's targets: the balancer's pick costs the same at 3, 100 and 10,000 endpoints (within
 * 2x), and a balancer adds at most the cost of one bare call to a stack. Measured as
 * - a call through a bare balancer over N endpoints whose services answer at once (pick, two
 *   clock reads, the classification and the load bookkeeping included), and the pick alone;
 * - the same retry stack ending in `.service(fn)` and in `.balance(discovery, () => fn)`: the
 *   difference is what the balancer adds, paying its own two clock reads;
 * - the same for a mesh stack (metrics + timeout + retry), where the balancer takes its start
 *   time from the reading the metrics layer shares and hands its end time up to it: what a
 *   balancer adds to the stack a service would run, clock reads included once; with P2C over
 *   peak EWMA, P2C over pending calls and round robin, to tell the pick from the structure.
 *
 *   npm run bench:balance
 */
import { ServiceBuilder } from '../src/builder/index.js';
import { CallContext } from '../src/core/context.js';
import { StaticDiscovery } from '../src/discovery/index.js';
import { DenseSet, EndpointState, LoadTable } from '../src/layers/balance/endpoint.js';
import { type BalanceStrategy, balance, resolveBalanceOptions } from '../src/layers/balance/index.js';
import { Picker } from '../src/layers/balance/pick.js';
import { MetricsRegistry } from '../src/layers/metrics/index.js';
import { type CaseResult, check, measure, table, writeResults } from './harness.js';
import { bare, benchCommand, withCtx } from './peers.js';

const COMMAND = benchCommand('balance');
const SIZES = [3, 100, 10_000];

let sink = 0;

function endpoints(n: number) {
  return Array.from({ length: n }, (_, i) => ({ address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 80 }));
}

/** A bare balancer (no other layer) over n endpoints answering at once. */
function balancer(n: number, strategy: BalanceStrategy) {
  const answer = { call: (req: number) => Promise.resolve(req + 1) };
  const builder = new ServiceBuilder({ name: `bench-${n}`, registry: false });
  return builder.layer(balance(new StaticDiscovery(endpoints(n)), () => answer, { strategy })).build({ call: bare });
}

const cases: Record<string, () => Promise<unknown>> = {};
let i = 0;
cases['bare async call'] = async () => (sink += await bare(i++));
const ctx = new CallContext();
for (const strategy of ['p2c-peak-ewma', 'round-robin'] as const) {
  for (const n of SIZES) {
    const service = balancer(n, strategy);
    cases[`balancer call, ${strategy}, ${n} endpoints`] = async () => (sink += (await service.call(i++, ctx)) as number);
  }
}
const plain = new ServiceBuilder({ name: 'plain', registry: false }).retry({ attempts: 2 }).service(withCtx);
const balanced = new ServiceBuilder({ name: 'balanced', registry: false })
  .retry({ attempts: 2 })
  .balance(new StaticDiscovery(endpoints(3)), () => withCtx);
const roundRobin = new ServiceBuilder({ name: 'rr', registry: false })
  .retry({ attempts: 2 })
  .balance(new StaticDiscovery(endpoints(3)), () => withCtx, { strategy: 'round-robin' });
const registry = new MetricsRegistry();
const mesh = (name: string) => new ServiceBuilder({ name, registry: false }).metrics({ registry }).timeout('1s').retry({ attempts: 2 });
const meshPlain = mesh('mesh-plain').service(withCtx);
const meshBalanced = mesh('mesh-balanced').balance(new StaticDiscovery(endpoints(3)), () => withCtx);
const meshRoundRobin = mesh('mesh-rr').balance(new StaticDiscovery(endpoints(3)), () => withCtx, { strategy: 'round-robin' });
const meshLeastRequest = mesh('mesh-lr').balance(new StaticDiscovery(endpoints(3)), () => withCtx, { strategy: 'p2c-least-request' });
cases['stack: retry -> fn'] = async () => (sink += await plain(i++));
cases['stack: retry -> balance(3, p2c) -> fn'] = async () => (sink += await balanced(i++));
cases['stack: retry -> balance(3, round-robin) -> fn'] = async () => (sink += await roundRobin(i++));
cases['mesh stack: metrics+timeout+retry -> fn'] = async () => (sink += await meshPlain(i++));
cases['mesh stack: metrics+timeout+retry -> balance(3, p2c) -> fn'] = async () => (sink += await meshBalanced(i++));
cases['mesh stack: metrics+timeout+retry -> balance(3, round-robin) -> fn'] = async () => (sink += await meshRoundRobin(i++));
cases['mesh stack: metrics+timeout+retry -> balance(3, p2c-least-request) -> fn'] = async () => (sink += await meshLeastRequest(i++));
cases['bare async call + 2 performance.now()'] = async () => (sink += (await bare(i++)) + performance.now() - performance.now());

const results = await measure(cases, { calls: 100_000, rounds: 7, processes: 5 });

/** The pick alone, synchronously: median ns over rounds of a million picks. */
function pickNs(n: number): number {
  const params = resolveBalanceOptions({});
  const set = new DenseSet<unknown, unknown>('readyIndex');
  const table = new LoadTable();
  const noop = { call: () => Promise.resolve(undefined) };
  for (const e of endpoints(n)) {
    const endpoint = { id: `${e.address}:80`, port: 80, weight: 1, metadata: {}, address: e.address };
    set.add(new EndpointState(endpoint, noop, table, 30, 0));
  }
  const picker = new Picker(Math.random, table);
  const rounds: number[] = [];
  let now = 0;
  for (let r = 0; r < 7; r++) {
    const start = process.hrtime.bigint();
    for (let k = 0; k < 1_000_000; k++) if (picker.pick(set, params, (now += 0.001)) === undefined) sink++;
    rounds.push(Number(process.hrtime.bigint() - start) / 1_000_000);
  }
  return rounds.sort((a, b) => a - b)[3] as number;
}
const picks = SIZES.map((n) => ({ n, ns: pickNs(n) }));

// Each case ran in its own process beside the bare call: its ratio, in bare-call nanoseconds.
const ns = (name: string) => (results.find((r) => r.name === name)?.ratio ?? Number.NaN) * (results[0] as CaseResult).nsPerCall;
const bareNs = ns('bare async call');
const spread = (strategy: string) => {
  const values = SIZES.map((n) => ns(`balancer call, ${strategy}, ${n} endpoints`));
  return Math.max(...values) / Math.min(...values);
};
const pickSpread = Math.max(...picks.map((p) => p.ns)) / Math.min(...picks.map((p) => p.ns));
const added = (ns('stack: retry -> balance(3, p2c) -> fn') - ns('stack: retry -> fn')) / bareNs;
const addedRoundRobin = (ns('stack: retry -> balance(3, round-robin) -> fn') - ns('stack: retry -> fn')) / bareNs;
const clockReads = ns('bare async call + 2 performance.now()') - bareNs;
const meshAddedBy = (strategy: string) =>
  (ns(`mesh stack: metrics+timeout+retry -> balance(3, ${strategy}) -> fn`) - ns('mesh stack: metrics+timeout+retry -> fn')) / bareNs;
const meshAdded = meshAddedBy('p2c');
const checks = [
  check('P2C pick alone, slowest / fastest of 3, 100, 10,000 endpoints', pickSpread, 2),
  check('balancer call (P2C), slowest / fastest of 3, 100, 10,000 endpoints', spread('p2c-peak-ewma'), 2),
  check('balancer call (round robin), slowest / fastest of 3, 100, 10,000 endpoints', spread('round-robin'), 2),
  check('balancer (P2C peak EWMA) added to a retry stack, in bare calls', added, 1, ' bare calls'),
  check('balancer (round robin, no clock reads) added to a retry stack, in bare calls', addedRoundRobin, 1, ' bare calls'),
  check('balancer (P2C peak EWMA) added to a mesh stack (metrics+timeout+retry), in bare calls', meshAdded, 1, ' bare calls'),
];
writeResults(
  'balance',
  COMMAND,
  [
    table(results),
    '',
    '| P2C peak-EWMA pick alone | ns/pick |',
    '|---|---:|',
    ...picks.map((p) => `| ${p.n} endpoints | ${p.ns.toFixed(1)} |`),
    '',
    `The balancer adds ${(ns('stack: retry -> balance(3, p2c) -> fn') - ns('stack: retry -> fn')).toFixed(0)} ns per call to a retry stack (${added.toFixed(2)} bare calls of ${bareNs.toFixed(0)} ns) with P2C over peak EWMA, ` +
      `${(ns('stack: retry -> balance(3, round-robin) -> fn') - ns('stack: retry -> fn')).toFixed(0)} ns (${addedRoundRobin.toFixed(2)} bare calls) with round robin.`,
    `Added to a mesh stack (metrics+timeout+retry), where the clock readings are shared, P2C over peak EWMA adds ${(meshAdded * bareNs).toFixed(0)} ns (${meshAdded.toFixed(2)} bare calls); ` +
      `P2C by pending calls alone adds ${meshAddedBy('p2c-least-request').toFixed(2)} bare calls, round robin ${meshAddedBy('round-robin').toFixed(2)}.`,
    `Peak EWMA needs the round-trip time: its two clock reads (performance.now()) alone cost ${clockReads.toFixed(0)} ns here (${(clockReads / bareNs).toFixed(2)} bare calls).`,
    '',
    ...checks.map((c) => c.line),
  ].join('\n'),
);
if (sink === -1) console.log(sink);
