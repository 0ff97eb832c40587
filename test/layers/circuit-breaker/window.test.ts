import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CountWindow, TimeWindow } from '../../../src/index.js';

test('count window: running sums stay exact as the ring wraps', () => {
  const w = new CountWindow(5);
  const outcomes = [1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1];
  for (let i = 0; i < outcomes.length; i++) {
    w.record(outcomes[i] === 1);
    const last = outcomes.slice(Math.max(0, i - 4), i + 1);
    assert.equal(w.total, last.length);
    assert.equal(
      w.failures,
      last.reduce((a, b) => a + b, 0),
    );
  }
  w.clear();
  assert.equal(w.total + w.failures, 0);
});

test('time window: buckets expire one by one, a long gap clears all', () => {
  const w = new TimeWindow(4, 100); // 400 ms in 4 buckets
  w.record(true, 0);
  w.record(false, 150);
  w.record(true, 250);
  w.record(true, 399);
  assert.deepEqual([w.total, w.failures], [4, 3]);
  w.record(false, 420); // bucket [0,100) leaves
  assert.deepEqual([w.total, w.failures], [4, 2]);
  w.expire(610); // buckets up to [200,300) leave
  assert.deepEqual([w.total, w.failures], [2, 1]);
  w.record(true, 10_000);
  assert.deepEqual([w.total, w.failures], [1, 1]);
});
