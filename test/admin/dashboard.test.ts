import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startFixture } from './fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * What the page shows for one service: chart paths and headline figures. Kept as source text:
 * tsx would wrap a function's inner helpers in `__name(...)`, which the page does not have.
 */
const READ_CHARTS = `(name) => {
  const card = document.querySelector('.service[data-service="' + name + '"]');
  if (!card) return null;
  const rps = card.querySelector('svg[data-kind="rps"]'), latency = card.querySelector('svg[data-kind="latency"]');
  return {
    points: Number(rps?.dataset.points ?? 0),
    rpsPath: rps?.querySelector('path.line')?.getAttribute('d') ?? '',
    latencyPaths: [...(latency?.querySelectorAll('path.line') ?? [])].map((p) => p.getAttribute('d') ?? ''),
    successRate: card.querySelector('.sr')?.textContent ?? '',
    rps: card.querySelector('.rps')?.textContent ?? '',
  };
}`;

interface ChartsView {
  points: number;
  rpsPath: string;
  latencyPaths: string[];
  successRate: string;
  rps: string;
}

const readCharts = (page: import('playwright-core').Page, service: string): Promise<ChartsView | null> =>
  page.evaluate(`(${READ_CHARTS})(${JSON.stringify(service)})`) as Promise<ChartsView | null>;

const POINTS = `Number(document.querySelector('.service[data-service="users"] svg[data-kind="rps"]')?.getAttribute('data-points'))`;

test('the dashboard draws live charts in headless Chromium while traffic flows', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is not installed (Debian package "chromium"); CI installs it`);
    return;
  }
  const fx = await startFixture();
  const stopTraffic = fx.traffic(4);
  const profile = mkdtempSync(join(tmpdir(), 'sidecarless-chromium-'));
  // A fresh profile directory per run (playwright's way of passing --user-data-dir).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    timeout: 30_000,
    viewport: { width: 1360, height: 1000 },
  });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.goto(fx.admin.url, { timeout: 15_000 });
    await page.waitForFunction(`${POINTS} >= 3`, undefined, { timeout: 15_000 });
    const first = await readCharts(page, 'users');
    assert.ok(first);
    await page.waitForFunction(`${POINTS} >= ${first.points + 2}`, undefined, { timeout: 15_000 });
    const second = await readCharts(page, 'users');
    assert.ok(second);
    assert.ok(second.points > first.points, 'more points plotted');
    assert.notEqual(second.rpsPath, first.rpsPath, 'the RPS chart moved');
    assert.notDeepEqual(second.latencyPaths, first.latencyPaths, 'the latency chart moved');
    assert.equal(second.latencyPaths.length, 3, 'p50, p95 and p99 lines');
    assert.match(second.successRate, /^\d+(\.\d+)?%$/);
    assert.ok(Number(second.rps) > 0, `rps shown: ${second.rps}`);
    // The other panels: endpoints with load and state, breaker state, config version and rejection.
    assert.equal(await page.locator('#endpoints tbody tr').count(), 3);
    assert.match((await page.locator('#breakers').textContent()) ?? '', /users.*circuit-breaker.*(closed|half-open)/);
    assert.equal(await page.locator('.cfg-version').first().textContent(), '7');
    assert.match((await page.locator('#config .rej').textContent()) ?? '', /rejected 8: retries must be a number >= 0/);
    assert.equal(await page.locator('#conn').textContent(), 'live');
    // State colours: a half-open breaker or a probing/removed endpoint is no healthy one, an isolated breaker a bad one.
    // (A string: the page's top-level consts are in its script scope, not on globalThis.)
    const classes = await page.evaluate(
      "['closed', 'active', 'open', 'isolated', 'ejected', 'half-open', 'probing', 'removed'].map(stateClass)",
    );
    assert.deepEqual(classes, ['good', 'good', 'bad', 'bad', 'bad', 'warn', 'warn', 'warn']);
    assert.deepEqual(errors, [], 'no script errors');
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/dashboard.png', fullPage: true });
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await stopTraffic();
    await fx.close();
  }
});
