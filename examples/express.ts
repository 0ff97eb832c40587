/**
 * Express 5 with the sidecarless middleware: at most 2 requests at once, the rest shed with
 * 503 + Retry-After; readiness gating; golden metrics per route pattern; admin routes mounted
 * under /_mesh.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/express.ts
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { MetricsRegistry, Readiness } from 'sidecarless';
import { createAdminHandler } from 'sidecarless/admin';
import { meshMiddleware } from 'sidecarless/express';

const metrics = new MetricsRegistry();
const readiness = new Readiness();
const warmup = readiness.latch('cache-warmup');
const mesh = meshMiddleware({
  name: 'express-example',
  concurrency: 2,
  metrics,
  readiness,
  admin: { prefix: '/_mesh', handler: createAdminHandler({ metrics, readiness }) },
});
// The requests admitted under the limit are held until the others have been shed, so what this
// prints does not depend on how fast the machine answers.
let released!: () => void;
const admittedMayAnswer = new Promise<void>((resolve) => {
  released = resolve;
  // Should fewer than three be shed, the admitted ones still answer: the example ends either way.
  setTimeout(resolve, 5000).unref();
});
const app = express();
app.use(mesh);
app.get('/users/:id', async (req, res) => {
  await admittedMayAnswer;
  res.json({ id: req.params.id });
});
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const before = await fetch(`${url}/users/1`);
console.log(`before warm-up: ${before.status} ${await before.text()}`);
console.log(`admin /ready while not ready: ${(await fetch(`${url}/_mesh/ready`)).status}`);
warmup.release();

let shed = 0;
const statuses = await Promise.all(
  Array.from({ length: 5 }, async (_, i) => {
    const res = await fetch(`${url}/users/${i}`);
    if (res.status === 503 && ++shed === 3) released();
    await res.text();
    return `${res.status}${res.headers.get('retry-after') ? ` (Retry-After ${res.headers.get('retry-after')})` : ''}`;
  }),
);
console.log(`5 concurrent requests, limit 2: ${statuses.sort().join(', ')}`);
const routes = metrics
  .snapshot()[0]
  ?.routes.map((r) => `${r.route}=${r.requests}`)
  .join(' ');
console.log(`requests by route pattern: ${routes}`);

await mesh.close();
server.closeAllConnections();
await new Promise<void>((r) => server.close(() => r()));
console.log('done');
