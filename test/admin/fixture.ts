// A small mesh with real traffic for the admin, dashboard and `stat` tests: two services with
// metrics (effective and actual), the real circuit breaker, a stand-in balancer that describes its
// endpoints as the real one does (the admin server reads descriptions, not internals), a config
// store with a rejected version, and a readiness gate.
import { type AdminServer, createAdminServer } from '../../src/admin/index.js';
import {
  type CallContext,
  ConfigStore,
  describeChain,
  type Layer,
  type LayerDescription,
  MetricsRegistry,
  Readiness,
  type Service,
  ServiceBuilder,
  StackRegistry,
} from '../../src/index.js';

/** A layer that spreads calls over three addresses and describes them as a balancer would. */
function fakeBalancer(): Layer<unknown[], unknown> {
  return {
    name: 'balance',
    wrap: (inner: Service<unknown[], unknown>) => {
      const endpoints = ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080'].map((address, i) => ({
        address,
        state: i === 2 ? 'probation' : 'ready',
        load: 0,
        weight: 1,
      }));
      let next = 0;
      return {
        async call(req: unknown[], ctx: CallContext) {
          const endpoint = endpoints[next++ % endpoints.length] as (typeof endpoints)[number];
          ctx.endpoint = endpoint.address;
          endpoint.load++;
          try {
            return await inner.call(req, ctx);
          } finally {
            endpoint.load--;
          }
        },
        describe: (): LayerDescription[] =>
          describeChain({ layer: 'balance', params: { kind: 'p2c' }, state: { endpoints: endpoints.map((e) => ({ ...e })) } }, inner),
        close: () => inner.close?.(),
      };
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Fixture {
  readonly admin: AdminServer;
  readonly stacks: StackRegistry;
  readonly metrics: MetricsRegistry;
  readonly store: ConfigStore<{ retries: number }>;
  readonly readiness: Readiness;
  readonly users: (id: string) => Promise<string>;
  readonly orders: (id: string) => Promise<string>;
  /** Sends calls every `everyMs` until stopped; returns the stopper. */
  traffic(everyMs: number): () => Promise<void>;
  close(): Promise<void>;
}

export async function startFixture(): Promise<Fixture> {
  const stacks = new StackRegistry();
  const metrics = new MetricsRegistry();
  const store = new ConfigStore<{ retries: number }>({
    initial: { retries: 2 },
    initialVersion: '7',
    validate: (raw) => {
      const retries = (raw as { retries?: unknown }).retries;
      return typeof retries === 'number' && retries >= 0
        ? { ok: true, value: { retries } }
        : { ok: false, problems: [{ field: 'retries', message: `must be a number >= 0 (got ${JSON.stringify(retries)})` }] };
    },
  });
  store.swap({ retries: -1 }, '8');
  const readiness = new Readiness();
  const users = new ServiceBuilder({ name: 'users', registry: stacks })
    .metrics({ registry: metrics })
    .circuitBreaker()
    .retry({ attempts: 2, backoff: { base: '1ms' } })
    .metrics({ registry: metrics, scope: 'attempt' })
    .layer(fakeBalancer())
    .service(async (id: string) => {
      await sleep(1 + Math.floor(Math.random() * 12) + (Math.random() < 0.05 ? 40 : 0));
      if (Math.random() < 0.06) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      return `user ${id}`;
    });
  const orders = new ServiceBuilder({ name: 'orders', registry: stacks }).metrics({ registry: metrics }).service(async (id: string) => {
    await sleep(5 + Math.floor(Math.random() * 25));
    if (Math.random() < 0.02) throw new Error('out of stock');
    return `order ${id}`;
  });
  const admin = await createAdminServer({ port: 0, stacks, metrics, stores: { mesh: store }, readiness, windowMs: 5_000 });
  const stoppers = new Set<() => Promise<void>>();
  return {
    admin,
    stacks,
    metrics,
    store,
    readiness,
    users,
    orders,
    traffic(everyMs) {
      const inflight = new Set<Promise<unknown>>();
      let i = 0;
      const timer = setInterval(() => {
        const p = (i++ % 3 === 0 ? orders(String(i)) : users(String(i))).catch(() => {});
        inflight.add(p);
        p.finally(() => inflight.delete(p));
      }, everyMs);
      const stop = async () => {
        clearInterval(timer);
        stoppers.delete(stop);
        await Promise.all(inflight);
      };
      stoppers.add(stop);
      return stop;
    },
    async close() {
      for (const stop of [...stoppers]) await stop();
      await admin.close();
      await users.close();
      await orders.close();
    },
  };
}
