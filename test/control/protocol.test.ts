// The stream's framing, as a consumer of the protocol reads it: LineSplitter (public) over the
// client's own line reader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter } from '../../src/control/index.js';

test('LineSplitter returns whole lines across chunks, multi-byte characters split included, and refuses a line over its limit', () => {
  const lines = new LineSplitter(16);
  const euro = Buffer.from('€');
  assert.deepEqual(lines.push(Buffer.from('{"a":1}\n{"b"')), ['{"a":1}']);
  assert.deepEqual(lines.push(Buffer.concat([Buffer.from(':"'), euro.subarray(0, 1)])), []);
  assert.deepEqual(lines.push(Buffer.concat([euro.subarray(1), Buffer.from('"}\n\n')])), ['{"b":"€"}', '']);
  assert.deepEqual(lines.push(Buffer.from('x'.repeat(16))), [], 'a line exactly at the limit is taken');
  assert.deepEqual(lines.push(Buffer.from('\n')), ['x'.repeat(16)]);
  assert.throws(() => lines.push(Buffer.from('y'.repeat(17))), /stream line longer than 16 bytes/);
});
