import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs an example as users do (`node --conditions=sidecarless-source --import tsx examples/<name>.ts`:
 * the condition resolves `sidecarless` to this checkout's sources); it must exit by itself.
 */
function run(name: string, timeoutMs = 45_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=sidecarless-source', '--import', 'tsx', `examples/${name}.ts`],
      { cwd: root, timeout: timeoutMs },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const expectations: Record<string, RegExp[]> = {
  'retry-policy': [/attempt 1 failed .* retrying in 25 ms/, /attempt 2 failed .* retrying in 50 ms/, /virtual time elapsed: 75 ms/],
  fetch: [
    /-> 200 ok GET \/users\/42 \(deadline header: present\)/,
    /not retried: POST is not idempotent/,
    /bodies received: 2, identical: true/,
  ],
  undici: [/meshRequest: 200 hello #2 \(server saw 2 requests\)/, /global fetch through the interceptor: 200 hello #2/],
  express: [
    /before warm-up: 503/,
    /limit 2: 200, 200, 503 \(Retry-After 1\), 503 \(Retry-After 1\), 503 \(Retry-After 1\)/,
    /\/users\/:id=2/,
  ],
  fastify: [/limit 2: 200, 200, 503, 503, 503/, /deadline left: 504/, /\/orders\/:id=6/],
  grpc: [/hello user0 from [ab] \(tenant acme, deadline set\)/, /caller saw 0 errors/, /stream: 1 2 3/],
};

for (const [name, patterns] of Object.entries(expectations)) {
  test(`example ${name} runs, prints what happened and exits by itself`, async () => {
    const { code, stdout, stderr } = await run(name);
    assert.equal(code, 0, `exit code ${code}\n${stdout}\n${stderr}`);
    for (const pattern of patterns) assert.match(stdout, pattern);
    assert.match(stdout, /done\s*$/);
  });
}

test('the demo: bare vs meshed success rates next to 1 - 0.9^(n+1), and the balancer avoiding the slow endpoint', async () => {
  const { code, stdout, stderr } = await run('demo', 60_000);
  assert.equal(code, 0, `${stdout}\n${stderr}`);
  assert.match(stdout, /admin dashboard: http:\/\/127\.0\.0\.1:\d+\//);
  const rate = (label: RegExp): number => Number((stdout.match(label)?.[1] ?? 'NaN').replace('%', ''));
  const bare = rate(/bare fetch:\s+([\d.]+)%/);
  const three = rate(/attempts=3:\s+([\d.]+)%/);
  const nine = rate(/attempts=9:\s+([\d.]+)%/);
  // 2000 calls: the binomial standard deviation is about 1.1 points; allow 5.
  assert.ok(Math.abs(bare - 10) < 5, `bare ${bare}`);
  assert.ok(Math.abs(three - 34.4) < 5, `attempts 3: ${three}`);
  assert.ok(Math.abs(nine - 65.1) < 5, `attempts 9: ${nine}`);
  const slow = Number(stdout.match(/slow\s+(\d+) requests/)?.[1]);
  assert.ok(slow < 150, `slow endpoint got ${slow} of 600`);
});
