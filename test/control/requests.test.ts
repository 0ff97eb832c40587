// Requests the control server must answer rather than crash on: anyone who reaches its port can
// send them, before any token is checked. Raw sockets, as fetch would refuse to send such targets.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, test } from 'node:test';
import { ControlServer } from '../../src/control/index.js';
import { closeOpened, getJson, TOKEN, track } from './helpers.js';

afterEach(closeOpened);

/** Sends one raw request and returns the answer's status line and body ('' if none came). */
const raw = (url: string, head: string, body = '') =>
  new Promise<{ status: string; body: string }>((resolve) => {
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(`${head}\r\nHost: x\r\nConnection: close\r\n\r\n${body}`));
    let data = '';
    const done = () => resolve({ status: data.split('\r\n')[0] ?? '', body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    socket.setTimeout(5_000, () => socket.destroy());
    socket.on('data', (chunk) => (data += chunk));
    socket.on('close', done);
    socket.on('error', done);
  });

test('a request target the URL parser refuses gets 400, with or without a token, and the server keeps serving', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, log: () => {} }));
  const url = await server.listen();
  server.publish({ services: {} }, 'v1');
  for (const head of ['GET //[ HTTP/1.1', 'GET http://[/v1/config HTTP/1.1', `GET //[ HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}`]) {
    const answer = await raw(url, head);
    assert.equal(answer.status, 'HTTP/1.1 400 Bad Request', head);
    assert.match(answer.body, /request target/);
  }
  const config = await getJson(url, '/v1/config');
  assert.equal(config.status, 200);
  assert.equal(config.body.version, 'v1');
});

test('a failure while handling a request answers 500 without its details and is logged', async () => {
  const lines: string[] = [];
  const server = track(
    new ControlServer({
      token: TOKEN,
      port: 0,
      log: (line) => {
        // The log line of a client's NACK throws: a fault inside the ACK handler.
        if (line.includes('rejected version')) throw new Error('secret detail');
        lines.push(line);
      },
    }),
  );
  const url = await server.listen();
  const nack = JSON.stringify({ client: 'c1', version: 'v9', applied: false, problems: [] });
  const answer = await raw(
    url,
    `POST /v1/ack HTTP/1.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(nack)}`,
    nack,
  );
  assert.equal(answer.status, 'HTTP/1.1 500 Internal Server Error');
  assert.doesNotMatch(answer.body, /secret/);
  assert.ok(
    lines.some((l) => /secret detail/.test(l)),
    `logged: ${lines.join(' | ')}`,
  );
  assert.equal((await getJson(url, '/healthz')).status, 200);
});
