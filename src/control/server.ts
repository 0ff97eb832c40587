/**
 * The reference control server (`sidecarless control`): reads its config from a source (a
 * watched file, or etcd), validates each document before publishing it — an invalid one is
 * logged with every problem and never published, the last good one stays — and streams it to
 * every client (see the protocol in `protocol.ts`). Clients authenticate with a bearer token, a
 * client certificate (mTLS: serve over TLS and name the CA that signs clients), or both;
 * `GET /clients` shows each one's applied or rejected version.
 *
 * @module
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { type Clock, systemClock } from '../core/clock.js';
import type { OptionProblem } from '../core/errors.js';
import { int, num, parseOptions } from '../core/validate.js';
import { ClientRegistry, type ClientState, type OpenStream } from './client-registry.js';
import { checkClientCa, peerCertificate } from './client-tls.js';
import { type DocumentLimits, meshValidator } from './document.js';
import {
  ACK_PATH,
  type AckReport,
  CLIENT_ID,
  CLIENT_ID_RULE,
  CLIENTS_PATH,
  readQueryStamp,
  readStamp,
  STREAM_PATH,
  type StreamMessage,
} from './protocol.js';
import type { ConfigSink, ConfigSource, SourceUpdate, SourceVerdict } from './source.js';

/** Options of {@link ControlServer}. */
export interface ControlServerOptions {
  /** Where documents come from; without one, only {@link ControlServer.publish} feeds it. */
  source?: ConfigSource;
  /**
   * Bearer tokens accepted from clients (one or several, for rotation). Required unless
   * `tls.clientCa` makes client certificates the proof; with both, a client needs both.
   */
  token?: string | readonly string[];
  /** Serve over TLS; with `clientCa`, only clients presenting a certificate it signed get in (mTLS). */
  tls?: ControlServerTls;
  /** Port to listen on, 0 to 65535; 0 picks a free one. Default 7070. */
  port?: number;
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Interval of heartbeats on every stream, 1 ms to 1 hour. Default 5000 ms. */
  heartbeatMs?: number;
  /** Limits on documents, as clients apply them. */
  limits?: DocumentLimits;
  clock?: Clock;
  /** Where problems and changes are logged. Default stderr. */
  log?: (line: string) => void;
}

/** TLS material of the control server (PEM). */
export interface ControlServerTls {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA certificates that sign client certificates; given, a client without one is refused. Must not be empty. */
  clientCa?: string | Buffer | readonly (string | Buffer)[];
}

export type { ClientState } from './client-registry.js';

const MAX_ACK_BYTES = 1_048_576;
// A client this far behind is dropped (it reconnects and gets one full snapshot) rather than
// buffering every change for it.
const MAX_BUFFERED = 8 * 1_048_576;

/** The numeric options, checked at construction (a zero or NaN heartbeat would fire every millisecond). */
const numericOptions = z.object({
  port: int(0, 65_535).default(7070),
  heartbeatMs: num(1, 3_600_000).default(5000),
});

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

/** The reference control server; see the module doc. */
export class ControlServer implements ConfigSink {
  readonly #options: ControlServerOptions;
  readonly #clock: Clock;
  readonly #port: number;
  readonly #heartbeatMs: number;
  readonly #tokens: Buffer[];
  readonly #validate: ReturnType<typeof meshValidator>;
  readonly #log: (line: string) => void;
  readonly #server: Server;
  readonly #streams = new Map<ServerResponse, OpenStream>();
  readonly #clients: ClientRegistry;
  #current: { version: string; line: string; config: unknown } | undefined;
  #heartbeat: unknown;
  #closed = false;

  constructor(options: ControlServerOptions) {
    const tokens = options.token === undefined ? [] : typeof options.token === 'string' ? [options.token] : [...options.token];
    const { port, heartbeatMs } = parseOptions(numericOptions, options, '');
    checkClientCa(options.tls?.clientCa);
    const mutualTls = options.tls?.clientCa !== undefined;
    if ((tokens.length === 0 && !mutualTls) || tokens.some((t) => typeof t !== 'string' || t.length < 8)) {
      throw new Error(
        'control server: a bearer token of at least 8 characters is required, unless tls.clientCa makes clients present certificates',
      );
    }
    this.#options = options;
    this.#tokens = tokens.map(digest);
    this.#clock = options.clock ?? systemClock;
    this.#clients = new ClientRegistry(this.#clock);
    this.#port = port;
    this.#heartbeatMs = heartbeatMs;
    this.#validate = meshValidator(options.limits);
    this.#log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    const handle = (req: IncomingMessage, res: ServerResponse): void => this.#guard(res, () => this.#dispatch(req, res));
    const tls = options.tls;
    this.#server =
      tls === undefined
        ? createServer(handle)
        : createTlsServer(
            {
              cert: tls.cert,
              key: tls.key,
              // With a client CA the handshake itself refuses a client without a certificate it signed.
              ...(mutualTls
                ? { ca: tls.clientCa as string | Buffer | (string | Buffer)[], requestCert: true, rejectUnauthorized: true }
                : {}),
            },
            handle,
          );
  }

  /** Starts listening and the source; resolves with the base URL. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, this.#options.host ?? '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#armHeartbeat();
    this.#options.source?.start(this);
    return this.url;
  }

  /** `http://host:port` (`https://` over TLS) of the listening server. */
  get url(): string {
    const address = this.#server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${this.#options.tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
  }

  /** Version being published (empty before the first valid document). */
  get version(): string {
    return this.#current?.version ?? '';
  }

  /** Validates a source's document and publishes it, or logs its problems and keeps the last good one. */
  deliver(update: SourceUpdate): SourceVerdict {
    if ('problems' in update) return this.#reject(update.version, update.problems);
    const result = this.#validate(update.raw);
    if (!result.ok) return this.#reject(update.version, result.problems);
    return this.publish(result.value, update.version, { unchecked: true });
  }

  /**
   * Publishes a document to every client. It is validated first unless `unchecked` — which
   * exists to relay documents of a newer schema and to test clients' NACK path.
   */
  publish(config: unknown, version: string, options: { unchecked?: boolean } = {}): SourceVerdict {
    if (!options.unchecked) return this.deliver({ version, raw: config });
    if (version === this.#current?.version) return { applied: true, version };
    const message: StreamMessage = { type: 'snapshot', version, config };
    const line = `${JSON.stringify(message)}\n`;
    this.#current = { version, line, config };
    this.#log(`control: publishing version ${version} to ${this.#streams.size} streams`);
    for (const res of this.#streams.keys()) this.#write(res, line);
    return { applied: true, version };
  }

  #reject(version: string, problems: readonly OptionProblem[]): SourceVerdict {
    const kept = this.#current ? `keeping version ${this.#current.version}` : 'nothing published yet';
    this.#log(`control: rejected version ${version} (${kept}):`);
    for (const p of problems) this.#log(`  ${p.field}: ${p.message}`);
    return { applied: false, version, problems };
  }

  /** Every client seen, with its applied or rejected version. */
  clients(): ClientState[] {
    return this.#clients.list();
  }

  #authorized(req: IncomingMessage): boolean {
    // A client certificate was checked in the handshake (rejectUnauthorized); tokens, if any, are also required.
    // Without tokens the certificate is the only proof, so it is checked again here: a socket
    // the handshake did not authorize (or no TLS at all) never gets in on no evidence.
    if (this.#tokens.length === 0) return (req.socket as TLSSocket).authorized === true;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return false;
    const given = digest(match[1] as string);
    let ok = false;
    // Compare against every token in constant time, so timing tells nothing about which matched.
    for (const token of this.#tokens) ok = timingSafeEqual(given, token) || ok;
    return ok;
  }

  /**
   * Runs `work` for the request `res` answers: whatever it throws becomes a bare 500 (the client
   * learns no details) and a log line, never an exception out of a request listener, which kills
   * the process: anyone who reaches the port could stop the control plane.
   */
  #guard(res: ServerResponse, work: () => void): void {
    try {
      work();
    } catch (error) {
      if (res.headersSent) res.destroy();
      else json(res, 500, { error: 'internal error' });
      try {
        this.#log(`control: request failed: ${error instanceof Error ? error.message : String(error)}`);
      } catch {
        // A log that throws, or an error with no string form: the client has its answer already.
      }
    }
  }

  #dispatch(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? '/';
    // Checked before anything else, authentication included: `new URL` throws on a target such as "//[".
    if (!URL.canParse(target, 'http://control')) {
      json(res, 400, { error: 'request target must be a path such as /v1/stream' });
      return;
    }
    const url = new URL(target, 'http://control');
    if (url.pathname === '/healthz') {
      json(res, 200, { ok: true, version: this.version });
      return;
    }
    if (!this.#authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer realm="sidecarless"');
      json(res, 401, { error: 'a valid bearer token is required' });
      return;
    }
    if (req.method === 'GET' && url.pathname === STREAM_PATH) {
      this.#openStream(req, res, url);
      return;
    }
    if (req.method === 'POST' && url.pathname === ACK_PATH) {
      this.#receiveAck(req, res);
      return;
    }
    if (req.method === 'GET' && url.pathname === CLIENTS_PATH) {
      json(res, 200, { version: this.version, clients: this.clients() });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/config') {
      json(res, 200, { version: this.version, config: this.#current?.config });
      return;
    }
    json(res, 404, { error: 'not found' });
  }

  #openStream(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const id = url.searchParams.get('client') ?? '';
    if (!CLIENT_ID.test(id)) {
      json(res, 400, { error: `client ${CLIENT_ID_RULE}` });
      return;
    }
    const stamp = readQueryStamp(url.searchParams);
    if (stamp !== undefined && 'error' in stamp) {
      json(res, 400, { error: stamp.error });
      return;
    }
    const has = url.searchParams.get('version');
    const client = this.#clients.streamOpened(id, req.socket.remoteAddress ?? '', peerCertificate(req), has, stamp);
    this.#streams.set(res, client);
    // Registered with the stream, before anything that could throw: a stream ended by the guard
    // must not stay listed (heartbeats written to it, the client shown connected).
    res.on('close', () => {
      this.#streams.delete(res);
      this.#clients.streamClosed(client);
    });
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    req.socket.setNoDelay(true);
    const hello: StreamMessage = { type: 'hello', heartbeatMs: this.#heartbeatMs, version: this.version };
    this.#write(res, `${JSON.stringify(hello)}\n`);
    if (this.#current !== undefined && has !== this.#current.version) this.#write(res, this.#current.line);
  }

  #write(res: ServerResponse, line: string): void {
    if (res.writableLength > MAX_BUFFERED) {
      res.destroy();
      return;
    }
    res.write(line);
  }

  #receiveAck(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ACK_BYTES) {
        json(res, 413, { error: 'report too large' });
        req.destroy();
      } else chunks.push(chunk);
    });
    // The body arrives after dispatch returned: its handler is guarded on its own.
    req.on('end', () => this.#guard(res, () => this.#applyAck(req, res, chunks)));
  }

  #applyAck(req: IncomingMessage, res: ServerResponse, chunks: Buffer[]): void {
    let report: AckReport;
    try {
      report = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AckReport;
    } catch {
      json(res, 400, { error: 'body must be JSON' });
      return;
    }
    if (typeof report?.client !== 'string' || !CLIENT_ID.test(report.client) || typeof report.version !== 'string') {
      json(res, 400, { error: 'body must be { client, version, applied, problems, session, seq }' });
      return;
    }
    // "true" as a string would be recorded as a rejection: refused, naming the field.
    if (typeof report.applied !== 'boolean' || (report.problems !== undefined && !Array.isArray(report.problems))) {
      json(res, 400, { error: 'applied must be true or false, and problems a list when given' });
      return;
    }
    const stamp = readStamp(report.session, report.seq);
    if (stamp !== undefined && 'error' in stamp) {
      json(res, 400, { error: stamp.error });
      return;
    }
    // A stale report is answered as taken: sent again, it would be just as stale.
    const client = this.#clients.report(report, stamp, req.socket.remoteAddress ?? '');
    if (client !== undefined && report.applied !== true) {
      this.#log(`control: client ${client.id} rejected version ${report.version}: ${client.problems?.length ?? 0} problems`);
    }
    res.writeHead(204).end();
  }

  #armHeartbeat(): void {
    if (this.#closed) return;
    this.#heartbeat = this.#clock.setTimer(() => {
      const line = `${JSON.stringify({ type: 'heartbeat', version: this.version } satisfies StreamMessage)}\n`;
      for (const res of this.#streams.keys()) this.#write(res, line);
      this.#armHeartbeat();
    }, this.#heartbeatMs);
  }

  /** Stops the source, ends every stream and closes the listener. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat !== undefined) this.#clock.clearTimer(this.#heartbeat);
    await this.#options.source?.close();
    for (const res of this.#streams.keys()) res.destroy();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
