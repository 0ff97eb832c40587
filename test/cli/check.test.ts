import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkFile } from '../../src/cli/check.js';

test('check: a valid file passes, an invalid one lists every problem and fails', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sidecarless-check-'));
  const out: string[] = [];
  const err: string[] = [];
  assert.equal(
    await checkFile(
      'examples/mesh.yaml',
      {},
      (l) => out.push(l),
      (l) => err.push(l),
    ),
    0,
  );
  assert.match(out[0] ?? '', /ok \(2 services: users, checkout\)/);

  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'services:\n  users:\n    timeout: 2\n    retries: { attempts: 300 }\n    extra: true\n  __proto__: {}\n');
  err.length = 0;
  assert.equal(
    await checkFile(
      bad,
      {},
      () => {},
      (l) => err.push(l),
    ),
    1,
  );
  assert.match(err[0] ?? '', /4 problems/);
  const text = err.join('\n');
  for (const field of [
    'services.users.timeout',
    'services.users.retries.attempts',
    'services.users: unknown field "extra"',
    'services.__proto__',
  ]) {
    assert.ok(text.includes(field), `${field} in\n${text}`);
  }
  assert.equal(
    await checkFile(
      join(dir, 'missing.yaml'),
      {},
      () => {},
      () => {},
    ),
    1,
  );
  await rm(dir, { recursive: true });
});

test('check through the sidecarless command: exit status 1 with problems on stderr', () => {
  const ok = spawnSync(process.execPath, ['bin/sidecarless.mjs', 'check', 'examples/mesh.yaml'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  const bad = spawnSync(process.execPath, ['bin/sidecarless.mjs', 'check', 'package.json'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /problems?/);
});
