import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { StatsDocument } from '../../src/admin/index.js';
import { formatStatTable, runStat } from '../../src/cli/stat.js';
import { startFixture } from '../admin/fixture.js';
import { cli, cliEnv, within } from './cli.js';

const run = promisify(execFile);

test('`sidecarless stat --once --json` against a real admin server', async () => {
  const fx = await startFixture();
  try {
    for (let i = 0; i < 20; i++) await Promise.allSettled([fx.users(String(i)), fx.orders(String(i))]);
    const { stdout } = await run(process.execPath, cli('stat', fx.admin.url, '--once', '--json', '--window', '30s'), {
      timeout: 30_000,
      env: cliEnv(),
    });
    const doc = JSON.parse(stdout) as StatsDocument;
    assert.equal(doc.windowMs, 30_000);
    const rows = doc.services.map((s) => [s.service, s.scope, s.requests]);
    assert.deepEqual(rows.filter((r) => r[1] === 'call').sort(), [
      ['orders', 'call', 20],
      ['users', 'call', 20],
    ]);
    const users = doc.services.find((s) => s.service === 'users' && s.scope === 'call');
    assert.ok(users && users.rps > 0 && users.latencyMs.p99 !== null);

    const table = await run(process.execPath, cli('stat', fx.admin.url, '--once'), { timeout: 30_000, env: cliEnv() });
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
  const failed = await run(process.execPath, cli('stat', 'http://127.0.0.1:9', '--once', '--timeout', '2s'), {
    timeout: 30_000,
    env: cliEnv(),
  }).catch((e) => e);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /cannot read http:\/\/127\.0\.0\.1:9/);
  const bad = await run(process.execPath, cli('stat', 'http://127.0.0.1:9', '--interval', 'soon'), {
    timeout: 30_000,
    env: cliEnv(),
  }).catch((e) => e);
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

/** An HTTP server that takes requests and never answers; `requested` resolves on the first. */
async function silentServer(): Promise<{ url: string; requested: Promise<IncomingMessage>; close(): void }> {
  let arrived!: (req: IncomingMessage) => void;
  const requested = new Promise<IncomingMessage>((resolve) => {
    arrived = resolve;
  });
  const server = createServer((req) => arrived(req));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requested,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Starts `sidecarless ...args` with its output collected and its exit awaited. */
function startCli(...args: string[]) {
  const child = spawn(process.execPath, cli(...args), { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => {
    output.stdout += d;
  });
  child.stderr.on('data', (d) => {
    output.stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output, exited };
}

test('`sidecarless stat`: Ctrl-C while a read is pending exits at once with 130, not after --timeout', async () => {
  const admin = await silentServer();
  const { child, output, exited } = startCli('stat', admin.url, '--timeout', '10m');
  try {
    await within(admin.requested, 20_000, 'the first read');
    child.kill('SIGINT');
    assert.deepEqual(await within(exited, 5_000, 'the exit after SIGINT'), { code: 130, signal: null }, output.stderr);
    assert.equal(output.stderr, '', 'an interrupted read is not a failure to report');
  } finally {
    child.kill('SIGKILL');
    admin.close();
  }
});

test('`sidecarless stat`: Ctrl-C between refreshes exits with 130 too', async () => {
  const fx = await startFixture();
  const { child, output, exited } = startCli('stat', fx.admin.url, '--json', '--interval', '1h');
  try {
    await within(
      new Promise<void>((resolve) => child.stdout.on('data', () => output.stdout.includes('\n') && resolve())),
      20_000,
      'the first refresh',
    );
    child.kill('SIGINT');
    assert.deepEqual(await within(exited, 5_000, 'the exit after SIGINT'), { code: 130, signal: null }, output.stderr);
  } finally {
    child.kill('SIGKILL');
    await fx.close();
  }
});

test('`sidecarless stat` refuses an <admin-url> that is not an http or https URL, instead of failing every refresh', () => {
  for (const url of ['not-a-url', 'ftp://127.0.0.1:9990', '127.0.0.1:9990', 'http://user:secret@127.0.0.1:9990']) {
    const result = spawnSync(process.execPath, cli('stat', url), { encoding: 'utf8', env: cliEnv(), timeout: 20_000 });
    assert.equal(result.status, 1, `${url}: ${result.stderr}`);
    assert.match(result.stderr, /admin-url/, url);
    assert.match(result.stderr, /must be an http or https url/, url);
  }
  // fetch refuses a URL with credentials on every read, printing them: refused up front too.
  const withCredentials = spawnSync(process.execPath, cli('stat', 'http://user:secret@127.0.0.1:9990'), {
    encoding: 'utf8',
    env: cliEnv(),
    timeout: 20_000,
  });
  assert.match(withCredentials.stderr, /without credentials/);
});

test('`sidecarless stat` says why a read failed: the cause behind "fetch failed", or the timeout', async () => {
  // A port that was just bound and released: nothing listens, so the connection is refused.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as { port: number };
  await new Promise((resolve) => closed.close(resolve));
  const refused = spawnSync(process.execPath, cli('stat', `http://127.0.0.1:${port}`, '--once'), {
    encoding: 'utf8',
    env: cliEnv(),
    timeout: 20_000,
  });
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, new RegExp(`cannot read http://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\n$`));

  const unknown = spawnSync(process.execPath, cli('stat', 'http://sidecarless-test.invalid', '--once'), {
    encoding: 'utf8',
    env: cliEnv(),
    timeout: 20_000,
  });
  assert.equal(unknown.status, 1);
  // ENOTFOUND, or EAI_AGAIN where no resolver answers: either way the code is shown.
  assert.match(
    unknown.stderr,
    /cannot read http:\/\/sidecarless-test\.invalid: getaddrinfo (ENOTFOUND|EAI_AGAIN) sidecarless-test\.invalid/,
  );

  const admin = await silentServer();
  try {
    const { output, exited } = startCli('stat', admin.url, '--once', '--timeout', '200ms');
    assert.deepEqual(await within(exited, 20_000, 'the timed-out read'), { code: 1, signal: null });
    assert.match(output.stderr, /cannot read http:\/\/127\.0\.0\.1:\d+: no answer within 200ms\n$/);
  } finally {
    admin.close();
  }
});
