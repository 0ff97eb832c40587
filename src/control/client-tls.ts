/**
 * TLS checks of the control plane: that CA certificates (the server's client CA, the stream
 * client's server CA) are given as something Node will not read as "trust no one" or "trust every
 * public root", and who a client's certificate says it is.
 *
 * @module
 */

import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { InvalidOptionError, type OptionProblem } from '../core/errors.js';

/** The certificate a client presented: its subject (RFC 4514) and SHA-256 fingerprint. */
export interface PeerCertificate {
  subject: string;
  fingerprint256: string;
}

const isPem = (value: unknown): value is string | Buffer =>
  (typeof value === 'string' && value.trim() !== '') || (Buffer.isBuffer(value) && value.length > 0);

// OpenSSL's trusted form too (`BEGIN TRUSTED CERTIFICATE`, in some distributions' CA bundles): Node takes it.
const CERTIFICATE = /-----BEGIN (TRUSTED )?CERTIFICATE-----[\s\S]*?-----END \1CERTIFICATE-----/g;

/** What OpenSSL said, without its error code: "error:0480006C:PEM routines::no start line". */
export const openssl = (error: unknown): string =>
  `openssl: ${String((error as Error)?.message ?? error).replace(/^error:[0-9A-F]+:/, '')}`;

/**
 * The problems of CA certificates given as `field` (PEM text or a list of it), read as a handshake
 * would read them: Node takes text holding no certificate silently and then trusts no peer, or,
 * empty, every public root — so such a value is refused here, naming its field. The server's
 * client CA and the stream client's server CA are read by this one rule.
 */
export function caProblems(field: string, value: unknown, what: string): OptionProblem[] {
  const problems: OptionProblem[] = [];
  const given = Array.isArray(value) ? value.map((ca, i) => [`${field}.${i}`, ca] as const) : [[field, value] as const];
  if (Array.isArray(value) && value.length === 0)
    problems.push({ field, message: `must hold ${what} (an empty list trusts every public root)` });
  for (const [at, ca] of given) {
    if (!isPem(ca)) {
      problems.push({ field: at, message: `must be PEM text (a string or Buffer) holding ${what}` });
      continue;
    }
    const blocks = String(ca).match(CERTIFICATE) ?? [];
    if (blocks.length === 0) problems.push({ field: at, message: `must be PEM text holding ${what} (found no certificate)` });
    blocks.forEach((block, i) => {
      try {
        // X509Certificate reads the plain form only; the trusted one is read as a handshake would.
        if (block.startsWith('-----BEGIN TRUSTED')) createSecureContext({ ca: block });
        else new X509Certificate(block);
      } catch (error) {
        problems.push({ field: at, message: `certificate ${i + 1} is not a valid PEM certificate (${openssl(error)})` });
      }
    });
  }
  return problems;
}

/**
 * @internal a value of an RFC 4514 distinguished name, escaped: a CN holding ", O=..." cannot
 * pass for another attribute on the page that shows what the client CA vouches for.
 */
export function escapeDnValue(value: string): string {
  return value.replace(/[\\"+,;<>=]/g, (c) => `\\${c}`).replace(/^[ #]|[ ]$/g, (c) => `\\${c}`);
}

/** The subject and fingerprint of the certificate a TLS client presented, if any. */
export function peerCertificate(req: IncomingMessage): PeerCertificate | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (peer === undefined || peer.subject === undefined || !peer.fingerprint256) return undefined;
  const subject = Object.entries(peer.subject)
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${key}=${escapeDnValue(String(v))}`))
    .join(', ');
  return { subject, fingerprint256: peer.fingerprint256 };
}

/**
 * Checks `tls.clientCa` when given. Node's TLS context trusts the public root CAs when `ca` is
 * empty or falsy, so an empty value (an unset environment variable, say) would let in any client
 * whose certificate chains to a public root — with no token needed. It is refused instead.
 */
export function checkClientCa(clientCa: unknown): void {
  if (clientCa === undefined) return;
  const problems = caProblems('tls.clientCa', clientCa, 'the CA certificates that sign clients');
  if (problems.length > 0) throw new InvalidOptionError(problems);
}
