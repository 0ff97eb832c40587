/**
 * What the control server knows of each client (`GET /clients`): its streams, the version it
 * applied or rejected, and where its latest recorded report stands in its own order (see
 * {@link ReportStamp}), so that a report the client gave up on and sent again cannot overwrite a
 * newer one when its first copy arrives late.
 *
 * @module
 */

import type { Clock } from '../core/clock.js';
import type { OptionProblem } from '../core/errors.js';
import type { PeerCertificate } from './client-tls.js';
import { type AckReport, MAX_REPORTED_PROBLEMS, type ReportStamp } from './protocol.js';

/** What the server knows of one client. */
export interface ClientState {
  id: string;
  address: string;
  connected: boolean;
  /** Streams open now (a client reconnecting may briefly hold two). */
  streams: number;
  appliedVersion: string | undefined;
  /** The version the client rejected since it last applied one, with its problems. */
  rejectedVersion: string | undefined;
  problems: readonly OptionProblem[] | undefined;
  lastSeen: number;
  /**
   * The certificate the client presented on its latest stream (mTLS): the `client` id is what it
   * calls itself, the certificate's subject is what the client CA vouches for.
   */
  certificate: PeerCertificate | undefined;
}

// Past this many, a disconnected client is forgotten to make room: ids are the client's to pick.
const MAX_CLIENTS = 10_000;

/** What the registry keeps of one client. */
export interface Entry {
  readonly state: ClientState;
  /** The newest stamp recorded; undefined until a stamped request arrives. */
  stamp: ReportStamp | undefined;
  /** Streams open now by the session that opened them (several replicas may share one id). */
  readonly liveSessions: Map<string, number>;
}

/** A stream {@link ClientRegistry.streamOpened} recorded, to hand back to {@link ClientRegistry.streamClosed}. */
export interface OpenStream {
  readonly entry: Entry;
  readonly session: string | undefined;
}

/** The clients seen, by id. */
export class ClientRegistry {
  readonly #clock: Clock;
  readonly #clients = new Map<string, Entry>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Every client, copied. */
  list(): ClientState[] {
    return [...this.#clients.values()].map((entry) => ({ ...entry.state }));
  }

  /**
   * Records a stream opened by client `id`, naming the version in force there (which heals a lost
   * ACK); returns what to hand to {@link ClientRegistry.streamClosed}.
   */
  streamOpened(
    id: string,
    address: string,
    certificate: PeerCertificate | undefined,
    version: string | null,
    stamp: ReportStamp | undefined,
  ): OpenStream {
    const entry = this.#entry(id, address);
    const state = entry.state;
    state.certificate = certificate;
    const restarted = stamp !== undefined && entry.stamp !== undefined && entry.stamp.session !== stamp.session;
    // The stream is served either way; only its version may be older than what was recorded.
    if (this.#advance(entry, stamp, true)) {
      // A new session is a restarted client: what its previous run applied or refused is history.
      if (restarted) {
        state.appliedVersion = undefined;
        state.rejectedVersion = undefined;
        state.problems = undefined;
      }
      if (version && version !== state.appliedVersion) {
        state.appliedVersion = version;
        // The client runs a version past the one it refused (its ACK was lost with its stream).
        state.rejectedVersion = undefined;
        state.problems = undefined;
      }
    }
    if (stamp !== undefined) entry.liveSessions.set(stamp.session, (entry.liveSessions.get(stamp.session) ?? 0) + 1);
    state.streams++;
    state.connected = true;
    return { entry, session: stamp?.session };
  }

  /** Records the end of a stream {@link ClientRegistry.streamOpened} recorded. */
  streamClosed(stream: OpenStream): void {
    const { entry, session } = stream;
    const state = entry.state;
    if (session !== undefined) {
      const open = (entry.liveSessions.get(session) ?? 1) - 1;
      if (open > 0) entry.liveSessions.set(session, open);
      else entry.liveSessions.delete(session);
    }
    state.streams--;
    state.connected = state.streams > 0;
    state.lastSeen = this.#clock.wallTime();
  }

  /** Records an ACK or NACK; returns the client's state, or `undefined` when the report is older than one recorded, and ignored. */
  report(report: AckReport, stamp: ReportStamp | undefined, address: string): Readonly<ClientState> | undefined {
    // A stale report is looked at, not recorded: it creates no client and evicts none.
    const known = this.#clients.get(report.client);
    if (known !== undefined ? !this.#advance(known, stamp, false) : stamp !== undefined) return undefined;
    const entry = this.#entry(report.client, address);
    const state = entry.state;
    if (report.applied === true) {
      state.appliedVersion = report.version;
      // As an xDS ACK clears the error detail: the client has moved past what it refused.
      state.rejectedVersion = undefined;
      state.problems = undefined;
    } else {
      state.rejectedVersion = report.version;
      state.problems = Array.isArray(report.problems) ? report.problems.slice(0, MAX_REPORTED_PROBLEMS) : [];
    }
    return state;
  }

  /**
   * Whether a request stamped `stamp` is newer than everything recorded of its client, recording
   * its stamp if so. Unstamped (a client older than the stamp) is taken as newer: the order of
   * arrival is all there is to go by. Another session is a restarted client (or a replica sharing
   * the id) and starts over — by opening a stream: a report of another session counts only while
   * that session has a stream open here, since a client drops its reports with its stream, so a
   * report of a previous run arriving late (held by a gateway past the restart) is ignored.
   */
  #advance(entry: Entry, stamp: ReportStamp | undefined, opensStream: boolean): boolean {
    if (stamp === undefined) return true;
    const last = entry.stamp;
    if (last !== undefined && last.session === stamp.session) {
      if (stamp.seq <= last.seq) return false;
    } else if (!opensStream && !entry.liveSessions.has(stamp.session)) return false;
    entry.stamp = stamp;
    return true;
  }

  #entry(id: string, address: string): Entry {
    let entry = this.#clients.get(id);
    if (entry === undefined) {
      if (this.#clients.size >= MAX_CLIENTS) this.#forgetOneDisconnected();
      const state: ClientState = {
        id,
        address,
        connected: false,
        streams: 0,
        appliedVersion: undefined,
        rejectedVersion: undefined,
        problems: undefined,
        lastSeen: 0,
        certificate: undefined,
      };
      entry = { state, stamp: undefined, liveSessions: new Map() };
      this.#clients.set(id, entry);
    }
    entry.state.lastSeen = this.#clock.wallTime();
    return entry;
  }

  #forgetOneDisconnected(): void {
    for (const [id, entry] of this.#clients) {
      if (!entry.state.connected) {
        this.#clients.delete(id);
        return;
      }
    }
  }
}
