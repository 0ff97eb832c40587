/**
 * Fastify 5 with the sidecarless plugin: load shedding (503 + Retry-After), the caller's
 * deadline from `x-sidecarless-deadline-ms` (504 when it passes), golden metrics per route
 * pattern.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/fastify.ts
 */
import Fastify from 'fastify';
import { MetricsRegistry } from 'sidecarless';
import { meshPlugin } from 'sidecarless/fastify';

const metrics = new MetricsRegistry();
// The requests admitted under the limit are held until the others have been shed, so what this
// prints does not depend on how fast the machine answers.
let released!: () => void;
const admittedMayAnswer = new Promise<void>((resolve) => {
  released = resolve;
  // Should fewer than three be shed, the admitted ones still answer: the example ends either way.
  setTimeout(resolve, 5000).unref();
});
const app = Fastify();
await app.register(meshPlugin, { name: 'fastify-example', concurrency: 2, metrics });
app.get('/orders/:id', async (request) => {
  await admittedMayAnswer;
  await new Promise((r) => setTimeout(r, 50));
  return { id: (request.params as { id: string }).id, deadlineLeft: request.mesh ? 'tracked' : 'none' };
});
const url = await app.listen({ port: 0, host: '127.0.0.1' });

let shed = 0;
const statuses = await Promise.all(
  Array.from({ length: 5 }, async (_, i) => {
    const res = await fetch(`${url}/orders/${i}`);
    if (res.status === 503 && ++shed === 3) released();
    await res.text();
    return res.status;
  }),
);
console.log(`5 concurrent requests, limit 2: ${statuses.sort().join(', ')}`);
const late = await fetch(`${url}/orders/9`, { headers: { 'x-sidecarless-deadline-ms': '10' } });
console.log(`with 10 ms of deadline left: ${late.status} ${await late.text()}`);
await new Promise((r) => setTimeout(r, 60));
const routes = metrics
  .snapshot()[0]
  ?.routes.map((r) => `${r.route}=${r.requests}`)
  .join(' ');
console.log(`requests by route pattern: ${routes}`);
await app.close();
console.log('done');
