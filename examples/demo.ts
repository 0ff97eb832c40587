/**
 * The sidecarless demo (`npm run demo`): the Linkerd story, in one process on loopback.
 *
 * 1. A flaky backend succeeds 10% of the time. A client calls it bare, then through sidecarless
 *    with retries read from the mesh config (`retries.attempts: n`, budget off so the arithmetic
 *    holds). The success rate climbs to 1 − 0.9^(n+1); changing the config changes it live.
 * 2. Three endpoints, one of them slow: the balancer (P2C over peak-EWMA) steers around it.
 *
 * The admin dashboard runs meanwhile; pass `--hold=30` to keep it up 30 s at the end.
 */

import { MetricsRegistry, ServiceBuilder } from 'sidecarless';
import { createAdminServer } from 'sidecarless/admin';
import { configured, createMeshStore } from 'sidecarless/control';
import { meshFetch } from 'sidecarless/fetch';
import { listen, pct } from './support.js';

const CALLS = 2000;
const CONCURRENCY = 50;
const holdSeconds = Number(process.argv.find((a) => a.startsWith('--hold='))?.slice(7) ?? 0);

/** Runs `calls` calls of `fn` with `concurrency` in flight; returns the share that succeeded. */
async function successRate(fn: () => Promise<boolean>, calls = CALLS, concurrency = CONCURRENCY): Promise<number> {
  let next = 0;
  let ok = 0;
  const worker = async (): Promise<void> => {
    while (next++ < calls) if (await fn()) ok++;
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ok / calls;
}

const metrics = new MetricsRegistry();
const store = await createMeshStore({ initial: { services: { flaky: { retries: { attempts: 3 } } } } });
const admin = await createAdminServer({ port: 0, metrics, stores: { mesh: store } });
console.log(`admin dashboard: ${admin.url}/  (metrics ${admin.url}/metrics, live config ${admin.url}/config)\n`);

// 1. Retries from the config against a backend that succeeds 10% of the time.
const flaky = await listen((_req, res) => {
  if (Math.random() < 0.1) res.end('ok');
  else res.writeHead(503).end('unavailable');
});
const mesh = configured(store, 'flaky', { fallback: { retry: { budget: false, backoff: { base: '1ms', max: '2ms' } } } });
const meshed = meshFetch({ builder: new ServiceBuilder({ name: 'flaky' }).metrics({ registry: metrics }), retry: mesh.retry });
const call = async (f: typeof fetch): Promise<boolean> => {
  const res = await f(`${flaky.url}/work`);
  await res.arrayBuffer();
  return res.ok;
};

console.log('1. A backend that succeeds 10% of the time, called bare and through sidecarless');
const bare = await successRate(() => call(fetch));
console.log(`   bare fetch:                      ${pct(bare)}   (expected 10.0%)`);
for (const attempts of [3, 9]) {
  store.swap({ services: { flaky: { retries: { attempts } } } }, `attempts-${attempts}`);
  const rate = await successRate(() => call(meshed));
  const expected = 1 - 0.9 ** (attempts + 1);
  console.log(`   sidecarless, retries.attempts=${attempts}: ${pct(rate)}   (1 - 0.9^${attempts + 1} = ${pct(expected)})`);
}
await meshed.close();
await flaky.close();

// 2. Three endpoints, one slow: the balancer steers around it.
console.log('\n2. Three endpoints, one of them 40 ms slower: where the balancer sends 600 requests');
const hits = new Map<string, number>();
const backends = await Promise.all(
  ['fast-1', 'fast-2', 'slow'].map((name) =>
    listen((_req, res) => {
      hits.set(name, (hits.get(name) ?? 0) + 1);
      if (name === 'slow') setTimeout(() => res.end(name), 40);
      else setTimeout(() => res.end(name), 2);
    }),
  ),
);
const balanced = meshFetch({
  builder: new ServiceBuilder({ name: 'three-endpoints' }).metrics({ registry: metrics }),
  endpoints: backends.map((b) => b.url),
  retry: false,
});
await successRate(async () => (await (await balanced('http://three-endpoints/item')).text()) !== '', 600, 10);
for (const name of ['fast-1', 'fast-2', 'slow']) {
  const n = hits.get(name) ?? 0;
  console.log(
    `   ${name.padEnd(6)} ${String(n).padStart(4)} requests  ${pct(n / 600).padStart(6)}  ${'#'.repeat(Math.round((n / 600) * 40))}`,
  );
}
console.log('   (round robin would send 33.3% to each)');

if (holdSeconds > 0) {
  console.log(`\nholding ${holdSeconds} s: open ${admin.url}/`);
  await new Promise((r) => setTimeout(r, holdSeconds * 1000));
}
await balanced.close();
for (const b of backends) await b.close();
await admin.close();
await store.close?.();
console.log('\ndone');
