import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Question } from 'dns-packet';
import { ServiceBuilder } from '../../src/builder/index.js';
import type { InvalidOptionError, NoEndpointsError } from '../../src/core/errors.js';
import { SRV_TARGET_CONCURRENCY } from '../../src/discovery/dns.js';
import { type Changeset, DnsDiscovery, type DnsDiscoveryOptions, dnsDiscovery } from '../../src/discovery/index.js';
import { Readiness } from '../../src/layers/readiness/index.js';
import { VirtualClock } from '../../src/testing/index.js';
import { aaaaRecords, aRecords, type DnsReply, type DnsServer, startDnsServer } from './dns-server.js';

let dns: DnsServer;
before(async () => {
  dns = await startDnsServer();
});
after(async () => {
  await dns.close();
});

/** A discovery on a virtual clock, with random fixed at 0.5 so jitter takes exactly 5% off. */
async function resolve(options: Partial<DnsDiscoveryOptions> = {}) {
  const clock = new VirtualClock();
  const changes: Changeset[] = [];
  const d = dnsDiscovery({
    name: 'users.test',
    port: 8080,
    servers: [dns.address],
    clock,
    random: () => 0.5,
    lookupTimeout: '500ms',
    tries: 1,
    ...options,
  });
  d.subscribe((c) => changes.push(c));
  await d.idle();
  /** Advances to the next lookup and waits for its answer. */
  const next = async (): Promise<void> => {
    await clock.advance((clock.nextTimerAt as number) - clock.now());
    await d.idle();
  };
  return { d, clock, changes, next, ids: () => [...d.endpoints().keys()].sort() };
}

test('A records: the set follows the answers, re-resolved when the TTL runs out (minus jitter)', async () => {
  dns.answer = () => aRecords('users.test', 5, '10.0.0.1', '10.0.0.2');
  const { d, clock, changes, next, ids } = await resolve();
  assert.deepEqual(ids(), ['10.0.0.1:8080', '10.0.0.2:8080']);
  assert.equal(clock.nextTimerAt, 4750, 'TTL 5s, jitter 0.1 x 0.5 taken off');
  dns.answer = () => aRecords('users.test', 30, '10.0.0.2', '10.0.0.3');
  await next();
  assert.deepEqual(ids(), ['10.0.0.2:8080', '10.0.0.3:8080']);
  assert.deepEqual(changes.at(-1), [
    { type: 'insert', endpoint: d.endpoints().get('10.0.0.3:8080') },
    { type: 'remove', id: '10.0.0.1:8080' },
  ]);
  assert.equal((clock.nextTimerAt as number) - clock.now(), 28_500);
  // TTLs outside the bounds are clamped: 0 to minTtl, a day to maxTtl.
  dns.answer = () => aRecords('users.test', 0, '10.0.0.2');
  await next();
  assert.equal((clock.nextTimerAt as number) - clock.now(), 950);
  dns.answer = () => aRecords('users.test', 86_400, '10.0.0.2');
  await next();
  assert.equal((clock.nextTimerAt as number) - clock.now(), 285_000);
  assert.equal(d.stats.lookups, 4);
  await d.close();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(d.listenerCount, 0);
});

test('SERVFAIL is reported (event and counter) and the last good set kept; recovery clears it', async () => {
  dns.answer = () => aRecords('users.test', 5, '10.0.0.1');
  const { d, clock, next, ids } = await resolve();
  const errors: number[] = [];
  d.events.on('discovery-error', (e) => errors.push(e.consecutive));
  dns.answer = () => ({ rcode: 'SERVFAIL' });
  await next();
  await next();
  assert.deepEqual(errors, [1, 2]);
  assert.equal(d.stats.errors, 2);
  assert.equal(d.status().health, 'failing');
  assert.equal((d.status().lastError as { code?: string }).code, 'ESERVFAIL');
  assert.deepEqual(ids(), ['10.0.0.1:8080'], 'the last good set stays');
  assert.equal((clock.nextTimerAt as number) - clock.now(), 4750, 'retried after retryInterval');
  dns.answer = () => aRecords('users.test', 5, '10.0.0.1');
  await next();
  assert.equal(d.status().health, 'ok');
  await d.close();
  assert.equal(clock.pendingTimers, 0);
});

test('an empty answer is suspect: kept until enough empties over the grace period, then believed', async () => {
  dns.answer = () => aRecords('users.test', 1, '10.0.0.1');
  const { d, clock, next, ids } = await resolve({ jitter: 0, retryInterval: '1s', emptyAnswers: 3, emptyGrace: '10s' });
  const kept: boolean[] = [];
  d.events.on('discovery-empty', (e) => kept.push(e.kept));
  let flip = 0;
  // NODATA and NXDOMAIN both count as empty answers.
  dns.answer = () => (flip++ % 2 === 0 ? {} : { rcode: 'NXDOMAIN' });
  await next();
  const firstEmptyAt = clock.now();
  while (clock.now() - firstEmptyAt < 10_000) {
    assert.deepEqual(ids(), ['10.0.0.1:8080'], `kept at ${clock.now() - firstEmptyAt}ms`);
    await next();
  }
  assert.deepEqual(ids(), [], 'believed after 3 empties spanning 10s');
  assert.equal(kept.length, 11);
  assert.deepEqual(kept.slice(-2), [true, false]);
  assert.equal(d.status().health, 'ok');
  assert.equal(d.stats.errors, 0, 'empty answers are not errors');
  await d.close();
});

test('SRV: lowest priority targets, their ports and weights, TTL of the target addresses', async () => {
  dns.answer = (q) => {
    if (q.type === 'SRV') {
      return {
        answers: [
          { type: 'SRV', name: q.name, ttl: 60, class: 'IN', data: { priority: 10, weight: 5, port: 9001, target: 'a.test' } },
          { type: 'SRV', name: q.name, ttl: 60, class: 'IN', data: { priority: 10, weight: 1, port: 9002, target: 'b.test' } },
          { type: 'SRV', name: q.name, ttl: 60, class: 'IN', data: { priority: 20, weight: 1, port: 9003, target: 'c.test' } },
        ],
      };
    }
    if (q.name === 'a.test') return aRecords(q.name, 7, '10.1.0.1');
    if (q.name === 'b.test') return aRecords(q.name, 9, '10.1.0.2');
    return aRecords(q.name, 9, '10.1.0.3');
  };
  const { d, clock, ids } = await resolve({ name: '_http._tcp.users.test', type: 'SRV', port: undefined });
  assert.deepEqual(ids(), ['10.1.0.1:9001', '10.1.0.2:9002']);
  const a = d.endpoints().get('10.1.0.1:9001');
  assert.equal(a?.weight, 5);
  assert.deepEqual(a?.metadata, { target: 'a.test', priority: 10, srvWeight: 5 });
  assert.equal(clock.nextTimerAt, 6650, 'smallest target TTL, 7s, minus 5%');
  await d.close();
});

/** SRV records at priority 10 for `targets`, ports 9001, 9002, ... in order, weight 1. */
function srvRecords(name: string, ...targets: string[]): DnsReply {
  return {
    answers: targets.map((target, i) => ({
      type: 'SRV',
      name,
      ttl: 60,
      class: 'IN',
      data: { priority: 10, weight: 1, port: 9001 + i, target },
    })),
  };
}

test('SRV: the A and AAAA records of each target, as for A+AAAA; the smallest TTL of the records used', async () => {
  let records: Record<string, { A?: DnsReply; AAAA?: DnsReply }> = {
    'a.test': { A: aRecords('a.test', 30, '10.1.0.1'), AAAA: aaaaRecords('a.test', 12, 'fd00::1') },
    'b.test': { AAAA: aaaaRecords('b.test', 40, 'fd00::2') },
    'c.test': { A: { rcode: 'NXDOMAIN' }, AAAA: { rcode: 'NXDOMAIN' } },
  };
  dns.answer = (q) => (q.type === 'SRV' ? srvRecords(q.name, 'a.test', 'b.test', 'c.test') : (records[q.name]?.[q.type as 'A'] ?? {}));
  const { d, clock, next, ids } = await resolve({ name: '_http._tcp.users.test', type: 'SRV', port: undefined, targetType: 'A+AAAA' });
  assert.deepEqual(ids(), ['10.1.0.1:9001', '[fd00::1]:9001', '[fd00::2]:9002'], 'c.test has no addresses: it adds nothing');
  assert.deepEqual(d.endpoints().get('[fd00::2]:9002')?.metadata, { target: 'b.test', priority: 10, srvWeight: 1 });
  assert.deepEqual(
    ids().map((id) => d.endpoints().get(id)?.weight),
    [0.5, 0.5, 1],
    "a.test's two addresses share its weight: the target draws what its record asks, as b.test does",
  );
  assert.equal(clock.nextTimerAt, 11_400, "a.test's AAAA TTL, 12s, minus 5%");
  assert.equal(d.stats.errors + d.stats.empty, 0);
  // A failing family of one target fails the lookup: the last good set stays.
  records = { ...records, 'b.test': { AAAA: { rcode: 'SERVFAIL' } } };
  await next();
  assert.equal(d.stats.errors, 1);
  assert.equal((d.status().lastError as { code?: string }).code, 'ESERVFAIL');
  assert.deepEqual(ids(), ['10.1.0.1:9001', '[fd00::1]:9001', '[fd00::2]:9002']);
  // No target with an address is a (suspect) empty answer.
  records = {};
  await next();
  assert.equal(d.stats.empty, 1);
  assert.deepEqual(ids(), ['10.1.0.1:9001', '[fd00::1]:9001', '[fd00::2]:9002'], 'kept: one empty answer is suspect');
  await d.close();
  assert.equal(clock.pendingTimers, 0);
});

test('SRV: targets are asked for A records only by default, as a name is; targetType is refused for other types', async () => {
  dns.answer = (q) =>
    q.type === 'SRV'
      ? srvRecords(q.name, 'a.test')
      : q.type === 'A'
        ? aRecords(q.name, 30, '10.1.0.1')
        : aaaaRecords(q.name, 30, 'fd00::1');
  const asked = dns.queries.length;
  const { d, ids } = await resolve({ name: '_http._tcp.users.test', type: 'SRV', port: undefined });
  assert.deepEqual(ids(), ['10.1.0.1:9001']);
  assert.deepEqual(dns.queries.slice(asked), ['SRV _http._tcp.users.test', 'A a.test']);
  assert.equal(d.describe().targetType, 'A');
  await d.close();
  assert.throws(() => dnsDiscovery({ name: 'users.test', port: 80, targetType: 'A' }), /dns\.targetType: applies to SRV records only/);
});

test('SRV: targets are resolved concurrently: a slow target does not hold back the others', async () => {
  let release = () => {};
  const slow = new Promise<void>((resolve) => {
    release = resolve;
  });
  const answered = new Set<string>();
  dns.answer = (q) => {
    if (q.type === 'SRV') return srvRecords(q.name, 'slow.test', 'b.test', 'c.test');
    if (q.name === 'slow.test') return slow.then(() => aRecords(q.name, 30, '10.2.0.1'));
    answered.add(`${q.type} ${q.name}`);
    // slow.test is answered only once both families of the two others have been: one target at a
    // time would never get there and time out.
    if (answered.size === 4) release();
    return q.type === 'A' ? aRecords(q.name, 30, q.name === 'b.test' ? '10.2.0.2' : '10.2.0.3') : {};
  };
  const { d, ids } = await resolve({ name: '_http._tcp.users.test', type: 'SRV', port: undefined, targetType: 'A+AAAA' });
  release();
  assert.deepEqual(ids(), ['10.2.0.1:9001', '10.2.0.2:9002', '10.2.0.3:9003']);
  assert.equal(d.stats.errors, 0);
  await d.close();
});

test(`SRV: at most ${SRV_TARGET_CONCURRENCY} targets are resolved at once`, async () => {
  const targets = Array.from({ length: SRV_TARGET_CONCURRENCY + 4 }, (_, i) => `t${i}.test`);
  const unanswered = new Map<string, number>();
  let most = 0;
  dns.answer = (q) => {
    if (q.type === 'SRV') return srvRecords(q.name, ...targets);
    unanswered.set(q.name, (unanswered.get(q.name) ?? 0) + 1);
    most = Math.max(most, unanswered.size);
    // Answered a turn later, so that every query already sent is counted before any answer.
    return new Promise((resolve) =>
      setImmediate(() => {
        const left = (unanswered.get(q.name) as number) - 1;
        if (left === 0) unanswered.delete(q.name);
        else unanswered.set(q.name, left);
        resolve(q.type === 'A' ? aRecords(q.name, 30, `10.3.0.${q.name.slice(1, -5)}`) : {});
      }),
    );
  };
  const { d, ids } = await resolve({ name: '_http._tcp.users.test', type: 'SRV', port: undefined });
  assert.equal(ids().length, targets.length);
  assert.ok(most <= SRV_TARGET_CONCURRENCY, `${most} targets in flight at once`);
  await d.close();
});

test('SRV: close() while targets are in flight cancels them and starts no other target', async () => {
  const targets = Array.from({ length: SRV_TARGET_CONCURRENCY + 4 }, (_, i) => `t${i}.test`);
  let asked = () => {};
  const targetAsked = new Promise<void>((resolve) => {
    asked = resolve;
  });
  dns.answer = (q) => {
    if (q.type === 'SRV') return srvRecords(q.name, ...targets);
    asked();
    return 'drop';
  };
  const before = dns.queries.length;
  const d = dnsDiscovery({ name: '_http._tcp.users.test', type: 'SRV', servers: [dns.address], lookupTimeout: '10s', tries: 1 });
  await targetAsked;
  const started = performance.now();
  await d.close();
  assert.ok(performance.now() - started < 1000, 'close() does not wait for the targets to time out');
  const targetQueries = dns.queries.slice(before).filter((q) => !q.startsWith('SRV'));
  assert.ok(targetQueries.length <= 2 * SRV_TARGET_CONCURRENCY, `${targetQueries.length} target queries`);
  assert.equal(d.stats.errors, 0, 'a cancelled lookup is not reported as an error');
});

test('A+AAAA: both families asked and merged, the smaller TTL wins; one family empty is no error', async () => {
  const answers = (v4: DnsReply, v6: DnsReply) => (q: Question) => (q.type === 'AAAA' ? v6 : q.type === 'A' ? v4 : {});
  dns.answer = answers(aRecords('users.test', 20, '10.0.0.1', '10.0.0.2'), aaaaRecords('users.test', 8, 'fd00::1'));
  const { d, clock, next, ids } = await resolve({ type: 'A+AAAA' });
  assert.deepEqual(ids(), ['10.0.0.1:8080', '10.0.0.2:8080', '[fd00::1]:8080']);
  assert.equal(d.endpoints().get('[fd00::1]:8080')?.address, 'fd00::1', 'the id brackets the address, the address is bare');
  assert.deepEqual(dns.queries.slice(-2).sort(), ['A users.test', 'AAAA users.test']);
  assert.equal(clock.nextTimerAt, 7600, 'the AAAA TTL, 8s, minus 5%');
  // The name loses its IPv6 addresses (NODATA for AAAA): the IPv4 ones are the answer.
  dns.answer = answers(aRecords('users.test', 20, '10.0.0.1'), {});
  await next();
  assert.deepEqual(ids(), ['10.0.0.1:8080']);
  // And the other way round (NXDOMAIN for A).
  dns.answer = answers({ rcode: 'NXDOMAIN' }, aaaaRecords('users.test', 30, 'fd00::2'));
  await next();
  assert.deepEqual(ids(), ['[fd00::2]:8080']);
  assert.equal(d.stats.errors, 0);
  assert.equal(d.stats.empty, 0, 'one family empty is not an empty answer');
  // A failing family is an error, not half an answer: the last good set stays.
  dns.answer = answers(aRecords('users.test', 20, '10.0.0.9'), { rcode: 'SERVFAIL' });
  await next();
  assert.deepEqual(ids(), ['[fd00::2]:8080']);
  assert.equal(d.stats.errors, 1);
  assert.equal(d.status().health, 'failing');
  // Both empty is a (suspect) empty answer, as for one family.
  dns.answer = answers({}, {});
  await next();
  assert.equal(d.stats.empty, 1);
  assert.deepEqual(ids(), ['[fd00::2]:8080'], 'kept: one empty answer is suspect');
  await d.close();
  assert.equal(clock.pendingTimers, 0);
});

test('a balancer over failing DNS says discovery-failing; close() cancels a lookup in flight', async () => {
  dns.answer = () => ({ rcode: 'SERVFAIL' });
  const clock = new VirtualClock();
  const discovery = dnsDiscovery({ name: 'users.test', port: 80, servers: [dns.address], clock, tries: 1 });
  const get = new ServiceBuilder({ clock, registry: false }).balance(discovery, () => async () => 'never');
  await discovery.idle();
  await assert.rejects(get(), (e: NoEndpointsError) => e.reason === 'discovery-failing' && /ESERVFAIL|queryA/.test(e.message));
  await get.close();
  assert.equal(clock.pendingTimers, 0, 'closing the balancer closed its discovery');

  dns.answer = () => 'drop';
  const hanging = new DnsDiscovery({ name: 'users.test', port: 80, servers: [dns.address], clock, lookupTimeout: '10s', tries: 1 });
  const started = performance.now();
  await hanging.close();
  assert.ok(performance.now() - started < 1000, 'close() does not wait for the DNS timeout');
  assert.equal(hanging.stats.errors, 0, 'a cancelled lookup is not reported as an error');
});

test('options are checked, naming the field', () => {
  assert.throws(
    () => dnsDiscovery({ name: 'users.test' }),
    (e: InvalidOptionError) => e.problems[0]?.field === 'dns.port',
  );
  assert.throws(
    () => dnsDiscovery({ name: 'users.test', port: 80, minTtl: '10m', maxTtl: '1m' }),
    (e: InvalidOptionError) => e.problems[0]?.field === 'dns.minTtl',
  );
  assert.throws(
    () => dnsDiscovery({ name: 'bad name!', port: 80 }),
    (e: InvalidOptionError) => e.problems[0]?.field === 'dns.name',
  );
  assert.throws(
    () => dnsDiscovery({ name: 'x.test', port: 80, jitter: 2 } as DnsDiscoveryOptions),
    /dns.jitter: must be a number from 0 to 1/,
  );
});

test('servers must be IP addresses with an optional port: anything else is refused at construction, naming the entry', async () => {
  const valid = ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]', '[fd00::53]:5353'];
  await Promise.all(valid.map((server) => dnsDiscovery({ name: 'users.test', port: 80, servers: [server] }).close()));
  // node:dns would throw a bare TypeError (host name), abort the process (port 0) or wrap the port.
  const invalid = ['dns.internal', 'dns.internal:53', '10.0.0.53:0', '10.0.0.53:99999', '[10.0.0.53]:53', '::1]:53'];
  for (const [index, server] of invalid.entries()) {
    assert.throws(
      () => dnsDiscovery({ name: 'users.test', port: 80, servers: [...Array(index).fill('127.0.0.1'), server] }),
      (e: InvalidOptionError) =>
        e.problems.length === 1 &&
        e.problems[0]?.field === `dns.servers.${index}` &&
        /must be an IP address with an optional port/.test(e.problems[0].message),
      server,
    );
  }
  assert.throws(() => dnsDiscovery({ name: 'users.test', port: 80, servers: [] }), /dns\.servers: must name at least one server/);
});

test('a readiness latch released on the first answer: the first calls wait for DNS instead of failing', async () => {
  dns.answer = () => aRecords('users.test', 60, '10.0.0.7');
  const gate = new Readiness();
  const latch = gate.latch('dns');
  const discovery = dnsDiscovery({ name: 'users.test', port: 80, servers: [dns.address], tries: 1 });
  void discovery.answered().then(() => latch.release());
  const get = new ServiceBuilder({ registry: false }).readiness(gate).balance(discovery, (e) => async () => e.address);
  assert.equal(await get(), '10.0.0.7');
  await get.close();
  await discovery.answered();
});
