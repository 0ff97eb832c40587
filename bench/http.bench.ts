/**
 * Issue 6's HTTP targets, in one run on loopback:
 *
 * - p50/p99 of bare `fetch` against `meshFetch` with the default stack (HTTP classifier,
 *   retries with the default budget) at concurrency 1 and 32 — targets: at most +5% p50 and
 *   +10% p99;
 * - the same `fetch` through haproxy as a sidecar with retries (Debian `haproxy`, installed
 *   with apt-get when missing, started on a loopback port with a generated config, stopped at
 *   the end) — target: `meshFetch`'s p99 is lower;
 * - throughput of the meshed undici client (`meshRequest`) against bare `fetch` at
 *   concurrency 32 — target: higher.
 *
 * The upstream runs in a worker thread (its own event loop), answering 200 with a small body.
 * Cases are interleaved round by round, each round starting with the next case, and the median
 * round is reported, so drift of the machine affects all alike. Bounded: a fixed number of requests per round.
 *
 *   npm run bench:http
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { request as undiciRequest } from 'undici';
import { meshFetch, meshRequest } from '../src/integrations/fetch/index.js';
import { check, writeResults } from './harness.js';
import { benchCommand } from './peers.js';

const COMMAND = benchCommand('http');
const REQUESTS = { 1: 1500, 32: 6000 } as const;

/** A free loopback port. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** The upstream, in a worker thread so that its work does not share the client's event loop. */
async function startUpstream(): Promise<{ url: string; stop(): Promise<void> }> {
  const worker = new Worker(
    `const { createServer } = require('node:http');
     const { parentPort } = require('node:worker_threads');
     const body = Buffer.from('{"ok":true,"user":42}');
     const server = createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }); res.end(body); });
     server.keepAliveTimeout = 60000;
     server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
     parentPort.on('message', () => { server.closeAllConnections(); server.close(() => process.exit(0)); });`,
    { eval: true },
  );
  const [port] = (await once(worker, 'message')) as [number];
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      worker.postMessage('stop');
      await once(worker, 'exit');
    },
  };
}

/** haproxy as a sidecar with retries, as a mesh proxy would run it; `undefined` when unavailable. */
async function startHaproxy(upstreamPort: number): Promise<{ url: string; stop(): Promise<void> } | undefined> {
  const has = () => {
    try {
      execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!has()) {
    console.error('haproxy not found: installing the Debian package (apt-get install -y haproxy)');
    try {
      execFileSync('apt-get', ['install', '-y', 'haproxy'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch (error) {
      console.error(`could not install haproxy: ${String(error)}`);
    }
    if (!has()) return undefined;
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  timeout connect 1s',
      '  timeout client 10s',
      '  timeout server 10s',
      '  timeout http-keep-alive 10s',
      '  option http-keep-alive',
      '  retries 2',
      '  retry-on conn-failure empty-response response-timeout 503 504',
      'frontend sidecar',
      `  bind 127.0.0.1:${port}`,
      '  default_backend upstream',
      'backend upstream',
      '  http-reuse always',
      `  server u1 127.0.0.1:${upstreamPort}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`).then((r) => r.arrayBuffer());
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `total` calls with `concurrency` in flight; returns each call's latency (µs) and the wall time. */
async function run(call: () => Promise<unknown>, total: number, concurrency: number): Promise<{ latencies: Float64Array; ms: number }> {
  const latencies = new Float64Array(total);
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < total; i = next++) {
      const t0 = performance.now();
      await call();
      latencies[i] = (performance.now() - t0) * 1000;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, ms: performance.now() - started };
}

const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

interface CaseStats {
  p50: number;
  p99: number;
  rps: number;
}

/** Interleaved rounds of every case; per case the median round's p50, p99 and requests/s. */
async function compare(cases: Record<string, () => Promise<unknown>>, concurrency: 1 | 32): Promise<Record<string, CaseStats>> {
  const total = REQUESTS[concurrency];
  const samples: Record<string, { p50: number[]; p99: number[]; rps: number[] }> = {};
  for (const [name, call] of Object.entries(cases)) {
    samples[name] = { p50: [], p99: [], rps: [] };
    await run(call, 500, concurrency); // warm up: connections, JIT
  }
  const entries = Object.entries(cases);
  // As many rounds as cases: each case runs first (right after the GC) exactly once.
  for (let round = 0; round < entries.length; round++) {
    // Each round starts with another case, so no case always runs first (after the GC) or last.
    for (let k = 0; k < entries.length; k++) {
      const [name, call] = entries[(round + k) % entries.length] as [string, () => Promise<unknown>];
      (globalThis as { gc?: () => void }).gc?.();
      const { latencies, ms } = await run(call, total, concurrency);
      latencies.sort();
      const s = samples[name] as { p50: number[]; p99: number[]; rps: number[] };
      s.p50.push(quantile(latencies, 0.5));
      s.p99.push(quantile(latencies, 0.99));
      s.rps.push(total / (ms / 1000));
    }
  }
  return Object.fromEntries(
    Object.entries(samples).map(([name, s]) => [name, { p50: median(s.p50), p99: median(s.p99), rps: median(s.rps) }]),
  );
}

function tableOf(title: string, stats: Record<string, CaseStats>): string {
  const base = Object.values(stats)[0] as CaseStats;
  const lines = [`### ${title}`, '', '| case | p50 µs | p99 µs | p50 ratio | p99 ratio | requests/s |', '|---|---:|---:|---:|---:|---:|'];
  for (const [name, s] of Object.entries(stats)) {
    lines.push(
      `| ${name} | ${s.p50.toFixed(0)} | ${s.p99.toFixed(0)} | ${(s.p50 / base.p50).toFixed(3)}x | ${(s.p99 / base.p99).toFixed(3)}x | ${s.rps.toFixed(0)} |`,
    );
  }
  return lines.join('\n');
}

const upstream = await startUpstream();
const sidecar = await startHaproxy(Number(new URL(upstream.url).port));
const meshed = meshFetch({ name: 'bench-http', registry: false });
const meshedRequest = meshRequest({ name: 'bench-undici', registry: false });
const target = `${upstream.url}/users/42`;
const drain = (res: Response) => res.arrayBuffer();

const cases: Record<string, () => Promise<unknown>> = {
  'bare fetch': () => fetch(target).then(drain),
  'meshFetch (default stack)': () => meshed(target).then(drain),
};
// The same bare fetch again: how far apart two identical cases land says how noisy the run is.
cases['bare fetch (control, same as the first)'] = () => fetch(target).then(drain);
if (sidecar !== undefined) cases['fetch via haproxy sidecar (retries 2)'] = () => fetch(`${sidecar.url}/users/42`).then(drain);
cases['meshRequest (undici, default stack)'] = () => meshedRequest(target).then((r) => r.body.dump());
cases['bare undici request'] = () => undiciRequest(target).then((r) => r.body.dump());

const results: Record<number, Record<string, CaseStats>> = {};
for (const concurrency of [1, 32] as const) {
  results[concurrency] = await compare(cases, concurrency);
  console.error(`concurrency ${concurrency} done`);
}

const checks: string[] = [];
for (const c of [1, 32] as const) {
  const r = results[c] as Record<string, CaseStats>;
  const bare = r['bare fetch'] as CaseStats;
  const mesh = r['meshFetch (default stack)'] as CaseStats;
  checks.push(check(`meshFetch p50 / bare fetch p50, concurrency ${c}`, mesh.p50 / bare.p50, 1.05).line);
  checks.push(check(`meshFetch p99 / bare fetch p99, concurrency ${c}`, mesh.p99 / bare.p99, 1.1).line);
  const proxy = r['fetch via haproxy sidecar (retries 2)'];
  if (proxy !== undefined) checks.push(check(`meshFetch p99 / haproxy sidecar p99, concurrency ${c}`, mesh.p99 / proxy.p99, 1).line);
  else checks.push(`- SKIP haproxy comparison at concurrency ${c}: haproxy unavailable`);
  const undici = r['meshRequest (undici, default stack)'] as CaseStats;
  checks.push(check(`bare fetch requests/s / meshRequest requests/s, concurrency ${c}`, bare.rps / undici.rps, 1).line);
}

await meshed.close();
await meshedRequest.close();
await sidecar?.stop();
await upstream.stop();

writeResults(
  'http',
  COMMAND,
  [
    `Loopback; upstream node:http in a worker thread; ${Object.keys(cases).length} interleaved rounds (rotating order, one per case) of ${REQUESTS[1]} (concurrency 1) and ${REQUESTS[32]} (concurrency 32) requests per case, median round.`,
    `haproxy: ${sidecar === undefined ? 'unavailable' : execFileSync('haproxy', ['-v']).toString().split('\n')[0]}, keep-alive both sides, \`retries 2\`, \`retry-on conn-failure empty-response response-timeout 503 504\`.`,
    '',
    tableOf('concurrency 1', results[1] as Record<string, CaseStats>),
    '',
    tableOf('concurrency 32', results[32] as Record<string, CaseStats>),
    '',
    'The control row is the first row measured again: its distance from 1.000x is the noise of this run (other',
    'processes on the machine, GC); ratios inside that distance are not differences.',
    '',
    '### Targets',
    '',
    ...checks,
  ].join('\n'),
);
