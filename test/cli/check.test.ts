import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { checkFile, register } from '../../src/cli/check.js';
import { cli, cliEnv } from './cli.js';

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
  const ok = spawnSync(process.execPath, cli('check', 'examples/mesh.yaml'), { encoding: 'utf8', env: cliEnv() });
  assert.equal(ok.status, 0, ok.stderr);
  const bad = spawnSync(process.execPath, cli('check', 'package.json'), { encoding: 'utf8', env: cliEnv() });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /problems?/);
});

test('check --max-bytes must be a whole number from 1: "abc" (NaN) would disable the limit', async () => {
  for (const value of ['abc', '0', '-1', '1.5', '', '2000000000']) {
    const program = new Command('sidecarless').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    register(program);
    await assert.rejects(
      program.parseAsync(['check', 'examples/mesh.yaml', '--max-bytes', value], { from: 'user' }),
      (error: unknown) =>
        error instanceof CommanderError &&
        error.code === 'commander.invalidArgument' &&
        /--max-bytes.*must be an integer from 1 to 1073741824/.test(error.message),
      `--max-bytes ${JSON.stringify(value)}`,
    );
  }
  // A valid limit applies: the example is larger than 10 bytes.
  const bad = spawnSync(process.execPath, cli('check', 'examples/mesh.yaml', '--max-bytes', '10'), { encoding: 'utf8', env: cliEnv() });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /more than the limit of 10 bytes/);
  // And a programmatic NaN is refused rather than read as no limit.
  await assert.rejects(
    checkFile(
      'examples/mesh.yaml',
      { maxBytes: Number.NaN },
      () => {},
      () => {},
    ),
    /limits\.maxBytes/,
  );
});
