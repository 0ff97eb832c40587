/**
 * The mesh config store: a {@link ConfigStore} of {@link MeshConfig} with the mesh validator,
 * persistence of the last good snapshot, a readiness latch, and attached sources.
 *
 * Startup order, as the design says: the builder defaults (`initial`), then the last good
 * snapshot persisted on disk, then whatever the sources deliver. So a process restarted while
 * the control server is down serves with the config it last had, not with bare defaults.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { ConfigStore, type Snapshot } from '../core/config-store.js';
import type { OptionProblem } from '../core/errors.js';
import type { Latch, Readiness } from '../layers/readiness/index.js';
import { type DocumentLimits, meshValidator } from './document.js';
import type { MeshConfig } from './schema.js';
import type { ConfigSink, ConfigSource, SourceUpdate, SourceVerdict } from './source.js';

/** Options of {@link createMeshStore}. */
export interface MeshStoreOptions {
  /** The config before any snapshot: the builder defaults. Default no services. */
  initial?: MeshConfig;
  /** File where the last good snapshot is kept (written atomically) and read at start. */
  persistPath?: string;
  /** A readiness to hold until the first valid snapshot (latch `mesh-config`). */
  readiness?: Readiness;
  /** Whether a persisted snapshot releases the latch (`any`, default) or only a source's (`source`). */
  latchOn?: 'any' | 'source';
  /** Size and nesting limits of incoming documents. */
  limits?: DocumentLimits;
  /** Sources to start once the persisted snapshot is loaded. */
  sources?: readonly ConfigSource[];
}

/** What is kept on disk. */
interface Persisted {
  version: string;
  savedAt: number;
  config: unknown;
}

// A source that could not even read its document still gets a rejection recorded in the store,
// so the admin endpoint shows it; this marker carries its problems through `swap`.
class Unreadable {
  constructor(readonly problems: readonly OptionProblem[]) {}
}

/** A config store for the mesh document; see the module doc. Create with {@link createMeshStore}. */
export class MeshStore extends ConfigStore<MeshConfig> implements ConfigSink {
  readonly #persistPath: string | undefined;
  readonly #latch: Latch | undefined;
  readonly #latchOn: 'any' | 'source';
  readonly #sources: ConfigSource[] = [];
  #writing: Promise<void> = Promise.resolve();
  #pendingWrite: Snapshot<MeshConfig> | undefined;
  #unsubscribe: () => void;
  #closed = false;

  /** @internal use {@link createMeshStore}, which also loads the persisted snapshot. */
  constructor(options: MeshStoreOptions = {}) {
    const validate = meshValidator(options.limits);
    super({
      initial: Object.freeze(options.initial ?? { services: {} }) as MeshConfig,
      validate: (raw) => (raw instanceof Unreadable ? { ok: false, problems: [...raw.problems] } : validate(raw)),
    });
    this.#persistPath = options.persistPath;
    this.#latch = options.readiness?.latch('mesh-config');
    this.#latchOn = options.latchOn ?? 'any';
    this.#unsubscribe = () => {};
  }

  /** The readiness latch held until the first valid snapshot, if a readiness was given. */
  get latch(): Latch | undefined {
    return this.#latch;
  }

  /** Version in force. */
  get version(): string {
    return this.current.version;
  }

  /** The sources attached. */
  get sources(): readonly ConfigSource[] {
    return this.#sources;
  }

  /** Validates and applies a source's update (see {@link ConfigSink}); the same version twice is a no-op ACK. */
  deliver(update: SourceUpdate): SourceVerdict {
    if (this.#closed) return { applied: false, version: update.version, problems: [{ field: '(store)', message: 'is closed' }] };
    if ('raw' in update && update.version === this.current.version) {
      this.#latch?.release();
      return { applied: true, version: update.version };
    }
    const result = this.swap('raw' in update ? update.raw : new Unreadable(update.problems), update.version);
    if (!result.applied) return { applied: false, version: update.version, problems: result.rejection.problems };
    this.#latch?.release();
    return { applied: true, version: update.version };
  }

  /** Starts a source delivering to this store; it is closed with the store. */
  attach(source: ConfigSource): this {
    if (this.#closed) throw new Error('mesh store is closed');
    this.#sources.push(source);
    source.start(this);
    return this;
  }

  /** @internal loads the persisted snapshot, then starts persisting applied ones. */
  async load(): Promise<void> {
    if (this.#persistPath !== undefined) {
      const persisted = await readPersisted(this.#persistPath);
      if (persisted !== undefined) {
        const result = this.swap(persisted.config, persisted.version);
        if (!result.applied) {
          const why = result.rejection.problems.map((p) => `${p.field}: ${p.message}`).join('; ');
          process.emitWarning(`sidecarless: ignoring persisted config ${this.#persistPath}: ${why}`, 'SidecarlessConfigWarning');
        } else if (this.#latchOn === 'any') this.#latch?.release();
      }
    }
    this.#unsubscribe = this.subscribe((snapshot) => this.#persist(snapshot));
  }

  #persist(snapshot: Snapshot<MeshConfig>): void {
    const path = this.#persistPath;
    if (path === undefined) return;
    // Writes are serialised and coalesced: only the newest snapshot waiting is written.
    const idle = this.#pendingWrite === undefined;
    this.#pendingWrite = snapshot;
    if (!idle) return;
    this.#writing = this.#writing.then(async () => {
      const latest = this.#pendingWrite as Snapshot<MeshConfig>;
      this.#pendingWrite = undefined;
      try {
        await writeAtomic(path, JSON.stringify({ version: latest.version, savedAt: latest.appliedAt, config: latest.value }));
      } catch (error) {
        process.emitWarning(`sidecarless: cannot persist config to ${path}: ${String(error)}`, 'SidecarlessConfigWarning');
      }
    });
  }

  /** Resolves once every applied snapshot so far is on disk. */
  async flush(): Promise<void> {
    while (this.#pendingWrite !== undefined) await this.#writing;
    await this.#writing;
  }

  /** Closes the sources and finishes persisting; the store keeps its last snapshot. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#sources.map((s) => s.close()));
    this.#unsubscribe();
    await this.flush();
  }
}

async function readPersisted(path: string): Promise<Persisted | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const data = JSON.parse(text) as Persisted;
    if (typeof data?.version === 'string' && data.config !== undefined) return data;
  } catch {
    // fall through: a torn or foreign file is ignored, never fatal
  }
  process.emitWarning(`sidecarless: ignoring unreadable persisted config ${path}`, 'SidecarlessConfigWarning');
  return undefined;
}

/** Writes `text` to `path` so a reader sees the old file or the new one, never half of one. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Creates a {@link MeshStore}: builder defaults, then the persisted snapshot (if
 * `persistPath` holds a valid one), then the given sources, started in order.
 */
export async function createMeshStore(options: MeshStoreOptions = {}): Promise<MeshStore> {
  const store = new MeshStore(options);
  await store.load();
  for (const source of options.sources ?? []) store.attach(source);
  return store;
}
