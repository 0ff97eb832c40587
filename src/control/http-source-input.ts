/**
 * What the HTTP source takes in, checked: its options (every problem named, none echoing a
 * password or a token), and the stream's bytes as lines. A line longer than the limit is
 * reported once with its first bytes and the rest of it skipped, so the stream can go on (and
 * the snapshot on it be NACKed) instead of being dropped and downloaded again on each reconnect.
 *
 * @module
 */

import { hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { InvalidOptionError, type OptionProblem } from '../core/errors.js';
import { duration, int, problemsOf } from '../core/validate.js';
import { caProblems, openssl } from './client-tls.js';
import { DEFAULT_MAX_BYTES } from './document.js';
import { CLIENT_ID, CLIENT_ID_RULE, NOT_IN_CLIENT_ID } from './protocol.js';

const URL_RULE = "must be the control server's http:// or https:// url, such as http://control:7070";

const pem = z.union([z.string(), z.instanceof(Buffer)], { error: 'must be PEM text, as a string or Buffer' });
const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { error: 'must be a function' });
// Strict, so a misspelt option is refused rather than ignored. Zero missed heartbeats, a zero
// backoff or a line limit shorter than the hello line would each make the source reconnect in a
// tight loop. `url` and `token` are checked by hand below: their problems must not echo a
// password or a token into logs.
const optionsSchema = z.strictObject({
  url: z.unknown().optional(),
  token: z.unknown().optional(),
  tls: z
    .strictObject({
      ca: z.union([pem, z.array(pem)], { error: 'must be PEM text, as a string or Buffer, or an array of them' }).optional(),
      cert: pem.optional(),
      key: pem.optional(),
    })
    .optional(),
  clientId: z.string({ error: CLIENT_ID_RULE }).regex(CLIENT_ID, { error: CLIENT_ID_RULE }).optional(),
  reconnect: z
    .strictObject({ base: duration(1, 3_600_000).default(100), max: duration(1, 3_600_000).default(10_000) })
    .default({ base: 100, max: 10_000 }),
  missedHeartbeats: int(1, 100).default(3),
  maxLineBytes: int(1024, 1_073_741_824).default(DEFAULT_MAX_BYTES * 2),
  clock: z
    .custom<Clock>((v) => typeof (v as Clock)?.setTimer === 'function' && typeof (v as Clock).clearTimer === 'function', {
      error: 'must be a Clock (with setTimer and clearTimer)',
    })
    .optional(),
  random: fn.optional(),
  onEvent: fn.optional(),
});

/** The base URL, ending in '/' so that the protocol's paths resolve below its path. */
function checkUrl(value: unknown, problems: OptionProblem[]): URL | undefined {
  const refuse = (message: string): undefined => void problems.push({ field: 'url', message });
  if (typeof value !== 'string') return refuse(`${URL_RULE} (got ${value === undefined ? 'nothing' : `a ${typeof value}`})`);
  // An unparsable url may still hold a password: it is echoed only when it has no '@'.
  const got = value.includes('@') ? '' : ` (got ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)})`;
  if (!URL.canParse(value)) return refuse(`${URL_RULE}${got}`);
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse(`${URL_RULE}${got}`);
  if (url.username !== '' || url.password !== '') return refuse('must not hold a user name or password: give the bearer token as token');
  // Resolving the stream's path against the base would drop them silently.
  if (url.search !== '' || url.hash !== '') return refuse(`must not have a query or fragment${got}`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** What is wrong with the token, if anything. */
function tokenProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return `must be a string (got a ${typeof value})`;
  if (value === '') return 'must not be empty: leave it out when the server knows clients by their certificates';
  // Visible ASCII only: a trailing newline from a file or an environment variable would
  // otherwise make every request throw, or send a token the server never matches. Where the bad
  // character is, not what the token is, goes in the message.
  const chars = [...value];
  const bad = chars.findIndex((c) => c < '!' || c > '~');
  if (bad === -1) return undefined;
  const code = (chars[bad] as string).codePointAt(0)?.toString(16).toUpperCase().padStart(4, '0');
  return `must be visible ASCII, with no spaces or control characters (found U+${code} at character ${bad + 1} of ${chars.length})`;
}

// Its type is the schema's to check; the text is read below.
const isPem = (value: unknown): value is string | Buffer => typeof value === 'string' || Buffer.isBuffer(value);

/**
 * Reads the TLS material as the first request would, so that a bad one is refused here, naming
 * its field, and not on each connect as a handshake error that names none. A `ca` with no
 * certificate in it is refused too: Node would trust no server at all, or, empty, every public root.
 */
function checkTls(tls: { ca?: unknown; cert?: unknown; key?: unknown }, problems: OptionProblem[]): void {
  // A value of the wrong type is the schema's to refuse (once): the text of the rest is read here.
  const typed = isPem(tls.ca) || (Array.isArray(tls.ca) && tls.ca.every(isPem));
  if (typed) problems.push(...caProblems('tls.ca', tls.ca, 'the CA certificates to trust'));
  const { cert, key } = tls;
  if (cert === undefined && key === undefined) return;
  if (cert === undefined || key === undefined) {
    const [missing, given] = cert === undefined ? ['tls.cert', 'tls.key'] : ['tls.key', 'tls.cert'];
    problems.push({ field: missing, message: `is required with ${given}: the client certificate and its private key go together` });
  }
  const read = (field: string, message: string, options: { cert?: string | Buffer; key?: string | Buffer }): boolean => {
    try {
      createSecureContext(options);
      return true;
    } catch (error) {
      problems.push({ field, message: `${message} (${openssl(error)})` });
      return false;
    }
  };
  const certOk = isPem(cert) && read('tls.cert', 'must be the PEM of the client certificate', { cert });
  const keyOk = isPem(key) && read('tls.key', "must be the PEM of the client certificate's private key", { key });
  if (certOk && keyOk) read('tls.key', 'does not match tls.cert', { cert, key });
}

/** Checks every option, throwing one {@link InvalidOptionError} with every problem. */
export function checkOptions(options: unknown) {
  const result = optionsSchema.safeParse(options);
  const problems = result.success ? [] : problemsOf(result.error, options, '');
  const given = (options ?? {}) as { url?: unknown; token?: unknown; tls?: unknown };
  const base = checkUrl(given.url, problems);
  const token = tokenProblem(given.token);
  if (token !== undefined) problems.push({ field: 'token', message: token });
  if (given.tls !== undefined && base?.protocol === 'http:') {
    problems.push({ field: 'tls', message: `is for an https:// url (got ${base.protocol}//)` });
  } else if (typeof given.tls === 'object' && given.tls !== null) checkTls(given.tls, problems);
  if (!result.success || base === undefined || problems.length > 0) throw new InvalidOptionError(problems);
  return { ...result.data, base };
}

/** `<hostname>-<pid>-<random>`, with anything the server would refuse in a hostname replaced. */
export function defaultClientId(): string {
  const host = hostname().replace(NOT_IN_CLIENT_ID, '-').slice(0, 180) || 'host';
  return `${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

// The control server writes `type` then `version` first; a line that does not start so is not
// taken for a snapshot (its version could not be told from a `version` key inside the config).
const SNAPSHOT_HEAD = /^\s*\{\s*"type"\s*:\s*"snapshot"\s*,\s*"version"\s*:\s*("(?:[^"\\]|\\.)*"|\d+)\s*[,}]/;

/**
 * The version of a snapshot line that could not be read whole (too long, or not JSON), from its
 * head; `undefined` when the head is not that of a snapshot.
 */
export function snapshotVersionOf(head: string): string | undefined {
  const match = SNAPSHOT_HEAD.exec(head);
  if (match === null) return undefined;
  try {
    return String(JSON.parse(match[1] as string));
  } catch {
    return undefined;
  }
}
