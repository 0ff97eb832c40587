// Shared by the control tests: polling waits with a bound, and fleets of real stream clients.
import assert from 'node:assert/strict';
import { createMeshStore, type HttpSourceEvent, httpSource, type MeshStore } from '../../src/control/index.js';
import { InvalidOptionError } from '../../src/core/errors.js';

/** Things a test opened; closed after each test even when it fails, so the process can exit. */
export const opened: { close(): Promise<unknown> }[] = [];

/** Remembers `thing` for {@link closeOpened}; returns it. */
export function track<T extends { close(): Promise<unknown> }>(thing: T): T {
  opened.push(thing);
  return thing;
}

/** Closes everything tracked (use in `afterEach`). */
export async function closeOpened(): Promise<void> {
  // One after the other, newest first: clients and servers go before the etcd they talk to.
  for (const thing of opened.splice(0).reverse()) await thing.close().catch(() => {});
}

/** Waits until `check()` holds, polling every 5 ms; throws naming `what` after `ms`. */
export async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const TOKEN = 'test-token-0123456789';

/** One client process's worth: a mesh store fed by the control stream. */
export interface Client {
  store: MeshStore;
  events: HttpSourceEvent[];
  id: string;
}

/** Starts `n` stream clients against `url`. */
export async function startClients(
  url: string,
  n: number,
  options: { persistPath?: (i: number) => string; token?: string; prefix?: string } = {},
): Promise<Client[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const events: HttpSourceEvent[] = [];
      const id = `${options.prefix ?? 'client'}-${i}`;
      const source = httpSource({
        url,
        token: options.token ?? TOKEN,
        clientId: id,
        reconnect: { base: 20, max: 200 },
        onEvent: (e) => events.push(e),
      });
      const store = await createMeshStore({ persistPath: options.persistPath?.(i), sources: [source] });
      track(store);
      return { store, events, id };
    }),
  );
}

/** GETs a path of the control server as JSON. */
export async function getJson(url: string, path: string, token = TOKEN): Promise<{ status: number; body: any }> {
  const res = await fetch(new URL(path, url), { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

/** Asserts `build` throws an InvalidOptionError whose problems name `fields`; returns its message. */
export function refused(build: () => unknown, fields: string[], what: string): string {
  let message = '';
  assert.throws(
    build,
    (error: unknown) => {
      assert.ok(error instanceof InvalidOptionError, `${what}: ${String(error)}`);
      assert.deepEqual(
        error.problems.map((p) => p.field),
        fields,
        `${what}: ${error.message}`,
      );
      message = error.message;
      return true;
    },
    what,
  );
  return message;
}
