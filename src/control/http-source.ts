/**
 * The control server's stream as a config source: one long-lived GET of newline-delimited
 * JSON (see {@link STREAM_PATH}). Each snapshot is validated by the sink and acknowledged back
 * to the server (ACK, or NACK with every problem). A stream that goes quiet for three heartbeat
 * intervals is taken as dead; any end of the stream is followed by a reconnect after a jittered
 * exponential backoff, resuming from the version in force so an unchanged config is not resent.
 * While disconnected, the process keeps serving with the snapshot it has.
 *
 * @module
 */

import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { hostname } from 'node:os';
import { z } from 'zod';
import { type Clock, systemClock } from '../core/clock.js';
import { duration, int, parseOptions } from '../core/validate.js';
import { type BackoffParams, backoffDelay, resolveBackoff } from '../layers/retry/backoff.js';
import { DEFAULT_MAX_BYTES } from './document.js';
import { ACK_PATH, type AckReport, LineSplitter, STREAM_PATH, type StreamMessage } from './protocol.js';
import type { ConfigSink, ConfigSource, SourceVerdict } from './source.js';

/** What the source reports, for logs and tests. */
export type HttpSourceEvent =
  | { type: 'connected'; version: string }
  | { type: 'disconnected'; reason: string; retryInMs: number }
  | { type: 'verdict'; verdict: SourceVerdict }
  | { type: 'ack-failed'; version: string; reason: string };

/** Options of {@link httpSource}. */
export interface HttpSourceOptions {
  /** Base URL of the control server, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** Bearer token; may be left out when the server knows clients by their certificates (mTLS). */
  token?: string;
  /**
   * TLS for an `https://` server: `ca` to trust a server certificate of a private CA, and `cert`
   * and `key` (PEM) to present a client certificate for mTLS.
   */
  tls?: { ca?: string | Buffer | readonly (string | Buffer)[]; cert?: string | Buffer; key?: string | Buffer };
  /** This process's name at the server. Default `<hostname>-<pid>-<random>`. */
  clientId?: string;
  /**
   * Reconnect backoff: exponential from `base` to `max` with equal jitter, each 1 ms to 1 hour.
   * Default 100 ms to 10 s.
   */
  reconnect?: { base?: number; max?: number };
  /** Missed heartbeats after which the stream is taken as dead, 1 to 100. Default 3. */
  missedHeartbeats?: number;
  /** Longest line accepted, 1 KiB to 1 GiB. Default twice the default document limit. */
  maxLineBytes?: number;
  clock?: Clock;
  random?: () => number;
  /** Called on connection changes, verdicts and failed ACKs. */
  onEvent?: (event: HttpSourceEvent) => void;
}

/** The control server's stream at `options.url` as a {@link ConfigSource}. */
export function httpSource(options: HttpSourceOptions): ConfigSource & { readonly clientId: string } {
  return new HttpSource(options);
}

const FIRST_LINE_MS = 10_000;
// Checked at construction: zero missed heartbeats, a zero backoff or a line limit shorter than the
// hello line would each make the source reconnect in a tight loop.
const numericOptions = z.object({
  missedHeartbeats: int(1, 100).default(3),
  maxLineBytes: int(1024, 1_073_741_824).default(DEFAULT_MAX_BYTES * 2),
  reconnect: z
    .strictObject({ base: duration(1, 3_600_000).default(100), max: duration(1, 3_600_000).default(10_000) })
    .default({ base: 100, max: 10_000 }),
});

class HttpSource implements ConfigSource {
  readonly name: string;
  readonly clientId: string;
  readonly #base: URL;
  readonly #options: HttpSourceOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #backoff: BackoffParams;
  readonly #missedHeartbeats: number;
  readonly #maxLineBytes: number;
  readonly #requests = new Set<ClientRequest>();
  #sink: ConfigSink | undefined;
  #stream: ClientRequest | undefined;
  #reconnectTimer: unknown;
  #watchdog: unknown;
  #watchdogMs = FIRST_LINE_MS;
  #failures = 0;
  #previousDelay = 0;
  #closed = false;

  constructor(options: HttpSourceOptions) {
    const { missedHeartbeats, maxLineBytes, reconnect } = parseOptions(numericOptions, options, '');
    this.#base = new URL(options.url);
    this.#options = options;
    this.name = `http:${this.#base.origin}`;
    this.clientId = options.clientId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = resolveBackoff({ base: reconnect.base, max: reconnect.max, jitter: 'equal' }, 'reconnect');
    this.#missedHeartbeats = missedHeartbeats;
    this.#maxLineBytes = maxLineBytes;
  }

  start(sink: ConfigSink): void {
    this.#sink = sink;
    this.#connect();
  }

  #send(method: string, path: string, query: Record<string, string>, body?: string): ClientRequest {
    const url = new URL(path, this.#base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers: Record<string, string> = {};
    if (this.#options.token !== undefined) headers.authorization = `Bearer ${this.#options.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const tls = this.#options.tls;
    // No pooled agent: the stream holds its socket for hours, and nothing must keep it open after close().
    const req = send(url, {
      method,
      headers,
      agent: false,
      ...(tls === undefined ? {} : { ca: tls.ca as string | Buffer | (string | Buffer)[] | undefined, cert: tls.cert, key: tls.key }),
    });
    this.#requests.add(req);
    req.once('close', () => this.#requests.delete(req));
    req.end(body);
    return req;
  }

  #connect(): void {
    if (this.#closed) return;
    const sink = this.#sink as ConfigSink;
    const req = this.#send('GET', STREAM_PATH, { client: this.clientId, version: sink.version });
    this.#stream = req;
    this.#watchdogMs = FIRST_LINE_MS;
    this.#armWatchdog(req);
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      req.destroy();
      this.#lost(req, reason);
    };
    req.on('error', (error) => end(error.message));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        end(`HTTP ${res.statusCode}`);
        return;
      }
      const splitter = new LineSplitter(this.#maxLineBytes);
      res.on('data', (chunk: Buffer) => {
        try {
          for (const line of splitter.push(chunk)) if (line.trim() !== '') this.#onLine(req, line);
        } catch (error) {
          end((error as Error).message);
        }
      });
      res.on('end', () => end('stream ended'));
      res.on('error', (error) => end(error.message));
    });
  }

  #onLine(req: ClientRequest, line: string): void {
    if (req !== this.#stream || this.#closed) return;
    this.#armWatchdog(req);
    const message = JSON.parse(line) as StreamMessage;
    if (message.type === 'hello') {
      this.#failures = 0;
      this.#previousDelay = 0;
      this.#watchdogMs = Math.max(1, message.heartbeatMs) * this.#missedHeartbeats;
      this.#armWatchdog(req);
      this.#options.onEvent?.({ type: 'connected', version: message.version });
    } else if (message.type === 'snapshot') {
      const verdict = (this.#sink as ConfigSink).deliver({ version: String(message.version), raw: message.config });
      this.#options.onEvent?.({ type: 'verdict', verdict });
      this.#ack(verdict);
    }
  }

  #ack(verdict: SourceVerdict): void {
    const report: AckReport = {
      client: this.clientId,
      version: verdict.version,
      applied: verdict.applied,
      ...(verdict.applied ? {} : { problems: verdict.problems }),
    };
    // A lost ACK is healed on the next connect: the stream request names the version in force.
    const fail = (reason: string): void => this.#options.onEvent?.({ type: 'ack-failed', version: verdict.version, reason });
    const req = this.#send('POST', ACK_PATH, {}, JSON.stringify(report));
    req.on('error', (error) => fail(error.message));
    req.on('response', (res) => {
      if (res.statusCode !== 204 && res.statusCode !== 200) fail(`HTTP ${res.statusCode}`);
      res.resume();
    });
  }

  #armWatchdog(req: ClientRequest): void {
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#watchdog = this.#clock.setTimer(() => {
      this.#watchdog = undefined;
      if (req === this.#stream) req.destroy(new Error('missed heartbeats'));
    }, this.#watchdogMs);
  }

  #lost(req: ClientRequest, reason: string): void {
    if (req !== this.#stream) return;
    this.#stream = undefined;
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#closed) return;
    this.#failures++;
    const delay = backoffDelay(this.#backoff, this.#failures, this.#previousDelay, this.#random);
    this.#previousDelay = delay;
    this.#options.onEvent?.({ type: 'disconnected', reason, retryInMs: delay });
    this.#reconnectTimer = this.#clock.setTimer(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) this.#clock.clearTimer(this.#reconnectTimer);
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#reconnectTimer = this.#watchdog = undefined;
    // Requests leave the set on 'close', so each one here has yet to emit it.
    const closing = [...this.#requests].map(
      (req) =>
        new Promise<void>((resolve) => {
          req.once('close', () => resolve());
          req.destroy();
        }),
    );
    this.#stream = undefined;
    await Promise.all(closing);
  }
}
