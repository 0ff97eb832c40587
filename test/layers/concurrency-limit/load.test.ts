// Under real load on loopback: a node:http server whose handler goes through a concurrency
// limit. At 4x the limit, the excess is shed at once with 503, admitted calls keep their
// latency, nothing hangs, and everything is closed at the end.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { OverloadedError, ServiceBuilder } from '../../../src/index.js';

const MAX = 8;
const QUEUE = 4;
const WORK_MS = 150;
const CALLS = 4 * MAX;

interface Outcome {
  status: number;
  ms: number;
}

function get(port: number, agent: http.Agent): Promise<Outcome> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - start }));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout: a call hung')));
    req.on('error', reject);
  });
}

test('at 4x the limit: excess shed at once with 503, admitted calls keep their latency', { timeout: 20_000 }, async () => {
  let running = 0;
  let peak = 0;
  const work = new ServiceBuilder({ name: 'load', registry: false })
    .concurrencyLimit({ max: MAX, queue: QUEUE })
    .service(async (_path: string | undefined) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(WORK_MS);
      running--;
      return 'done';
    });

  const server = http.createServer((req, res) => {
    work(req.url).then(
      (body) => res.writeHead(200).end(body),
      (error: unknown) => res.writeHead(error instanceof OverloadedError ? 503 : 500).end(String(error)),
    );
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CALLS });
  try {
    // Warm the connections so the measured wave is not connection setup.
    await Promise.all(Array.from({ length: CALLS }, () => get(port, agent)));
    await sleep(2 * WORK_MS + 50);

    const outcomes = await Promise.all(Array.from({ length: CALLS }, () => get(port, agent)));
    const ok = outcomes.filter((o) => o.status === 200);
    const shed = outcomes.filter((o) => o.status === 503);
    assert.equal(ok.length + shed.length, CALLS, 'every call answered, none failed otherwise');
    assert.equal(ok.length, MAX + QUEUE, 'the limit and the queue were used in full');
    assert.equal(shed.length, CALLS - MAX - QUEUE);
    assert.equal(peak, MAX, 'never more than max in flight');

    const slowestShed = Math.max(...shed.map((o) => o.ms));
    const fastestOk = Math.min(...ok.map((o) => o.ms));
    assert.ok(slowestShed < WORK_MS, `shed at once (slowest 503 after ${slowestShed.toFixed(1)} ms)`);
    assert.ok(slowestShed < fastestOk, 'every refusal came back before any admitted call finished');
    const admitted = ok.map((o) => o.ms).sort((a, b) => a - b);
    const firstWave = admitted.slice(0, MAX);
    const queued = admitted.slice(MAX);
    for (const ms of firstWave) assert.ok(ms < WORK_MS + 100, `admitted call took ${ms.toFixed(1)} ms for ${WORK_MS} ms of work`);
    for (const ms of queued) assert.ok(ms < 2 * WORK_MS + 100, `queued call took ${ms.toFixed(1)} ms (one turn of waiting)`);
    assert.equal(work.describe()[0]?.state?.inflight, 0);
    assert.equal(work.describe()[0]?.state?.queued, 0);
  } finally {
    agent.destroy();
    await work.close();
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  }
});
