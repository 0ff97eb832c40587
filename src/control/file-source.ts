/**
 * A config file as a source: YAML or JSON, re-read when it changes. `fs.watch` on the file's
 * directory gives prompt notice (watching the directory, not the file, survives editors and
 * `kubectl` that replace the file by rename); a slow poll of its size and mtime is the fallback
 * for filesystems where `fs.watch` says nothing (network mounts, some containers).
 *
 * The version of a document is a hash of its bytes, so rewriting the same content is no change
 * and a restarted reader resumes at the same version.
 *
 * @module
 */

import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { type Clock, systemClock } from '../core/clock.js';
import { num, parseOptions } from '../core/validate.js';
import { type ConfigSink, type ConfigSource, contentVersion } from './source.js';

/** Options of {@link fileSource}. */
export interface FileSourceOptions {
  /** How often to check the file when `fs.watch` misses a change, 1 ms to 1 hour. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Whether to use `fs.watch` at all. Default true. */
  watch?: boolean;
  /** The clock for the poll timer. */
  clock?: Clock;
}

/** The file at `path` as a {@link ConfigSource}. */
export function fileSource(path: string, options: FileSourceOptions = {}): ConfigSource {
  return new FileSource(resolve(path), options);
}

// Checked at construction: a zero or NaN interval would stat the file in a tight loop.
const numericOptions = z.object({ pollIntervalMs: num(1, 3_600_000).default(1000) });

class FileSource implements ConfigSource {
  readonly name: string;
  readonly #path: string;
  readonly #clock: Clock;
  readonly #pollMs: number;
  readonly #useWatch: boolean;
  #sink: ConfigSink | undefined;
  #watcher: FSWatcher | undefined;
  #timer: unknown;
  #lastKey = '';
  #lastStat = '';
  #reading: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(path: string, options: FileSourceOptions) {
    this.#path = path;
    this.name = `file:${path}`;
    this.#clock = options.clock ?? systemClock;
    this.#pollMs = parseOptions(numericOptions, options, '').pollIntervalMs;
    this.#useWatch = options.watch ?? true;
  }

  start(sink: ConfigSink): void {
    this.#sink = sink;
    if (this.#useWatch) {
      try {
        const file = basename(this.#path);
        this.#watcher = watch(dirname(this.#path), { persistent: false }, (_event, name) => {
          if (name === null || name === file) this.#reload();
        });
        // A watcher error (directory removed, too many watches) leaves the poll to do the job.
        this.#watcher.on('error', () => this.#stopWatching());
      } catch {
        this.#watcher = undefined;
      }
    }
    this.#reload();
    this.#armPoll();
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #armPoll(): void {
    if (this.#closed) return;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      void this.#poll().finally(() => this.#armPoll());
    }, this.#pollMs);
  }

  async #poll(): Promise<void> {
    try {
      const s = await stat(this.#path);
      const key = `${s.size}:${s.mtimeMs}:${s.ino}`;
      if (key === this.#lastStat) return;
      this.#lastStat = key;
    } catch {
      // a missing file is reported by the read
    }
    this.#reload();
  }

  /** Reads the file; reads triggered while one runs coalesce into one more read. */
  #reload(): void {
    if (this.#closed) return;
    if (this.#reading !== undefined) {
      this.#again = true;
      return;
    }
    this.#reading = this.#read().finally(() => {
      this.#reading = undefined;
      if (this.#again) {
        this.#again = false;
        this.#reload();
      }
    });
  }

  async #read(): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.#path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      this.#deliverOnce(`error:${code}`, () => ({
        version: `unreadable-${code}`,
        problems: [{ field: '(document)', message: `cannot read ${this.#path}: ${code}` }],
      }));
      return;
    }
    const version = contentVersion(bytes);
    this.#deliverOnce(version, () => ({ version, raw: bytes }));
  }

  #deliverOnce(key: string, update: () => Parameters<ConfigSink['deliver']>[0]): void {
    if (this.#closed || key === this.#lastKey || this.#sink === undefined) return;
    this.#lastKey = key;
    this.#sink.deliver(update());
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatching();
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    await this.#reading;
  }
}
