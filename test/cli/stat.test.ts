import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { StatsDocument } from '../../src/admin/index.js';
import { formatStatTable, runStat } from '../../src/cli/stat.js';
import { startFixture } from '../admin/fixture.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/sidecarless.mjs', import.meta.url));

test('`sidecarless stat --once --json` against a real admin server', async () => {
  const fx = await startFixture();
  try {
    for (let i = 0; i < 20; i++) await Promise.allSettled([fx.users(String(i)), fx.orders(String(i))]);
    const { stdout } = await run(process.execPath, [BIN, 'stat', fx.admin.url, '--once', '--json', '--window', '30s'], { timeout: 30_000 });
    const doc = JSON.parse(stdout) as StatsDocument;
    assert.equal(doc.windowMs, 30_000);
    const rows = doc.services.map((s) => [s.service, s.scope, s.requests]);
    assert.deepEqual(rows.filter((r) => r[1] === 'call').sort(), [
      ['orders', 'call', 20],
      ['users', 'call', 20],
    ]);
    const users = doc.services.find((s) => s.service === 'users' && s.scope === 'call');
    assert.ok(users && users.rps > 0 && users.latencyMs.p99 !== null);

    const table = await run(process.execPath, [BIN, 'stat', fx.admin.url, '--once'], { timeout: 30_000 });
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+SCOPE\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P95\s+LATENCY_P99\s+RETRIES\s+SKIPPED$/);
    assert.ok(
      lines.some((l) => /^users\s+effective\s+\d+\.\d\d%\s+[\d.]+rps\s+[\d.]+ms/.test(l)),
      table.stdout,
    );
    assert.ok(
      lines.some((l) => /^users\s+actual\s/.test(l)),
      table.stdout,
    );
  } finally {
    await fx.close();
  }
});

test('a refreshing stat stops when its signal fires; an unreachable server is exit code 1', async () => {
  const fx = await startFixture();
  const chunks: string[] = [];
  const out = { write: (chunk: string) => chunks.push(chunk) } as unknown as NodeJS.WritableStream;
  const controller = new AbortController();
  try {
    const running = runStat(
      fx.admin.url,
      { intervalMs: 100, windowMs: 10_000, timeoutMs: 5_000, once: false, json: true },
      out,
      controller.signal,
    );
    while (chunks.length < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    assert.equal(await running, 0);
    assert.ok(chunks.every((c) => JSON.parse(c).services.length === 3));
  } finally {
    await fx.close();
  }
  const failed = await run(process.execPath, [BIN, 'stat', 'http://127.0.0.1:9', '--once', '--timeout', '2s'], { timeout: 30_000 }).catch(
    (e) => e,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /cannot read http:\/\/127\.0\.0\.1:9/);
  const bad = await run(process.execPath, [BIN, 'stat', 'http://127.0.0.1:9', '--interval', 'soon'], { timeout: 30_000 }).catch((e) => e);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--interval must be a duration/);
});

test('the table formats like linkerd viz stat', () => {
  const zero = { retried: 0, budget: 0, not_retryable: 0, exhausted: 0, deadline: 0, cancelled: 0 };
  const table = formatStatTable([
    {
      service: 'users',
      scope: 'call',
      requests: 100,
      windowRequests: 100,
      successRate: 0.995,
      rps: 12.34,
      latencyMs: { p50: 2.5, p95: 18.2, p99: 97 },
      inFlight: 0,
      retries: { ...zero, retried: 3, budget: 1 },
      events: {},
      refusals: {},
      routes: [],
    },
  ]);
  assert.equal(
    table,
    [
      'NAME    SCOPE       SUCCESS       RPS   LATENCY_P50   LATENCY_P95   LATENCY_P99   RETRIES   SKIPPED',
      'users   effective    99.50%   12.3rps         2.5ms          18ms          97ms         3         1',
      '',
    ].join('\n'),
  );
  assert.match(formatStatTable([]), /No metrics layers/);
});
