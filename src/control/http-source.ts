/**
 * The control server's stream as a config source: one long-lived GET of newline-delimited
 * JSON (see {@link STREAM_PATH}). Each snapshot is validated by the sink and acknowledged back
 * to the server (ACK, or NACK with every problem; see `http-source-ack.ts`). A snapshot line the
 * client cannot read (longer than its limit, or not JSON) is NACKed and skipped, and the stream
 * goes on. A stream that brings no byte for three heartbeat intervals is taken as dead; any end
 * of the stream is followed by a reconnect after a jittered exponential backoff, resuming from
 * the version in force so an unchanged config is not resent. While disconnected, the process
 * keeps serving with the snapshot it has.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type Clock, systemClock } from '../core/clock.js';
import { type BackoffParams, backoffDelay, resolveBackoff } from '../layers/retry/backoff.js';
import { type AckFailed, AckReporter } from './http-source-ack.js';
import { checkOptions, defaultClientId, snapshotVersionOf } from './http-source-input.js';
import { ACK_PATH, MAX_REPORTED_PROBLEMS, type ReportStamp, STREAM_PATH, type StreamLine, StreamLines } from './protocol.js';
import type { ConfigSink, ConfigSource, SourceUpdate, SourceVerdict } from './source.js';

/** What the source reports, for logs and tests. */
export type HttpSourceEvent =
  | { type: 'connected'; version: string }
  | { type: 'disconnected'; reason: string; retryInMs: number }
  | { type: 'verdict'; verdict: SourceVerdict }
  /**
   * An ACK or NACK the server did not take; sent again after `retryInMs` (the backoff's, or a
   * 429's or 503's `Retry-After` within `reconnect`), unless absent: refused for good (a 4xx), or
   * given up with the stream it answered, whose reconnect heals the server's view.
   */
  | AckFailed;

/** Options of {@link httpSource}. */
export interface HttpSourceOptions {
  /**
   * Base URL of the control server, e.g. `http://127.0.0.1:7070`; a path is kept, so
   * `http://gw/mesh-control` streams from `http://gw/mesh-control/v1/stream`.
   */
  url: string;
  /**
   * Bearer token, visible ASCII; may be left out when the server knows clients by their
   * certificates (mTLS).
   */
  token?: string;
  /**
   * TLS for an `https://` server (refused with an `http://` url): `ca` to trust a server
   * certificate of a private CA, and `cert` and `key` (PEM) to present a client certificate for
   * mTLS. Each is read at construction: one OpenSSL cannot read is refused naming it.
   */
  tls?: { ca?: string | Buffer | readonly (string | Buffer)[]; cert?: string | Buffer; key?: string | Buffer };
  /** This process's name at the server: 1 to 200 of `A-Z a-z 0-9 _ . : @ -`. Default `<hostname>-<pid>-<random>`. */
  clientId?: string;
  /**
   * Reconnect backoff, also used between retries of an ACK: exponential from `base` to `max` with
   * equal jitter, each 1 ms to 1 hour. Default 100 ms to 10 s.
   */
  reconnect?: { base?: number; max?: number };
  /** Missed heartbeats after which the stream is taken as dead, 1 to 100. Default 3. */
  missedHeartbeats?: number;
  /**
   * Longest line accepted, 1 KiB to 1 GiB; a longer snapshot is NACKed. Default twice the
   * default document limit.
   */
  maxLineBytes?: number;
  clock?: Clock;
  random?: () => number;
  /** Called on connection changes, verdicts and failed ACKs; what it throws becomes a process warning. */
  onEvent?: (event: HttpSourceEvent) => void;
}

/** The control server's stream at `options.url` as a {@link ConfigSource}. */
export function httpSource(options: HttpSourceOptions): ConfigSource & { readonly clientId: string } {
  return new HttpSource(options);
}

const FIRST_LINE_MS = 10_000;
const MAX_HEARTBEAT_MS = 3_600_000;

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
  #closed = false;
  readonly #acks: AckReporter;
  // This instance among the client's, and the count of its stream requests and reports: the
  // server records them only in this order (see ReportStamp).
  readonly #session = randomBytes(12).toString('base64url');
  #seq = 0;
  // The stream.
  #stream: ClientRequest | undefined;
  #helloSeen = false;
  #reconnectTimer: unknown;
  #watchdog: unknown;
  #watchdogMs = FIRST_LINE_MS;
  #lastData = 0;
  #failures = 0;
  #previousDelay = 0;

  constructor(options: HttpSourceOptions) {
    const { missedHeartbeats, maxLineBytes, reconnect, base } = checkOptions(options);
    this.#base = base;
    this.#options = options;
    this.name = `http:${base.origin}${base.pathname.replace(/\/$/, '')}`;
    this.clientId = options.clientId ?? defaultClientId();
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#backoff = resolveBackoff({ base: reconnect.base, max: reconnect.max, jitter: 'equal' }, 'reconnect');
    this.#missedHeartbeats = missedHeartbeats;
    this.#maxLineBytes = maxLineBytes;
    this.#acks = new AckReporter({
      send: (body) => this.#send('POST', ACK_PATH, {}, body),
      clock: this.#clock,
      backoff: this.#backoff,
      random: this.#random,
      emit: (event) => this.#emit(event),
    });
  }

  start(sink: ConfigSink): void {
    this.#sink = sink;
    this.#connect();
  }

  #send(method: string, path: string, query: Record<string, string>, body?: string): ClientRequest {
    // Relative to the base (which ends in '/'), so a base path such as `/mesh-control/` is kept.
    const url = new URL(path.replace(/^\//, ''), this.#base);
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
    const { session, seq } = this.#stamp();
    const req = this.#send('GET', STREAM_PATH, { client: this.clientId, version: sink.version, session, seq: String(seq) });
    this.#stream = req;
    this.#helloSeen = false;
    this.#watchdogMs = FIRST_LINE_MS;
    this.#lastData = this.#clock.now();
    this.#armWatchdog(req, FIRST_LINE_MS);
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
      const lines = new StreamLines(this.#maxLineBytes);
      res.on('data', (chunk: Buffer) => {
        // Any byte is a sign of life once the hello came (heartbeats queue behind a long line that
        // takes a while to arrive); before it, only the hello line counts, so a server dribbling
        // bytes without one is still dropped after the first-line limit.
        if (this.#helloSeen) this.#lastData = this.#clock.now();
        for (const line of lines.push(chunk)) {
          if (ended || req !== this.#stream || this.#closed) return;
          let broken: string | undefined;
          try {
            broken = this.#onLine(req, line);
          } catch (error) {
            broken = (error as Error).message;
          }
          if (broken !== undefined) return end(broken);
        }
      });
      res.on('end', () => end('stream ended'));
      res.on('error', (error) => end(error.message));
    });
  }

  /** Handles one line; returns why the stream must be dropped, if it must. */
  #onLine(req: ClientRequest, line: StreamLine): string | undefined {
    // A snapshot line that cannot be read whole is NACKed and skipped: the stream after it is
    // still good, and dropping it would only fetch the same line again on the reconnect.
    if ('overlong' in line) {
      const version = snapshotVersionOf(line.head);
      if (version === undefined) return `stream line longer than ${this.#maxLineBytes} bytes`;
      const message = `is on a stream line longer than the client takes (maxLineBytes ${this.#maxLineBytes} bytes)`;
      this.#deliver({ version, problems: [{ field: '(document)', message }] });
      return undefined;
    }
    if (line.text.trim() === '') return undefined;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line.text);
    } catch (error) {
      const version = snapshotVersionOf(line.text);
      if (version === undefined) return `stream line is not JSON: ${(error as Error).message}`;
      this.#deliver({
        version,
        problems: [{ field: '(document)', message: `is on a stream line that is not valid JSON: ${(error as Error).message}` }],
      });
      return undefined;
    }
    if (typeof message !== 'object' || message === null) return 'stream line is not a JSON object';
    if (message.type === 'hello') {
      const heartbeatMs = message.heartbeatMs;
      if (typeof heartbeatMs !== 'number' || !(heartbeatMs >= 1 && heartbeatMs <= MAX_HEARTBEAT_MS)) {
        return `hello has no heartbeatMs from 1 to ${MAX_HEARTBEAT_MS}`;
      }
      this.#helloSeen = true;
      this.#lastData = this.#clock.now();
      this.#watchdogMs = heartbeatMs * this.#missedHeartbeats;
      this.#armWatchdog(req, this.#watchdogMs);
      this.#acks.resetBackoff();
      this.#emit({ type: 'connected', version: String(message.version ?? '') });
    } else if (message.type === 'snapshot') {
      const version = message.version;
      if (typeof version !== 'string' && typeof version !== 'number') return 'snapshot has no version';
      this.#deliver({ version: String(version), raw: message.config });
    } else if (message.type === 'heartbeat' && this.#helloSeen) {
      // The backoff starts over only once the stream has proven it works, not when it opens:
      // Envoy's gRPC stream and grpc-go's xDS client reset it on the first response received,
      // not on the stream starting. The hello is sent unconditionally, like response headers,
      // with the snapshot owed right behind it, so the proof here is the first heartbeat after
      // the hello: by then that snapshot was read and ACKed or NACKed, and the stream outlived
      // its first burst. A stream cut before (a line the client cannot take, a proxy's limit)
      // keeps growing the backoff instead of reconnecting at `base` forever, fetching the
      // snapshot each time.
      this.#failures = 0;
      this.#previousDelay = 0;
    }
    return undefined;
  }

  #deliver(update: SourceUpdate): void {
    const verdict = (this.#sink as ConfigSink).deliver(update);
    this.#emit({ type: 'verdict', verdict });
    this.#acks.report({
      client: this.clientId,
      version: verdict.version,
      applied: verdict.applied,
      ...(verdict.applied ? {} : { problems: verdict.problems.slice(0, MAX_REPORTED_PROBLEMS) }),
      ...this.#stamp(),
    });
  }

  #stamp(): ReportStamp {
    return { session: this.#session, seq: ++this.#seq };
  }

  /** Tells `onEvent`; what it throws is a warning, never an exception out of a socket listener. */
  #emit(event: HttpSourceEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      process.emitWarning(
        `sidecarless: ${this.name} onEvent threw on ${event.type}: ${String((error as Error)?.message ?? error)}`,
        'SidecarlessListenerWarning',
      );
    }
  }

  /**
   * Drops the stream after `ms` unless bytes came meanwhile: then it waits again for what is left
   * of `#watchdogMs` since the last of them (re-arming on each chunk would churn a timer per chunk).
   */
  #armWatchdog(req: ClientRequest, ms: number): void {
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#watchdog = this.#clock.setTimer(() => {
      this.#watchdog = undefined;
      if (req !== this.#stream) return;
      const quiet = this.#clock.now() - this.#lastData;
      if (quiet < this.#watchdogMs) this.#armWatchdog(req, this.#watchdogMs - quiet);
      else req.destroy(new Error('missed heartbeats'));
    }, ms);
  }

  #lost(req: ClientRequest, reason: string): void {
    if (req !== this.#stream) return;
    this.#stream = undefined;
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#closed) return;
    this.#acks.drop();
    this.#failures++;
    const delay = backoffDelay(this.#backoff, this.#failures, this.#previousDelay, this.#random);
    this.#previousDelay = delay;
    this.#reconnectTimer = this.#clock.setTimer(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
    this.#emit({ type: 'disconnected', reason, retryInMs: delay });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#acks.close();
    for (const timer of [this.#reconnectTimer, this.#watchdog]) {
      if (timer !== undefined) this.#clock.clearTimer(timer);
    }
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
