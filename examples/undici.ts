/**
 * The same stack over undici: `meshRequest` (undici's `request` API, cheaper per call than
 * fetch), and the interceptor that lets a whole process opt in with `setGlobalDispatcher` —
 * explicitly; nothing is patched unless the application does this.
 *
 * Run: node --conditions=sidecarless-source --import tsx examples/undici.ts
 */

import { meshInterceptor, meshRequest } from 'sidecarless/fetch';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { listen } from './support.js';

let calls = 0;
const server = await listen((_req, res) => {
  calls++;
  // Every other request fails: a retry always lands on a success.
  if (calls % 2 === 1) res.writeHead(503).end('busy');
  else res.end(`hello #${calls}`);
});
const retry = { attempts: 2, backoff: { base: '2ms' }, budget: false } as const;

const request = meshRequest({ name: 'undici-example', retry });
const { statusCode, body } = await request(`${server.url}/hello`);
console.log(`meshRequest: ${statusCode} ${await body.text()} (server saw ${calls} requests)`);
await request.close();

// Opt the whole process in: every fetch now goes through the mesh.
const interceptor = meshInterceptor({ name: 'egress', retry });
const previous = getGlobalDispatcher();
const agent = new Agent().compose(interceptor);
setGlobalDispatcher(agent);
calls = 0;
const res = await fetch(`${server.url}/hello`);
console.log(`global fetch through the interceptor: ${res.status} ${await res.text()} (server saw ${calls} requests)`);
setGlobalDispatcher(previous);
await interceptor.close();
await agent.close();
await server.close();
console.log('done');
