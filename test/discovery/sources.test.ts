import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigStore } from '../../src/core/config-store.js';
import type { InvalidOptionError } from '../../src/core/errors.js';
import { type Changeset, configDiscovery, type EndpointInput, staticDiscovery } from '../../src/discovery/index.js';

const summary = (changes: Changeset) =>
  changes.map((c) => (c.type === 'remove' ? `remove ${c.id}` : `${c.type} ${c.endpoint.id} w${c.endpoint.weight}`));

test('static: the current set is replayed on subscribe, then only differences are delivered', () => {
  const d = staticDiscovery([
    { address: '10.0.0.1', port: 80 },
    { address: '::1', port: 81 },
  ]);
  const seen: string[][] = [];
  const sub = d.subscribe((c) => seen.push(summary(c)));
  assert.deepEqual(seen, [['insert 10.0.0.1:80 w1', 'insert [::1]:81 w1']]);
  d.add({ address: '10.0.0.1', port: 80, weight: 3 }, { address: '10.0.0.2', port: 80 });
  d.set([
    { address: '10.0.0.2', port: 80 },
    { address: '10.0.0.1', port: 80, weight: 3 },
  ]);
  d.remove('10.0.0.2:80');
  assert.deepEqual(seen.slice(1), [['update 10.0.0.1:80 w3', 'insert 10.0.0.2:80 w1'], ['remove [::1]:81'], ['remove 10.0.0.2:80']]);
  d.set([{ address: '10.0.0.1', port: 80, weight: 3 }]);
  assert.equal(seen.length, 4, 'an unchanged set delivers nothing');
  sub.dispose();
  assert.equal(d.listenerCount, 0);
  d.close();
});

test('config: endpoints selected from each snapshot; a bad selection is reported and the last set kept', () => {
  interface Config {
    services: Record<string, { endpoints?: EndpointInput[] }>;
  }
  const store = new ConfigStore<Config>({ initial: { services: { users: { endpoints: [{ address: 'a', port: 1 }] } } } });
  const d = configDiscovery(store, (c) => c.services.users?.endpoints, { name: 'users' });
  const seen: string[][] = [];
  const errors: unknown[] = [];
  d.events.on('discovery-error', (e) => errors.push(e.error));
  d.subscribe((c) => seen.push(summary(c)));
  store.swap(
    {
      services: {
        users: {
          endpoints: [
            { address: 'a', port: 1 },
            { address: 'b', port: 2, weight: 2 },
          ],
        },
      },
    },
    '2',
  );
  store.swap({ services: { users: { endpoints: [{ address: 'b', port: 99999 }] } } }, '3');
  assert.equal(errors.length, 1);
  assert.match(String((errors[0] as InvalidOptionError).message), /endpoints@3\.0\.port/);
  assert.equal(d.status().health, 'failing');
  assert.equal(d.endpoints().size, 2, 'the last good set stays');
  store.swap({ services: {} }, '4');
  assert.deepEqual(seen, [['insert a:1 w1'], ['insert b:2 w2'], ['remove a:1', 'remove b:2']]);
  assert.equal(d.status().health, 'ok');
  d.close();
  assert.equal(store.subscriberCount, 0);
});
