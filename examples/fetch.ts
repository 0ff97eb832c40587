/**
 * meshFetch against a flaky loopback server: a GET that fails twice with 503 is retried and
 * succeeds; a POST is not retried (not idempotent) and the reason is reported; a PUT body is
 * replayed byte-for-byte; a timeout's remaining deadline travels in a header.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/fetch.ts
 */
import { meshFetch } from 'sidecarless/fetch';
import { listen } from './support.js';

let failuresLeft = 0;
const bodies: string[] = [];
const server = await listen(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  if (body) bodies.push(body);
  const deadline = req.headers['x-sidecarless-deadline-ms'];
  if (failuresLeft > 0) {
    failuresLeft--;
    res.writeHead(503).end('try again');
    return;
  }
  res.end(`ok ${req.method} ${req.url}${deadline ? ` (deadline header: ${Number(deadline) > 0 ? 'present' : deadline})` : ''}`);
});

const fetch = meshFetch({ name: 'example-api', timeout: '2s', retry: { attempts: 2, backoff: { base: '5ms' }, budget: false } });
fetch.events.on('retry', (e) => console.log(`  retry after status ${e.status} (attempt ${e.attempt})`));
fetch.events.on('replay-refused', (e) => console.log(`  not retried: ${e.reason}`));

console.log('GET, server fails twice:');
failuresLeft = 2;
let res = await fetch(`${server.url}/users/42`);
console.log(`  -> ${res.status} ${await res.text()}`);

console.log('POST, server fails once:');
failuresLeft = 1;
res = await fetch(`${server.url}/orders`, { method: 'POST', body: '{"item":1}' });
console.log(`  -> ${res.status} ${await res.text()}`);

console.log('PUT with a body, server fails once:');
failuresLeft = 1;
bodies.length = 0;
res = await fetch(`${server.url}/users/42`, { method: 'PUT', body: '{"name":"Ada"}' });
console.log(`  -> ${res.status}; bodies received: ${bodies.length}, identical: ${bodies.every((b) => b === bodies[0])}`);
await res.text();

await fetch.close();
await server.close();
console.log('done');
