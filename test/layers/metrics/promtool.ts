// `promtool check metrics` on a text exposition, as the admin tests do: the Prometheus project's
// own linter is the judge of valid names, types and units, not our parser.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Asserts promtool finds no error and no lint warning; skips when promtool is not installed. */
export function assertPromtoolClean(t: TestContext, text: string): void {
  if (spawnSync('promtool', ['--version'], { encoding: 'utf8' }).error) {
    t.skip('promtool is not installed (Debian package "prometheus"); CI installs it');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sidecarless-promtool-'));
  try {
    const file = join(dir, 'metrics.txt');
    writeFileSync(file, text);
    const result = spawnSync('sh', ['-c', `promtool check metrics < "${file}"`], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0, `promtool said:\n${result.stdout}${result.stderr}`);
    assert.equal(`${result.stdout}${result.stderr}`.trim(), '', 'no lint warnings either');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
