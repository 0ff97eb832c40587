// The order of a client's reports at the server: a report the client gave up on that lands late
// must not overwrite a newer one, a report does not outlive the stream it answered, and the
// server's answer says when to send it again. Real loopback servers; the client runs on a
// virtual clock and leaves no timer and no socket behind.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import { ControlServer } from '../../src/control/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import { closeOpened, TOKEN, track, until } from './helpers.js';
import { assertNothingLeft, fakeServer, hello, snapshot, streamClient } from './stream-fakes.js';

afterEach(closeOpened);

/**
 * A TCP proxy to `target` that holds back every byte of the first POST it carries until
 * `release()`, as a gateway that accepted a request and forwards it late would.
 */
async function holdingProxy(target: string) {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let held: { chunks: Buffer[]; up: Socket; answered: boolean } | undefined;
  const server = createServer((down) => {
    const up = connect(Number(port), hostname);
    sockets.add(down);
    upstreams.add(up);
    down.on('close', () => sockets.delete(down));
    up.on('close', () => upstreams.delete(up));
    let mine: typeof held;
    down.on('data', (chunk) => {
      if (held === undefined && chunk.toString('latin1').startsWith('POST ')) held = mine = { chunks: [], up, answered: false };
      if (mine !== undefined) mine.chunks.push(chunk);
      else up.write(chunk);
    });
    up.on('data', (chunk) => {
      if (mine !== undefined) mine.answered = true;
      else down.write(chunk);
    });
    // The held request outlives the client's side of it: its bytes are already on their way.
    down.on('close', () => mine === undefined && up.destroy());
    up.on('close', () => down.destroy());
    down.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address() as { port: number };
  return track({
    url: `http://127.0.0.1:${address.port}`,
    sockets,
    held: () => held,
    release: () => {
      for (const chunk of held?.chunks ?? []) held?.up.write(chunk);
    },
    close: async () => {
      for (const s of [...sockets, ...upstreams]) s.destroy();
      await new Promise((r) => server.close(r));
    },
  });
}

test('an ACK the client gave up on that reaches the server late does not overwrite the newer one', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 60_000, clock: new VirtualClock(), log: () => {} }));
  const proxy = await holdingProxy(await server.listen());
  server.publish({ services: {} }, 'v1');
  const { clock, store, of } = await streamClient(proxy.url);
  await until(() => store.version === 'v1' && proxy.held() !== undefined, 'v1 applied, its ACK held');
  await clock.advance(10_000);
  await until(() => of('ack-failed').length === 1, 'the ACK of v1 given up on');
  await clock.advance(of('ack-failed')[0]!.retryInMs!);
  await until(() => server.clients()[0]?.appliedVersion === 'v1', 'the ACK of v1 sent again');
  server.publish({ services: { users: { timeout: '2s' } } }, 'v2');
  await until(() => server.clients()[0]?.appliedVersion === 'v2', 'the ACK of v2');

  // The first ACK of v1, sent before v2 existed, arrives now.
  proxy.release();
  await until(() => proxy.held()?.answered === true, 'the late ACK answered');
  assert.equal(store.version, 'v2');
  assert.equal(server.clients()[0]?.appliedVersion, 'v2', 'the late ACK of v1 is ignored');
  await store.close();
  await assertNothingLeft(clock, proxy.sockets);
});

/** POSTs a report to the control server; resolves with the status. */
async function post(url: string, report: object): Promise<number> {
  const res = await fetch(`${url}/v1/ack`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(report),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Opens a stream with the given query and closes it once its headers are in; resolves with the status. */
const stream = (url: string, query: string) =>
  new Promise<number>((resolve, reject) => {
    const req = get(`${url}/v1/stream?${query}`, { headers: { authorization: `Bearer ${TOKEN}` }, agent: false }, (res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', reject);
  });

test('the server records a report only above the highest seq of its session; unstamped reports go in arrival order', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 60_000, clock: new VirtualClock(), log: () => {} }));
  const url = await server.listen();
  const c1 = () => server.clients().find((c) => c.id === 'c1');
  const ack = (version: string, session: string, seq: number) => post(url, { client: 'c1', version, applied: true, session, seq });

  // A client reports on a stream it opened (its stamp starts the session here).
  assert.equal(await stream(url, 'client=c1&version=&session=s-1&seq=1'), 200);
  assert.equal(await ack('v2', 's-1', 5), 204);
  assert.equal(await ack('v1', 's-1', 4), 204, 'a stale report is taken, and ignored');
  assert.equal(await ack('v1', 's-1', 5), 204);
  assert.equal(c1()?.appliedVersion, 'v2');
  const problems = [{ field: 'services', message: 'is wrong' }];
  assert.equal(await post(url, { client: 'c1', version: 'v3', applied: false, problems, session: 's-1', seq: 6 }), 204);
  assert.deepEqual([c1()?.appliedVersion, c1()?.rejectedVersion, c1()?.problems], ['v2', 'v3', problems]);
  // A stream request names the version in force, stamped the same way.
  assert.equal(await stream(url, 'client=c1&version=v0&session=s-1&seq=6'), 200);
  assert.equal(c1()?.appliedVersion, 'v2', 'a stale stream request does not set the version');
  // An ACK after a NACK clears it, as an xDS ACK clears the error detail.
  assert.equal(await ack('v4', 's-1', 7), 204);
  assert.deepEqual([c1()?.appliedVersion, c1()?.rejectedVersion, c1()?.problems], ['v4', undefined, undefined]);
  // A restarted client has a new session, counting from 1 again.
  assert.equal(await stream(url, 'client=c1&version=v4&session=s-2&seq=1'), 200);
  assert.equal(await ack('v5', 's-2', 2), 204);
  assert.equal(c1()?.appliedVersion, 'v5');

  // A client older than the stamp: its reports are recorded as they arrive.
  assert.equal(await post(url, { client: 'c2', version: 'v9', applied: true }), 204);
  assert.equal(await post(url, { client: 'c2', version: 'v8', applied: true }), 204);
  assert.equal(server.clients().find((c) => c.id === 'c2')?.appliedVersion, 'v8');

  for (const stamp of [
    { session: 'a b', seq: 1 },
    { session: 's', seq: -1 },
    { session: 's', seq: 1.5 },
    { session: 's', seq: '3' },
    { session: 's' },
    { seq: 1 },
  ]) {
    assert.equal(await post(url, { client: 'c3', version: 'v1', applied: true, ...stamp }), 400, JSON.stringify(stamp));
  }
  for (const body of [{ applied: 'true' }, { applied: undefined }, { applied: false, problems: 'bad' }]) {
    assert.equal(await post(url, { client: 'c3', version: 'v1', ...body }), 400, JSON.stringify(body));
  }
  for (const query of ['session=s', 'seq=1', 'session=s&seq=x', 'session=&seq=1']) {
    assert.equal(await stream(url, `client=c3&version=v1&${query}`), 400, query);
  }
  assert.equal(
    server.clients().some((c) => c.id === 'c3'),
    false,
  );
});

test("a late report of a client's previous run is ignored once the restarted run has opened its stream", async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 60_000, clock: new VirtualClock(), log: () => {} }));
  const url = await server.listen();
  const c1 = () => server.clients().find((c) => c.id === 'c1');
  assert.equal(await stream(url, 'client=c1&version=&session=s-1&seq=1'), 200);
  // The process restarts as s-2 and applies v2; a gateway still holds s-1's ACK of v1.
  assert.equal(await stream(url, 'client=c1&version=&session=s-2&seq=1'), 200);
  assert.equal(await post(url, { client: 'c1', version: 'v2', applied: true, session: 's-2', seq: 2 }), 204);
  await until(() => c1()?.streams === 0, 'both streams closed at the server');
  assert.equal(await post(url, { client: 'c1', version: 'v1', applied: true, session: 's-1', seq: 2 }), 204);
  assert.equal(c1()?.appliedVersion, 'v2', "the previous run's report does not overwrite the restarted one's");
  // Nor does it re-open the door to stale reports of the current run.
  assert.equal(await post(url, { client: 'c1', version: 'v0', applied: true, session: 's-2', seq: 1 }), 204);
  assert.equal(c1()?.appliedVersion, 'v2');
});

test('a restarted client starts with a clean record, and a reconnect naming a newer version clears a rejection', async () => {
  const server = track(new ControlServer({ token: TOKEN, port: 0, heartbeatMs: 60_000, clock: new VirtualClock(), log: () => {} }));
  const url = await server.listen();
  const c1 = () => server.clients().find((c) => c.id === 'c1');
  const problems = [{ field: 'x', message: 'bad' }];
  assert.equal(await stream(url, 'client=c1&version=&session=s-1&seq=1'), 200);
  assert.equal(await post(url, { client: 'c1', version: 'v1', applied: true, session: 's-1', seq: 2 }), 204);
  assert.equal(await post(url, { client: 'c1', version: 'v2', applied: false, problems, session: 's-1', seq: 3 }), 204);
  // The client applied v3, its ACK dropped with its stream; the reconnect names v3.
  assert.equal(await stream(url, 'client=c1&version=v3&session=s-1&seq=5'), 200);
  assert.deepEqual([c1()?.appliedVersion, c1()?.rejectedVersion, c1()?.problems], ['v3', undefined, undefined]);
  assert.equal(await post(url, { client: 'c1', version: 'v4', applied: false, problems, session: 's-1', seq: 6 }), 204);
  // A fresh process with nothing in force: what the dead one applied or refused is not its.
  assert.equal(await stream(url, 'client=c1&version=&session=s-2&seq=1'), 200);
  assert.deepEqual([c1()?.appliedVersion, c1()?.rejectedVersion, c1()?.problems], [undefined, undefined, undefined]);
});

test('the client stamps its stream requests and reports with its session and a rising seq', async () => {
  const server = await fakeServer({ stream: (res, n) => res.write(n === 1 ? hello() + snapshot('v1') + snapshot('v2') : hello()) });
  const first = await streamClient(server.url);
  await until(() => server.acks.length === 2, 'two reports');
  server.streams[0]!.end();
  await until(() => first.of('disconnected').length === 1, 'the stream ended');
  await first.clock.advance(first.of('disconnected')[0]!.retryInMs);
  await until(() => server.streamUrls.length === 2, 'the reconnect');
  const query = (i: number) => new URL(server.streamUrls[i]!, 'http://x').searchParams;
  const session = query(0).get('session') ?? '';
  assert.match(session, /^[A-Za-z0-9_-]{1,64}$/);
  assert.deepEqual(
    server.acks.map((a) => [a.version, a.session, a.seq]),
    [
      ['v1', session, 2],
      ['v2', session, 3],
    ],
  );
  assert.deepEqual([query(0).get('seq'), query(1).get('seq'), query(1).get('version'), query(1).get('session')], ['1', '4', 'v2', session]);
  const second = await streamClient(server.url);
  await until(() => server.streamUrls.length >= 3, 'the second client');
  assert.notEqual(query(2).get('session'), session, 'each client instance has its own session');
  await first.store.close();
  await second.store.close();
  await assertNothingLeft(first.clock, server.sockets);
  assert.equal(second.clock.pendingTimers, 0);
});

test('a report waiting for its retry is dropped with the stream; the ACK backoff starts over on the next hello', async () => {
  const server = await fakeServer({
    stream: (res, n) => {
      if (n === 1) res.write(hello() + snapshot('bad1', { bad: 1 }));
      else if (n < 6) res.destroy();
      else res.write(hello() + snapshot('bad2', { bad: 2 }));
    },
    ack: (_req, res) => res.writeHead(503).end(),
  });
  const { clock, store, of } = await streamClient(server.url);
  await until(() => of('ack-failed').length === 1, 'the NACK of bad1 refused');
  assert.equal(of('ack-failed')[0]!.retryInMs, 100);
  server.streams[0]!.destroy();
  // The server is down for four reconnects, 3.1 s: no report is sent to it meanwhile.
  for (let i = 1; i <= 5; i++) {
    await until(() => of('disconnected').length === i, `disconnect ${i}`);
    await clock.advance(of('disconnected')[i - 1]!.retryInMs);
  }
  await until(() => of('ack-failed').length === 2, 'the NACK of bad2 refused');
  assert.deepEqual(
    server.acks.map((a) => a.version),
    ['bad1', 'bad2'],
    'bad1 is not sent again after its stream was lost',
  );
  assert.deepEqual(
    of('ack-failed').map((e) => e.retryInMs),
    [100, 100],
  );
  await store.close();
  await assertNothingLeft(clock, server.sockets);
});

test('a 429 or 503 with Retry-After is sent again after that long, at most reconnect.max', async () => {
  let clock: VirtualClock | undefined;
  const retryAfter = ['3', '3600', '', 'soon'];
  const server = await fakeServer({
    stream: (res) => res.write(hello() + snapshot('v1')),
    ack: (_req, res, n) => {
      if (n > retryAfter.length) return void res.writeHead(204).end();
      // The third answer gives a date, five seconds ahead of the client's clock.
      const value = n === 3 ? new Date((clock?.wallTime() ?? 0) + 5000).toUTCString() : retryAfter[n - 1]!;
      res.writeHead(n === 2 ? 429 : 503, { 'retry-after': value }).end();
    },
  });
  const client = await streamClient(server.url);
  clock = client.clock;
  await until(() => client.of('ack-failed').length === 1, 'the first refusal');
  await clock.advance(2999);
  assert.equal(server.acks.length, 1, 'not before Retry-After');
  await clock.advance(1);
  for (let i = 2; i <= 4; i++) {
    await until(() => client.of('ack-failed').length === i, `refusal ${i}`);
    await clock.advance(client.of('ack-failed')[i - 1]!.retryInMs!);
  }
  await until(() => server.acks.length === 5, 'the report taken');
  // Garbage is ignored: the fourth waits its backoff, 800 ms at the fourth failure.
  assert.deepEqual(
    client.of('ack-failed').map((e) => e.retryInMs),
    [3000, 10_000, 5000, 800],
  );
  await client.store.close();
  await assertNothingLeft(clock, server.sockets);
});
