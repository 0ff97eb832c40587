/** Request-body fixtures shared by the replay-buffer tests: an echoing loopback server and a stream the test feeds by hand. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveOnLoopback } from '../../support/loopback.js';

/** A loopback server that counts the requests that reach it and echoes each whole body. */
export async function echoServer(t: { after(fn: () => unknown): void }) {
  const server = { url: '', requests: 0, bodies: [] as string[] };
  server.url = await serveOnLoopback(t, async (req: IncomingMessage, res: ServerResponse) => {
    server.requests++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    server.bodies.push(body.toString());
    res.end(body);
  });
  return server;
}

/**
 * A web stream body that sends `first` at once and then waits for the test: `push` adds a chunk,
 * `end` closes it (never called: a body that never ends). `state` says when a read waits for
 * more and whether the stream was cancelled.
 */
export function heldStream(first: string) {
  const state = { waiting: false, cancelled: false };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
      c.enqueue(new TextEncoder().encode(first));
    },
    pull: () => {
      state.waiting = true;
    },
    cancel: () => {
      state.cancelled = true;
    },
  });
  return {
    stream,
    state,
    push: (text: string) => controller.enqueue(new TextEncoder().encode(text)),
    end: () => controller.close(),
  };
}
