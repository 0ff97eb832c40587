/**
 * One shared timer structure for all pending deadlines. A per-call `setTimeout` costs about
 * 0.5 µs and a timer object; a timeout layer instead appends an entry to a list kept per
 * duration, as Node's own timer lists are: entries of one duration arrive in deadline order, so
 * insertion and removal are O(1), and each list keeps at most one clock timer, armed for its
 * head. A list that empties leaves its timer to fire once into nothing rather than paying
 * `clearTimeout` per call — unref'd once the list is still empty at the end of the turn, so it
 * holds no finished program open, and ref'd again when an entry arrives;
 * {@link DeadlineList.disarmIfIdle} clears it on `close()`.
 *
 * @module
 */

import type { Clock, TimerHandle } from './clock.js';

/** The longest delay a Node timer takes. */
const MAX_TIMER_MS = 2_147_483_647;
// Held from load time, as the clock's approximate time does: fake timers installed later by a
// test must not stop a real turn's idle check.
const afterThisTurn = setImmediate;

/** Something with a deadline; subclasses say what happens when it passes. */
export abstract class DeadlineEntry {
  /** Absolute clock time at which {@link DeadlineEntry.expire} is called. */
  at = 0;
  /** @internal */ prev: DeadlineEntry | undefined = undefined;
  /** @internal */ next: DeadlineEntry | undefined = undefined;
  /** @internal */ list: DeadlineList | undefined = undefined;
  /** Called once when the deadline passes, unless removed first. */
  abstract expire(): void;
}

/** Entries of (usually) one duration, in deadline order, behind one clock timer. */
export class DeadlineList {
  #head: DeadlineEntry | undefined = undefined;
  #tail: DeadlineEntry | undefined = undefined;
  #size = 0;
  #timer: TimerHandle | undefined = undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  readonly #clock: Clock;
  /** Whether the armed timer keeps the process alive (see {@link DeadlineList.remove}). */
  #holding = false;
  #idleCheckDue = false;
  readonly #fire = (): void => this.#expireDue();
  readonly #releaseIfIdle = (): void => {
    this.#idleCheckDue = false;
    if (this.#size === 0 && this.#timer !== undefined && this.#holding) {
      this.#clock.unrefTimer?.(this.#timer);
      this.#holding = false;
    }
  };

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Number of pending entries. */
  get size(): number {
    return this.#size;
  }

  /** Whether a clock timer is armed. */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /** Adds an entry due at `at`; `now` is the caller's clock reading (saves a read). */
  insert(entry: DeadlineEntry, at: number, now: number): void {
    entry.at = at;
    entry.list = this;
    const tail = this.#tail;
    if (tail === undefined) {
      this.#head = this.#tail = entry;
    } else if (tail.at <= at) {
      tail.next = entry;
      entry.prev = tail;
      this.#tail = entry;
    } else {
      this.#insertSorted(entry);
    }
    this.#size++;
    if (at < this.#timerAt) this.#arm(at, now);
    else if (!this.#holding && this.#timer !== undefined) {
      // The timer left armed when the list went idle holds the process again.
      this.#clock.refTimer?.(this.#timer);
      this.#holding = true;
    }
  }

  /** Removes an entry that settled before its deadline. O(1). */
  remove(entry: DeadlineEntry): void {
    if (entry.list !== this) return;
    const { prev, next } = entry;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    entry.prev = entry.next = entry.list = undefined;
    if (--this.#size === 0 && this.#timer !== undefined && this.#holding && !this.#idleCheckDue) {
      // The timer stays armed (cheaper than clearing it per call), but a finished program must not
      // wait for it: if the list is still empty at the end of this turn, it stops holding the
      // process. Checked once per turn, not per call (toggling per call cost half a bare call).
      if (this.#clock.unrefTimer !== undefined) {
        this.#idleCheckDue = true;
        afterThisTurn(this.#releaseIfIdle).unref();
      }
    }
  }

  /** Clears the clock timer when nothing is pending (for `close()`: no timer left behind). */
  disarmIfIdle(): void {
    if (this.#size === 0 && this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Number.POSITIVE_INFINITY;
    }
  }

  #insertSorted(entry: DeadlineEntry): void {
    let after = this.#tail;
    while (after !== undefined && after.at > entry.at) after = after.prev;
    if (after === undefined) {
      entry.next = this.#head;
      if (this.#head !== undefined) this.#head.prev = entry;
      this.#head = entry;
    } else {
      entry.prev = after;
      entry.next = after.next;
      if (after.next !== undefined) after.next.prev = entry;
      after.next = entry;
    }
  }

  #arm(at: number, now: number): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timerAt = at;
    // Timers take at most 2^31-1 ms (Node fires a longer one after 1 ms, over and over): a farther
    // deadline (a huge incoming deadline header) is re-armed when this one fires.
    this.#timer = this.#clock.setTimer(this.#fire, Math.min(MAX_TIMER_MS, Math.max(0, at - now)));
    this.#holding = true;
  }

  #expireDue(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    let head = this.#head;
    while (head !== undefined && head.at <= now) {
      this.remove(head);
      head.expire();
      head = this.#head;
    }
    if (head !== undefined) this.#arm(head.at, now);
  }
}

/** The lists of one clock, keyed by duration. Shared by every timeout layer on that clock. */
export class DeadlineQueue {
  readonly #lists = new Map<number, DeadlineList>();
  readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** The list for entries of one duration (a layer looks it up once, not per call). */
  listFor(durationMs: number): DeadlineList {
    let list = this.#lists.get(durationMs);
    if (list === undefined) {
      list = new DeadlineList(this.clock);
      this.#lists.set(durationMs, list);
    }
    return list;
  }

  /** Entries pending across all lists. */
  get size(): number {
    let size = 0;
    for (const list of this.#lists.values()) size += list.size;
    return size;
  }

  /** Clears timers of idle lists. */
  disarmIfIdle(): void {
    for (const list of this.#lists.values()) list.disarmIfIdle();
  }
}

const queues = new WeakMap<Clock, DeadlineQueue>();

/** The deadline queue shared by everything on `clock`. */
export function deadlineQueueFor(clock: Clock): DeadlineQueue {
  let queue = queues.get(clock);
  if (queue === undefined) {
    queue = new DeadlineQueue(clock);
    queues.set(clock, queue);
  }
  return queue;
}
