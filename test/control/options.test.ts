// Numeric options of the control plane are checked when a server or source is built: a zero or
// NaN interval would run a timer every millisecond, a zero limit would loop on reconnects, and a
// NaN byte limit would compare false with every size and so disable the limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ControlServer, etcdSource, fileSource, httpSource, meshValidator } from '../../src/control/index.js';
import { refused, TOKEN } from './helpers.js';

/** Asserts `build` throws an InvalidOptionError naming exactly `field`. */
function refuses(build: () => unknown, field: string, what: string): void {
  refused(build, [field], what);
}

const quiet = () => {};

test('the control server refuses a heartbeat that is not 1 ms to 1 hour, and a port outside 0-65535', () => {
  for (const heartbeatMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, 3_600_001]) {
    refuses(() => new ControlServer({ token: TOKEN, heartbeatMs, log: quiet }), 'heartbeatMs', `heartbeatMs ${heartbeatMs}`);
  }
  for (const port of [-1, 65_536, 1.5, Number.NaN]) {
    refuses(() => new ControlServer({ token: TOKEN, port, log: quiet }), 'port', `port ${port}`);
  }
  assert.match(
    String(captured(() => new ControlServer({ token: TOKEN, heartbeatMs: 0, log: quiet }))),
    /heartbeatMs: must be a number from 1 to 3600000 \(got 0\)/,
  );
  assert.doesNotThrow(() => new ControlServer({ token: TOKEN, heartbeatMs: 1, port: 0, log: quiet }));
});

test('the stream source refuses zero missed heartbeats, a tiny or NaN line limit and a zero reconnect backoff', () => {
  const url = 'http://127.0.0.1:1';
  for (const missedHeartbeats of [0, -1, 2.5, Number.NaN]) {
    refuses(() => httpSource({ url, missedHeartbeats }), 'missedHeartbeats', `missedHeartbeats ${missedHeartbeats}`);
  }
  for (const maxLineBytes of [0, 100, Number.NaN, Number.POSITIVE_INFINITY]) {
    refuses(() => httpSource({ url, maxLineBytes }), 'maxLineBytes', `maxLineBytes ${maxLineBytes}`);
  }
  refuses(() => httpSource({ url, reconnect: { base: 0 } }), 'reconnect.base', 'reconnect.base 0');
  refuses(() => httpSource({ url, reconnect: { base: Number.NaN } }), 'reconnect.base', 'reconnect.base NaN');
  refuses(() => httpSource({ url, reconnect: { max: 0 } }), 'reconnect.max', 'reconnect.max 0');
  refuses(() => httpSource({ url, reconnect: { base: 10, max: 5 } }), 'reconnect.max', 'reconnect.max below base');
  assert.doesNotThrow(() => httpSource({ url, missedHeartbeats: 1, maxLineBytes: 1024, reconnect: { base: 1, max: 1 } }));
});

test('the file source refuses a poll interval that is not 1 ms to 1 hour', () => {
  for (const pollIntervalMs of [0, -1, Number.NaN]) {
    refuses(() => fileSource('mesh.yaml', { pollIntervalMs }), 'pollIntervalMs', `pollIntervalMs ${pollIntervalMs}`);
  }
  assert.doesNotThrow(() => fileSource('mesh.yaml', { pollIntervalMs: 20 }));
});

test('document limits are checked: a NaN byte limit would disable the limit', () => {
  for (const maxBytes of [0, Number.NaN, 1.5]) {
    refuses(() => meshValidator({ maxBytes }), 'limits.maxBytes', `maxBytes ${maxBytes}`);
    refuses(() => new ControlServer({ token: TOKEN, limits: { maxBytes }, log: quiet }), 'limits.maxBytes', `server maxBytes ${maxBytes}`);
    refuses(() => etcdSource({ hosts: 'http://127.0.0.1:1', limits: { maxBytes } }), 'limits.maxBytes', `etcd maxBytes ${maxBytes}`);
  }
  refuses(() => meshValidator({ maxDepth: 0 }), 'limits.maxDepth', 'maxDepth 0');
  const small = meshValidator({ maxBytes: 100 });
  assert.equal(small(`services: {}${' '.repeat(200)}`).ok, false, 'a valid limit still applies');
});

function captured(build: () => unknown): unknown {
  try {
    build();
  } catch (error) {
    return error;
  }
  return undefined;
}
