import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import { afterEach, mock, test } from 'node:test';
import { escapeDnValue } from '../../src/control/client-tls.js';
import { ControlServer, createMeshStore, type HttpSourceEvent, httpSource } from '../../src/control/index.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { closeOpened, TOKEN, track, until } from './helpers.js';

afterEach(closeOpened);

const pem = (name: string) => readFileSync(new URL(`./fixtures/tls/${name}`, import.meta.url));
const serverTls = { cert: pem('server.pem'), key: pem('server.key'), clientCa: pem('ca.pem') };
const doc = { services: { users: { timeout: '1s' } } };
const quiet = () => {};

/** A stream client with the given TLS material; resolves once it is started. */
async function client(url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, token?: string) {
  const events: HttpSourceEvent[] = [];
  const source = httpSource({
    url,
    ...(token === undefined ? {} : { token }),
    tls,
    clientId: 'tls-client',
    reconnect: { base: 20, max: 100 },
    onEvent: (e) => events.push(e),
  });
  const store = track(await createMeshStore({ sources: [source] }));
  return { store, events };
}

test('mTLS: a client presenting a certificate of the client CA gets the stream; no token needed', async () => {
  const server = track(new ControlServer({ tls: serverTls, port: 0, heartbeatMs: 200, log: quiet }));
  const url = await server.listen();
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  server.publish(doc, 'v1');
  const { store } = await client(url, { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') });
  await until(() => store.version === 'v1', 'the snapshot over mTLS');
  await until(() => server.clients()[0]?.appliedVersion === 'v1', 'the ACK over mTLS');
  assert.equal(store.current.value.services.users?.timeout, '1s');
  // What the client calls itself, beside what its certificate says it is.
  const seen = server.clients()[0];
  assert.equal(seen?.id, 'tls-client');
  assert.equal(seen?.certificate?.subject, 'CN=payments-7f9c');
  assert.match(seen?.certificate?.fingerprint256 ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test('mTLS: a client without a certificate, or with one of another CA, is refused in the handshake', async () => {
  const server = track(new ControlServer({ tls: serverTls, port: 0, heartbeatMs: 200, log: quiet }));
  const url = await server.listen();
  server.publish(doc, 'v1');
  const bare = await client(url, { ca: pem('ca.pem') });
  const stranger = await client(url, { ca: pem('ca.pem'), cert: pem('stranger.pem'), key: pem('stranger.key') });
  for (const c of [bare, stranger]) {
    await until(() => c.events.filter((e) => e.type === 'disconnected').length >= 2, 'two refused connection attempts');
    assert.equal(c.store.version, '0', 'nothing applied: still the initial version');
    assert.equal(
      c.events.some((e) => e.type === 'connected'),
      false,
    );
  }
  assert.equal(server.clients().length, 0, 'no refused client reached the server');
});

test('mTLS with a token: a client needs both; TLS without a client CA still needs the token', async () => {
  const both = track(new ControlServer({ tls: serverTls, token: TOKEN, port: 0, heartbeatMs: 200, log: quiet }));
  const url = await both.listen();
  both.publish(doc, 'v1');
  const certOnly = await client(url, { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') });
  const withToken = await client(url, { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') }, TOKEN);
  await until(() => withToken.store.version === 'v1', 'the client with certificate and token');
  await until(
    () => certOnly.events.some((e) => e.type === 'disconnected' && /401/.test(e.reason)),
    'the client without the token refused with 401',
  );
  assert.equal(certOnly.store.version, '0');

  const serverOnly = track(
    new ControlServer({ tls: { cert: serverTls.cert, key: serverTls.key }, token: TOKEN, port: 0, heartbeatMs: 200, log: quiet }),
  );
  const plainTlsUrl = await serverOnly.listen();
  serverOnly.publish(doc, 'v2');
  const trusted = await client(plainTlsUrl, { ca: pem('ca.pem') }, TOKEN);
  await until(() => trusted.store.version === 'v2', 'a TLS client with the token and no certificate');
  assert.throws(() => new ControlServer({ tls: { cert: serverTls.cert, key: serverTls.key } }), /bearer token/);
});

test('mTLS: an empty client CA is refused, naming tls.clientCa, rather than trusting the public root CAs', () => {
  const { cert, key } = serverTls;
  // Each refused once, naming the field, or the item of a list, that is wrong.
  const cases: [unknown, string][] = [
    ['', 'tls.clientCa'],
    ['  \n', 'tls.clientCa'],
    [Buffer.alloc(0), 'tls.clientCa'],
    [[], 'tls.clientCa'],
    [[''], 'tls.clientCa.0'],
    [[pem('ca.pem'), Buffer.alloc(0)], 'tls.clientCa.1'],
    [null, 'tls.clientCa'],
    ['not a certificate', 'tls.clientCa'],
  ];
  for (const [clientCa, field] of cases) {
    assert.throws(
      () => new ControlServer({ tls: { cert, key, clientCa: clientCa as string }, port: 0, log: quiet }),
      (error: unknown) => error instanceof InvalidOptionError && error.problems.length === 1 && error.problems[0]?.field === field,
      `clientCa ${JSON.stringify(clientCa)}`,
    );
  }
  // Not even with a token: the value is a mistake either way.
  assert.throws(() => new ControlServer({ tls: { cert, key, clientCa: '' }, token: TOKEN, port: 0, log: quiet }), /tls\.clientCa/);
  assert.doesNotThrow(() => new ControlServer({ tls: { cert, key, clientCa: [pem('ca.pem'), pem('other-ca.pem')] }, port: 0, log: quiet }));
});

test('without tokens, a request whose TLS socket the handshake did not authorize is refused', () => {
  // Defence in depth: reach the request handler past the handshake, with sockets as TLS leaves them.
  const realCreateServer = https.createServer;
  let inner: Server | undefined;
  mock.method(https, 'createServer', (...args: Parameters<typeof https.createServer>) => {
    inner = realCreateServer(...args);
    return inner;
  });
  syncBuiltinESMExports();
  try {
    new ControlServer({ tls: serverTls, port: 0, log: quiet });
  } finally {
    mock.restoreAll();
    syncBuiltinESMExports();
  }
  assert.ok(inner, 'the server was created through node:https');
  const statusFor = (socket: object): number => {
    let status = 0;
    const res = {
      headersSent: false,
      setHeader: () => {},
      writeHead: (s: number) => {
        status = s;
        return res;
      },
      end: () => {},
    };
    inner?.emit('request', { url: '/v1/config', method: 'GET', headers: {}, socket }, res);
    return status;
  };
  assert.equal(statusFor({ authorized: false }), 401, 'an unauthorized TLS socket');
  assert.equal(statusFor({}), 401, 'a socket that is not TLS at all');
  assert.equal(statusFor({ authorized: true }), 200, 'a socket whose certificate the handshake checked');
});

test('a certificate subject is shown with its values escaped (RFC 4514), so a CN cannot pass for more attributes', () => {
  assert.equal(escapeDnValue('payments, O=Trusted Corp'), 'payments\\, O\\=Trusted Corp');
  assert.equal(escapeDnValue('a+b;c<d>"e"\\f'), 'a\\+b\\;c\\<d\\>\\"e\\"\\\\f');
  assert.equal(escapeDnValue(' #lead and trail '), '\\ #lead and trail\\ ');
  assert.equal(escapeDnValue('payments-7f9c'), 'payments-7f9c');
});
