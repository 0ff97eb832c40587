// The stream client against control servers that misbehave: streams that break right after the
// hello, snapshot lines it cannot read or that arrive slowly, a control server behind a path
// prefix, ACKs that fail, an onEvent that throws, and options (TLS material included) that are wrong. Timing runs on a virtual clock; every test ends with no timer on
// the clock and no socket open at the server.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, test } from 'node:test';
import { ControlServer, type HttpSourceOptions, httpSource } from '../../src/control/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import { closeOpened, refused, TOKEN, track, until } from './helpers.js';
import { assertNothingLeft, fakeServer, heartbeat, hello, snapshot, streamClient, writeAndDeliver } from './stream-fakes.js';

afterEach(closeOpened);

const pem = (name: string) => readFileSync(new URL(`./fixtures/tls/${name}`, import.meta.url));

test('a stream that breaks right after the hello backs off exponentially; only a heartbeat resets the backoff', async () => {
  let healthy = false;
  const server = await fakeServer({
    stream: (res, n) => {
      res.write(hello());
      if (healthy) res.end(heartbeat());
      // A truncated snapshot line, as a proxy cutting the stream leaves it...
      else if (n % 2 === 1) res.end('{"type":"snapshot","version":"v1","con');
      // ...or a line longer than the client takes that is not a snapshot it could NACK.
      else res.end(`${'x'.repeat(2000)}\n`);
    },
  });
  const { clock, store, of } = await streamClient(server.url, { maxLineBytes: 1024 });
  for (let i = 1; i <= 6; i++) {
    await until(() => of('disconnected').length === i, `disconnect ${i}`);
    // A stream that carries a heartbeat after its hello has proven itself: the break after it waits `base` again.
    if (i === 6) healthy = true;
    await clock.advance(of('disconnected')[i - 1]!.retryInMs);
  }
  assert.deepEqual(
    of('disconnected').map((e) => e.retryInMs),
    [100, 200, 400, 800, 1600, 3200],
    'each hello-and-break doubles the wait',
  );
  assert.deepEqual(new Set(of('disconnected').map((e) => e.reason)), new Set(['stream ended', 'stream line longer than 1024 bytes']));
  assert.equal(of('connected').length, 6);
  await until(() => of('disconnected').length === 7, 'the healthy stream ended');
  assert.equal(of('disconnected')[6]!.retryInMs, 100);
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('a snapshot line longer than maxLineBytes is NACKed on (document); the stream stays up and takes the next version', async () => {
  const serverClock = new VirtualClock();
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 1000, clock: serverClock, log: () => {} }));
  const url = await server.listen();
  const big = { services: { users: { endpoints: Array.from({ length: 50 }, (_, i) => ({ address: `10.0.0.${i}:80` })) } } };
  assert.ok(JSON.stringify(big).length > 1024);
  server.publish(big, 'big');
  const { clock, store, of } = await streamClient(url, { maxLineBytes: 1024 });
  await until(() => server.clients()[0]?.rejectedVersion === 'big', 'the NACK of the long line at the server');
  assert.deepEqual(server.clients()[0]?.problems, [
    { field: '(document)', message: 'is on a stream line longer than the client takes (maxLineBytes 1024 bytes)' },
  ]);
  assert.equal(store.lastRejected?.version, 'big');
  assert.equal(store.version, '0', 'nothing applied');

  // Heartbeats still flow on the same stream, and the next version is applied from it.
  await serverClock.advance(1000);
  await clock.advance(1000);
  server.publish({ services: { users: { timeout: '2s' } } }, 'small');
  await until(() => store.version === 'small', 'the next version');
  await until(() => server.clients()[0]?.appliedVersion === 'small', 'its ACK');
  // The ACK of a later version clears the rejection, as an xDS ACK clears the error detail.
  assert.deepEqual([server.clients()[0]?.rejectedVersion, server.clients()[0]?.problems], [undefined, undefined]);
  assert.equal(of('connected').length, 1);
  assert.equal(of('disconnected').length, 0);
  await store.close();
  await server.close();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(serverClock.pendingTimers, 0);
});

test('a snapshot line that is not JSON is NACKed with the parse error and the stream stays up', async () => {
  const server = await fakeServer({
    stream: (res) => {
      res.write(hello());
      res.write('{"type":"snapshot","version":"v2","config":{"services":}}\n');
      res.write(snapshot('v3'));
    },
  });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => store.version === 'v3', 'the good version after the broken one');
  await until(() => server.acks.length === 2, 'both verdicts');
  assert.equal(server.acks[0]?.version, 'v2');
  assert.equal(server.acks[0]?.applied, false);
  assert.equal(server.acks[0]?.problems?.[0]?.field, '(document)');
  assert.match(server.acks[0]?.problems?.[0]?.message ?? '', /^is on a stream line that is not valid JSON: /);
  assert.deepEqual(
    { ...server.acks[1], session: undefined, seq: undefined },
    { client: 'c1', version: 'v3', applied: true, session: undefined, seq: undefined },
  );
  assert.equal(of('disconnected').length, 0);
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('a base URL with a path keeps it for the stream and the ACK, with or without the trailing slash', async () => {
  for (const base of ['/mesh-control/', '/mesh-control']) {
    const server = await fakeServer({ prefix: '/mesh-control', stream: (res) => res.write(hello() + snapshot('v1')) });
    const { clock, store } = await streamClient(`${server.url}${base}`);
    await until(() => server.acks.length === 1, `the ACK under ${base}`);
    assert.equal(store.version, 'v1');
    assert.match(server.streamUrls[0] ?? '', /^\/mesh-control\/v1\/stream\?client=c1&version=0&session=[\w-]+&seq=1$/);
    assert.deepEqual(server.ackUrls, ['/mesh-control/v1/ack']);
    await store.close();
    await assertNothingLeft(clock, server.sockets);
    await server.close();
  }
});

test('a failed ACK (network error, 503) is retried with backoff on the same stream until accepted', async () => {
  const server = await fakeServer({
    stream: (res) => res.write(hello() + snapshot('v1')),
    ack: (req, res, n) => {
      if (n === 1) req.socket.destroy();
      else if (n === 2) res.writeHead(503).end();
      else res.writeHead(204).end();
    },
  });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => of('ack-failed').length === 1, 'the first ACK lost');
  assert.equal(of('ack-failed')[0]!.retryInMs, 100);
  await clock.advance(100);
  await until(() => of('ack-failed').length === 2, 'the second ACK refused');
  assert.equal(of('ack-failed')[1]!.reason, 'HTTP 503');
  assert.equal(of('ack-failed')[1]!.retryInMs, 200);
  await clock.advance(200);
  await until(() => server.acks.length === 3, 'the third ACK');
  assert.deepEqual(
    server.acks.map((a) => a.version),
    ['v1', 'v1', 'v1'],
  );
  // Accepted: nothing more is sent, and only the heartbeat watchdog is left on the clock.
  await clock.advance(60_000);
  assert.equal(server.acks.length, 3);
  assert.equal(clock.pendingTimers, 1);
  assert.equal(server.streams.length, 1, 'the stream was never dropped');
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('a newer verdict replaces the one waiting to be retried, and ACKs go one at a time in order', async () => {
  const server = await fakeServer({
    stream: (res) => res.write(hello() + snapshot('v1')),
    ack: (_req, res, n) => res.writeHead(n === 1 ? 503 : 204).end(),
  });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => of('ack-failed').length === 1, 'the ACK of v1 refused');
  server.streams[0]!.write(snapshot('v2', { services: { users: { timeout: '2s' } } }));
  await until(() => server.acks.length === 2, 'the ACK of v2, sent at once');
  await clock.advance(60_000);
  assert.deepEqual(
    server.acks.map((a) => a.version),
    ['v1', 'v2'],
    'v1 is not sent again after v2',
  );
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('an ACK without an answer times out and is retried; a 400 is not retried', async () => {
  const server = await fakeServer({
    stream: (res) => res.write(hello() + snapshot('v1')),
    // The first ACK is never answered; the second is refused as malformed.
    ack: (_req, res, n) => n === 2 && res.writeHead(400).end(),
  });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => server.acks.length === 1, 'the first ACK');
  await clock.advance(10_000);
  await until(() => of('ack-failed').length === 1, 'the ACK timed out');
  assert.equal(of('ack-failed')[0]!.reason, 'no answer in 10000ms');
  await clock.advance(of('ack-failed')[0]!.retryInMs!);
  await until(() => of('ack-failed').length === 2, 'the 400');
  assert.equal(of('ack-failed')[1]!.reason, 'HTTP 400');
  assert.equal(of('ack-failed')[1]!.retryInMs, undefined, 'a report the server refuses is not sent again');
  await clock.advance(60_000);
  assert.equal(server.acks.length, 2);
  await until(() => server.sockets.size === 1, 'the timed-out ACK socket closed');
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('close() while an ACK waits for its retry or its answer leaves no timer and no socket', async () => {
  let answerAcks = false;
  const server = await fakeServer({
    stream: (res) => res.write(hello() + snapshot('v1')),
    ack: (_req, res) => answerAcks && res.writeHead(503).end(),
  });
  const hanging = await streamClient(server.url);
  await until(() => server.acks.length === 1, 'an ACK in flight');
  await hanging.store.close();
  await assertNothingLeft(hanging.clock, server.sockets);

  answerAcks = true;
  const waiting = await streamClient(server.url);
  await until(() => waiting.of('ack-failed').length === 1, 'an ACK waiting for its retry');
  await waiting.store.close();
  await assertNothingLeft(waiting.clock, server.sockets);
  assert.equal(waiting.of('ack-failed').length, 1);
});

test('options: unknown keys, a bad url, token, tls or clientId are refused naming the field', () => {
  const url = 'http://127.0.0.1:1';
  const misspelt = { url, missedHeartbeat: 0 } as unknown as HttpSourceOptions;
  assert.match(
    refused(() => httpSource(misspelt), ['(root)'], 'a misspelt key'),
    /unknown field "missedHeartbeat"/,
  );
  assert.match(
    refused(() => httpSource({ url, reconnect: { bse: 5 } as never }), ['reconnect'], 'a misspelt nested key'),
    /unknown field "bse"/,
  );
  for (const bad of [
    'nope',
    'control:7070',
    'ftp://control:7070',
    '',
    'http://control:7070/?x=1',
    'http://control:7070/#x',
    undefined,
    7070,
  ]) {
    const message = refused(() => httpSource({ url: bad } as HttpSourceOptions), ['url'], `url ${JSON.stringify(bad)}`);
    assert.match(message, /^url: must /, String(bad));
  }
  assert.doesNotMatch(
    refused(() => httpSource({ url: 'http://user:hunter2@control:7070' }), ['url'], 'url with a password'),
    /hunter2/,
    'the password is not echoed',
  );
  for (const token of ['secret-token\n', 'secret token', '\tsecret', '', 'sécret', 42]) {
    const message = refused(() => httpSource({ url, token } as HttpSourceOptions), ['token'], `token ${JSON.stringify(token)}`);
    assert.doesNotMatch(message, /secret|42/, 'the token is not echoed');
  }
  assert.match(
    refused(() => httpSource({ url, token: 'secret-token\n' }), ['token'], 'newline'),
    /U\+000A at character 13 of 13/,
  );
  assert.match(
    refused(() => httpSource({ url, tls: { ca: 'pem' } }), ['tls'], 'tls on http'),
    /https:\/\//,
  );
  refused(() => httpSource({ url: 'https://control:7070', tls: { ca: 5 as never } }), ['tls.ca'], 'tls.ca a number');
  refused(() => httpSource({ url, clientId: 'has space' }), ['clientId'], 'clientId with a space');
  refused(() => httpSource({ url, onEvent: 'log' as never }), ['onEvent'], 'onEvent not a function');
  // Every problem at once.
  refused(() => httpSource({ url: 'nope', token: 'x\n', missedHeartbeats: 0 }), ['missedHeartbeats', 'url', 'token'], 'three problems');

  assert.doesNotThrow(() => httpSource({ url: 'https://gw.example/mesh-control/', token: 'abc-DEF_123.~+/=', tls: { ca: pem('ca.pem') } }));
  assert.equal(httpSource({ url: 'http://gw.example/mesh-control/' }).name, 'http:http://gw.example/mesh-control');
  assert.equal(httpSource({ url: 'http://gw.example:7070' }).name, 'http:http://gw.example:7070');
});

test('a line that keeps arriving keeps the stream up; the watchdog fires missedHeartbeats x heartbeatMs after the last byte', async () => {
  const server = await fakeServer({ stream: (res) => res.write(hello(1000)) });
  const { clock, store, of } = await streamClient(server.url, { maxLineBytes: 1024 });
  await until(() => of('connected').length === 1, 'the hello');
  const res = server.streams[0]!;
  await writeAndDeliver(res, `{"type":"snapshot","version":"big","config":{"services":{"x":"${'a'.repeat(2000)}`);
  await until(() => server.acks.length === 1, 'the NACK of the long line');
  // 50 kB every 0.9 s for 9 s, three times the quiet the watchdog allows, and heartbeats queued behind.
  for (let i = 0; i < 10; i++) {
    await clock.advance(900);
    await writeAndDeliver(res, 'a'.repeat(50_000));
  }
  await writeAndDeliver(res, `"}}}\n${heartbeat()}`);
  assert.equal(of('disconnected').length, 0);
  assert.deepEqual(
    server.acks.map((a) => [a.version, a.applied]),
    [['big', false]],
    'NACKed once, not fetched again',
  );
  // Quiet from here on: dropped 3 s after the last byte, not before.
  await clock.advance(2999);
  assert.equal(of('disconnected').length, 0);
  await clock.advance(1);
  await until(() => of('disconnected').length === 1, 'the quiet stream dropped');
  assert.equal(of('disconnected')[0]!.reason, 'missed heartbeats');
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('before the hello, bytes are no sign of life: a server dribbling them without a hello is dropped at the first-line limit', async () => {
  const server = await fakeServer({ stream: () => {} });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => server.streams.length === 1, 'the stream open');
  for (let i = 0; i < 3; i++) {
    await clock.advance(4000);
    if (of('disconnected').length === 0) await writeAndDeliver(server.streams[0]!, ' ');
  }
  await until(() => of('disconnected').length === 1, 'dropped without a hello');
  assert.equal(of('connected').length, 0);
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('an onEvent that throws becomes a warning; the stream, its verdicts and the ACK retry go on', async () => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  process.on('warning', onWarning);
  try {
    const server = await fakeServer({
      stream: (res) => res.write(hello() + snapshot('v1')),
      ack: (_req, res, n) => res.writeHead(n === 1 ? 503 : 204).end(),
    });
    const calls: string[] = [];
    const onEvent = (event: { type: string }) => {
      calls.push(event.type);
      throw new Error(`listener broke on ${event.type}`);
    };
    const { clock, store } = await streamClient(server.url, { onEvent });
    await until(() => calls.includes('ack-failed'), 'the refused ACK reported');
    await clock.advance(100);
    await until(() => server.acks.length === 2, 'the ACK sent again');
    assert.equal(store.version, 'v1');
    assert.equal(server.streams.length, 1, 'the stream was never dropped');
    assert.deepEqual(calls, ['connected', 'verdict', 'ack-failed']);
    await until(() => warnings.length === 3, 'a warning for each throw');
    assert.match(warnings[0] ?? '', /onEvent threw on connected: listener broke on connected/);
    await store.close();
    await assertNothingLeft(clock, server.sockets);
  } finally {
    process.off('warning', onWarning);
  }
});

test('tls: a cert, key or ca that is not valid PEM is refused naming the field, with what OpenSSL said', () => {
  const url = 'https://control:7070';
  const garbled = '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n';
  const [ca, cert, key] = [pem('ca.pem'), pem('client.pem'), pem('client.key')];
  assert.match(
    refused(() => httpSource({ url, tls: { cert: 'junk', key } }), ['tls.cert'], 'cert junk'),
    /no start line\)$/,
  );
  assert.match(
    refused(() => httpSource({ url, tls: { cert: key, key } }), ['tls.cert'], 'a key as the cert'),
    /^tls\.cert: must be/,
  );
  refused(() => httpSource({ url, tls: { cert, key: 'junk' } }), ['tls.key'], 'key junk');
  assert.match(
    refused(() => httpSource({ url, tls: { cert, key: pem('stranger.key') } }), ['tls.key'], 'another key'),
    /does not match tls\.cert/,
  );
  refused(() => httpSource({ url, tls: { cert } }), ['tls.key'], 'a cert without its key');
  refused(() => httpSource({ url, tls: { key } }), ['tls.cert'], 'a key without its cert');
  for (const bad of ['pem', '', garbled, Buffer.from('pem')]) {
    refused(() => httpSource({ url, tls: { ca: bad } }), ['tls.ca'], `ca ${JSON.stringify(String(bad))}`);
  }
  assert.match(
    refused(() => httpSource({ url, tls: { ca: [ca, garbled] } }), ['tls.ca.1'], 'the second ca'),
    /bad base64 decode/,
  );
  refused(() => httpSource({ url, tls: { ca: 'x', cert: 'junk', key: 'junk' } }), ['tls.ca', 'tls.cert', 'tls.key'], 'every problem');
  assert.doesNotThrow(() => httpSource({ url, tls: { ca: [ca, pem('other-ca.pem')], cert, key } }));
  assert.doesNotThrow(() => httpSource({ url, tls: { ca: Buffer.concat([ca, pem('other-ca.pem')]).toString() } }));
  // OpenSSL's trusted form, which Node takes, is a certificate too.
  assert.doesNotThrow(() => httpSource({ url, tls: { ca: pem('ca-trusted.pem'), cert, key } }));
});
