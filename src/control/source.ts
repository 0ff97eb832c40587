/**
 * Config sources: where documents come from (a static object, a watched file, the control
 * server's stream, etcd). A source delivers raw documents — text or parsed data — each with a
 * version; the consumer (a {@link MeshStore} in an application, the control server in the
 * control plane) validates and answers with a verdict, which the HTTP source reports back to
 * the server as ACK or NACK.
 *
 * @module
 */

import { createHash } from 'node:crypto';
import type { OptionProblem } from '../core/errors.js';

/** One document from a source: raw text or data, or the problems that kept it from being read. */
export type SourceUpdate =
  | { readonly version: string; readonly raw: unknown }
  | { readonly version: string; readonly problems: readonly OptionProblem[] };

/** What the consumer did with an update: ACK or NACK with every problem. */
export type SourceVerdict =
  | { readonly applied: true; readonly version: string }
  | { readonly applied: false; readonly version: string; readonly problems: readonly OptionProblem[] };

/** Where a source delivers updates. */
export interface ConfigSink {
  /** Validates and applies an update, or rejects it; the last good one stays in force. */
  deliver(update: SourceUpdate): SourceVerdict;
  /** Version in force, for resuming a stream. */
  readonly version: string;
}

/** A stream of config documents. */
export interface ConfigSource {
  /** For logs and `/config`: `file:/etc/mesh.yaml`, `http://control:7070`, ... */
  readonly name: string;
  /** Starts delivering to `sink`. Called once. */
  start(sink: ConfigSink): void;
  /** Stops: no timers, sockets or watchers are left behind once it resolves. */
  close(): Promise<void>;
}

/** A version naming content: the same document always gets the same version, across restarts. */
export function contentVersion(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 16);
}

/** A source that delivers one document once: a config written in code, or tests. */
export function staticSource(document: unknown, version?: string): ConfigSource {
  const v = version ?? contentVersion(typeof document === 'string' ? document : (JSON.stringify(document) ?? ''));
  return {
    name: 'static',
    start: (sink) => {
      sink.deliver({ version: v, raw: document });
    },
    close: async () => {},
  };
}
