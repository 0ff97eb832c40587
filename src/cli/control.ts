/**
 * `sidecarless control --config mesh.yaml [--etcd URL] [--port 7070] [--token T]
 * [--tls-cert F --tls-key F [--client-ca F]]`: runs the reference control server. The token may
 * also come from `SIDECARLESS_TOKEN` (better: it stays out of `ps`); with `--client-ca` clients
 * prove themselves by certificate (mTLS) and the token is optional. Prints `listening on <url>`
 * once it serves; stops cleanly on SIGINT/SIGTERM.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { etcdSource } from '../control/etcd-source.js';
import { fileSource } from '../control/file-source.js';
import { ControlServer } from '../control/server.js';

interface ControlFlags {
  config?: string;
  etcd?: string;
  /** etcd key prefix; {@link DEFAULT_PREFIX} when not given. Refused with `config`. */
  prefix?: string;
  port: number;
  host: string;
  token?: string;
  heartbeat: number;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
}

const DEFAULT_PREFIX = '/sidecarless/mesh/';

/**
 * The endpoints of `--etcd`. An empty one ("", "a,", "a,,b") would be dialled as the target ""
 * and fail forever while the server runs, so it is refused before anything starts.
 */
function etcdHosts(value: string): string[] {
  const hosts = value.split(',').map((host) => host.trim());
  if (hosts.some((host) => host === ''))
    throw new Error(`--etcd: an endpoint is empty; give comma-separated endpoints such as 127.0.0.1:2379,127.0.0.1:22379 (got "${value}")`);
  return hosts;
}

/** Starts the server from CLI flags; resolves with it once listening. */
export async function startControl(flags: ControlFlags): Promise<ControlServer> {
  const token = flags.token ?? process.env.SIDECARLESS_TOKEN;
  if (!token && flags.clientCa === undefined)
    throw new Error('a bearer token is required (--token or SIDECARLESS_TOKEN), unless --client-ca is given');
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new Error('give both --tls-cert and --tls-key, or neither');
  if (flags.clientCa !== undefined && flags.tlsCert === undefined) throw new Error('--client-ca needs --tls-cert and --tls-key');
  const tls =
    flags.tlsCert === undefined
      ? undefined
      : {
          cert: readFileSync(flags.tlsCert),
          key: readFileSync(flags.tlsKey as string),
          ...(flags.clientCa === undefined ? {} : { clientCa: readFileSync(flags.clientCa) }),
        };
  if ((flags.config === undefined) === (flags.etcd === undefined)) throw new Error('give exactly one of --config <file> or --etcd <url>');
  // A file has no key prefix: taking --prefix and ignoring it would hide a mistaken command line.
  if (flags.config !== undefined && flags.prefix !== undefined)
    throw new Error('--prefix is for --etcd keys; it cannot be used with --config');
  const source =
    flags.etcd !== undefined
      ? etcdSource({
          hosts: etcdHosts(flags.etcd),
          prefix: flags.prefix ?? DEFAULT_PREFIX,
          onError: (e) => process.stderr.write(`control: etcd: ${e.message}\n`),
        })
      : fileSource(flags.config as string);
  const server = new ControlServer({
    source,
    ...(token ? { token } : {}),
    ...(tls === undefined ? {} : { tls }),
    port: flags.port,
    host: flags.host,
    heartbeatMs: flags.heartbeat,
  });
  const url = await server.listen();
  process.stdout.write(`listening on ${url} (source ${source.name})\n`);
  return server;
}

/** A parser of a whole-number flag in [min, max]; anything else is refused before the server starts. */
function integerFlag(min: number, max: number) {
  return (value: string): number => {
    const n = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** Registers `control`. */
export function register(program: Command): void {
  program
    .command('control')
    .description('run the reference control server: stream a watched mesh config (file or etcd) to clients')
    .option('--config <file>', 'mesh config file (YAML or JSON), watched')
    .option('--etcd <url>', 'etcd endpoints (comma-separated), watched under --prefix')
    // No commander default: startControl must tell a given --prefix from none to refuse it with --config.
    .option('--prefix <prefix>', `etcd key prefix, one key per service (default: "${DEFAULT_PREFIX}")`)
    .option('--port <port>', 'port to listen on, 0 to 65535 (0 picks one)', integerFlag(0, 65_535), 7070)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token <token>', 'bearer token clients must present (or SIDECARLESS_TOKEN)')
    .option('--heartbeat <ms>', 'heartbeat interval in milliseconds, 1 to 3600000', integerFlag(1, 3_600_000), 5000)
    .option('--tls-cert <file>', 'serve over TLS with this certificate (PEM)')
    .option('--tls-key <file>', "the TLS certificate's private key (PEM)")
    .option('--client-ca <file>', 'accept only clients presenting a certificate this CA signed (mTLS; PEM)')
    .action(async (flags: ControlFlags) => {
      const server = await startControl(flags);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
    });
}
