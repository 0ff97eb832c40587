import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, InvalidOptionError, parseDuration, tryParseDuration } from '../../src/index.js';

test('durations parse in every unit mesh configs use', () => {
  assert.equal(tryParseDuration('250ms'), 250);
  assert.equal(tryParseDuration('10s'), 10_000);
  assert.equal(tryParseDuration('1.5s'), 1500);
  assert.equal(tryParseDuration('2m'), 120_000);
  assert.equal(tryParseDuration('1h'), 3_600_000);
  assert.equal(tryParseDuration('500us'), 0.5);
  assert.equal(tryParseDuration(75), 75);
  for (const bad of ['', '10', 's', '-1s', '1d', Number.NaN, -5, null, {}]) assert.equal(tryParseDuration(bad), undefined, String(bad));
});

test('parseDuration names the field', () => {
  assert.throws(
    () => parseDuration('soon', 'retry.perTryTimeout'),
    (error: unknown) => error instanceof InvalidOptionError && /retry\.perTryTimeout: must be a duration/.test(error.message),
  );
});

test('formatDuration writes what configs read', () => {
  assert.equal(formatDuration(10_000), '10s');
  assert.equal(formatDuration(250), '250ms');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), 'none');
});
