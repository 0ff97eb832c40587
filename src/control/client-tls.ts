/**
 * What the control server checks of TLS clients: that a client CA is given as something Node
 * will not read as "trust every public root", and who a client's certificate says it is.
 *
 * @module
 */

import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { InvalidOptionError } from '../core/errors.js';

/** The certificate a client presented: its subject (RFC 4514) and SHA-256 fingerprint. */
export interface PeerCertificate {
  subject: string;
  fingerprint256: string;
}

const isPem = (value: unknown): value is string | Buffer =>
  (typeof value === 'string' && value.trim() !== '') || (Buffer.isBuffer(value) && value.length > 0);

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
  const ok = Array.isArray(clientCa) ? clientCa.length > 0 && clientCa.every(isPem) : isPem(clientCa);
  if (!ok) {
    throw new InvalidOptionError(
      'tls.clientCa',
      'must be the PEM of the CA certificates that sign clients: a non-empty string or Buffer, or a non-empty array of them (an empty one would trust every public root CA)',
    );
  }
}
